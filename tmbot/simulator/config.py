"""The simulator's knobs, and the small table of how long each kind of image takes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from tmbot.capabilities import TASTEMACHINE, VTRIX, Limits


def _rpm(limits: Limits) -> int:
    return limits.requests_per_window if limits.requests_per_window is not None else 60


def _concurrency(limits: Limits) -> int:
    return limits.max_concurrent if limits.max_concurrent is not None else 10


#: Relative speed of each model (core names); a model missing here counts as 1.0.
MODEL_TIME_FACTOR: Mapping[str, float] = MappingProxyType(
    {"nano-banana-pro": 1.0, "nano-banana-2": 0.5}
)
#: Relative time per resolution (core, lower-case spelling); missing counts as 1.0.
RESOLUTION_TIME_FACTOR: Mapping[str, float] = MappingProxyType(
    {"0.5k": 0.6, "1k": 0.8, "2k": 1.0, "4k": 1.6}
)


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulator. Durations are in *provider* seconds unless named real."""

    #: provider seconds per real second: shrinks task durations, the rate window, Retry-After
    #: and the image TTL alike
    time_scale: float = 1.0
    #: the estimate announced for nano-banana-pro at 2k; other models and resolutions scale
    #: by MODEL_TIME_FACTOR x RESOLUTION_TIME_FACTOR
    estimate_seconds: float = 30.0
    #: actual duration = estimate * uniform(1 - spread, 1 + spread)
    duration_spread: float = 0.1
    #: fraction of tasks that end failed
    task_failure_rate: float = 0.0
    #: fraction of API requests answered 500 before anything else happens
    server_error_rate: float = 0.0
    #: fraction of API requests that hang ``hang_seconds`` (real seconds), then answer 504
    timeout_rate: float = 0.0
    hang_seconds: float = 35.0
    #: fraction of 2xx API answers replaced by a malformed body
    malformed_rate: float = 0.0
    #: image URLs stop working this long after the task completed
    image_ttl_seconds: float = 3600.0
    #: balance of a new Taste Machine key
    default_credits: int = 1000
    tm_rpm: int = _rpm(TASTEMACHINE.limits)
    tm_concurrency: int = _concurrency(TASTEMACHINE.limits)
    vtrix_rpm: int = _rpm(VTRIX.limits)
    vtrix_concurrency: int = _concurrency(VTRIX.limits)
    rate_window_seconds: float = TASTEMACHINE.limits.window_seconds
    #: deterministic randomness when set
    seed: int | None = None
    #: new tasks stay running, whatever their duration, until released
    #: (:meth:`Simulator.release`, ``POST /_sim/release``): tests that need work to be at the
    #: provider at a given moment hold it there instead of counting on durations
    hold_tasks: bool = False
    #: serve one stock picture per (model, resolution, aspect ratio), drawn once, instead of
    #: drawing each task's brief: a real provider renders on machines of its own, so a
    #: benchmark sets this to keep the simulator's drawing off the bot's CPU
    stock_images: bool = False

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            problems.append("time_scale must be a positive number")
        for name in ("task_failure_rate", "server_error_rate", "timeout_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if not 0.0 <= self.duration_spread < 1.0:
            problems.append("duration_spread must be at least 0 and below 1")
        for name in ("estimate_seconds", "hang_seconds", "image_ttl_seconds"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must not be negative")
        if not self.rate_window_seconds > 0:
            problems.append("rate_window_seconds must be positive")
        for name in ("tm_rpm", "tm_concurrency", "vtrix_rpm", "vtrix_concurrency"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    def estimate_for(self, model: str, resolution: str) -> float:
        """Provider seconds a task of this model and (core) resolution is expected to take."""
        return (
            self.estimate_seconds
            * MODEL_TIME_FACTOR.get(model, 1.0)
            * RESOLUTION_TIME_FACTOR.get(resolution, 1.0)
        )


_FIELD_TYPES: Mapping[str, tuple[type, ...]] = MappingProxyType(
    {
        f.name: (
            (int, type(None))
            if f.name == "seed"
            else (bool,)
            if f.type in ("bool", bool)
            else (int,)
            if f.type in ("int", int)
            else (int, float)
        )
        for f in fields(SimConfig)
    }
)


def check_changes(changes: Mapping[str, object]) -> None:
    """Raise ValueError for an unknown field or a value of the wrong type (JSON input)."""
    for name, value in changes.items():
        allowed = _FIELD_TYPES.get(name)
        if allowed is None:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise ValueError(f"unknown config field {name!r}; known fields: {known}")
        if isinstance(value, bool) is not (bool in allowed) or not isinstance(value, allowed):
            raise ValueError(f"config field {name!r} has the wrong type")
