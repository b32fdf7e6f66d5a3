"""What each provider accepts, in one table per provider.

Validation (``tmbot.commands``), the wire spelling (``tmbot.providers``), prices (the engine)
and the simulator all read these tables; no list of models, ratios, resolutions or tastes is
written anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from tmbot.domain import ProviderName

_V = TypeVar("_V")

BASE_RATIOS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)  # fmt: skip
EXTREME_RATIOS: tuple[str, ...] = ("1:4", "4:1", "1:8", "8:1")
# Vtrix's page lists them in this order; the set equals BASE_RATIOS + EXTREME_RATIOS.
VTRIX_RATIOS: tuple[str, ...] = (
    "1:8", "1:4", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "8:1", "4:1", "9:16", "16:9",
    "21:9",
)  # fmt: skip


@dataclass(frozen=True)
class ModelCaps:
    """One model as a provider offers it."""

    name: str  # core name, e.g. "nano-banana-2"
    wire_name: str  # as the API spells it, e.g. "nano_banana_2"
    aspect_ratios: tuple[str, ...]
    #: credits by core resolution; None where the provider publishes no price
    cost: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Limits:
    """Per-key limits the scheduler keeps to."""

    requests_per_window: int | None  # None: unpublished
    window_seconds: float
    max_concurrent: int | None  # None: unpublished


@dataclass(frozen=True)
class ProviderCaps:
    provider: ProviderName
    display_name: str
    models: Mapping[str, ModelCaps]
    default_model: str
    #: core resolution (lower-case) -> the API's spelling
    resolutions: Mapping[str, str]
    default_resolution: str
    default_aspect_ratio: str
    max_reference_images: int
    prompt_max_chars: int | None
    #: taste profiles; empty when the provider has none
    tastes: tuple[str, ...]
    default_taste: str | None
    limits: Limits
    #: what a key for this provider looks like, for messages ("tm_live_… or tm_test_…")
    key_hint: str
    #: a full-match regular expression for a well-formed key
    key_pattern: str
    recommended_poll_seconds: float = 2.0

    def model(self, name: str) -> ModelCaps:
        return self.models[name]

    def cost(self, model: str, resolution: str) -> int | None:
        table = self.models[model].cost
        return None if table is None else table.get(resolution)


def _ro(d: dict[str, _V]) -> Mapping[str, _V]:
    return MappingProxyType(dict(d))


TASTEMACHINE = ProviderCaps(
    provider=ProviderName.TASTEMACHINE,
    display_name="The Taste Machine",
    models=_ro(
        {
            "nano-banana-pro": ModelCaps(
                name="nano-banana-pro",
                wire_name="nano-banana-pro",
                aspect_ratios=BASE_RATIOS,
                cost=_ro({"1k": 10, "2k": 10, "4k": 15}),
            ),
            "nano-banana-2": ModelCaps(
                name="nano-banana-2",
                wire_name="nano-banana-2",
                aspect_ratios=BASE_RATIOS + EXTREME_RATIOS,
                cost=_ro({"1k": 8, "2k": 9, "4k": 10}),
            ),
        }
    ),
    default_model="nano-banana-pro",
    resolutions=_ro({"1k": "1k", "2k": "2k", "4k": "4k"}),
    default_resolution="2k",
    default_aspect_ratio="1:1",
    max_reference_images=14,
    prompt_max_chars=4000,  # ours (the API documents none): see README, "The grammar"
    tastes=("default", "realistic-photo"),
    default_taste="default",
    limits=Limits(requests_per_window=60, window_seconds=60.0, max_concurrent=10),
    key_hint="Taste Machine keys start with tm_live_ or tm_test_",
    key_pattern=r"tm_(?:live|test)_[A-Za-z0-9_\-]{4,200}",
    recommended_poll_seconds=2.0,
)

VTRIX = ProviderCaps(
    provider=ProviderName.VTRIX,
    display_name="Vtrix (Nano Banana 2)",
    models=_ro(
        {
            "nano-banana-2": ModelCaps(
                name="nano-banana-2",
                wire_name="nano_banana_2",
                aspect_ratios=VTRIX_RATIOS,
                cost=None,
            ),
        }
    ),
    default_model="nano-banana-2",
    resolutions=_ro({"0.5k": "0.5K", "1k": "1K", "2k": "2K", "4k": "4K"}),
    default_resolution="1k",
    default_aspect_ratio="1:1",
    max_reference_images=3,
    prompt_max_chars=2500,
    tastes=(),
    default_taste=None,
    # Vtrix publishes no numbers; these are our own conservative settings.
    limits=Limits(requests_per_window=60, window_seconds=60.0, max_concurrent=10),
    key_hint="Vtrix keys are the 20 to 200 character token from your Vtrix API key page",
    key_pattern=r"[A-Za-z0-9][A-Za-z0-9_\-.]{19,199}",
    recommended_poll_seconds=4.0,
)

PROVIDERS: Mapping[ProviderName, ProviderCaps] = MappingProxyType(
    {ProviderName.TASTEMACHINE: TASTEMACHINE, ProviderName.VTRIX: VTRIX}
)

DEFAULT_PROVIDER = ProviderName.TASTEMACHINE


def caps(provider: ProviderName) -> ProviderCaps:
    return PROVIDERS[provider]
