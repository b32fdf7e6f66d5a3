"""One async HTTP client per image API, each translating to the core types at its edge."""

from __future__ import annotations

from tmbot.domain import ProviderName
from tmbot.providers.base import ImageProvider
from tmbot.providers.http import DEFAULT_TIMEOUT
from tmbot.providers.tastemachine import TasteMachineClient
from tmbot.providers.vtrix import VtrixClient

__all__ = ["ImageProvider", "TasteMachineClient", "VtrixClient", "build_providers"]


def build_providers(
    *,
    tastemachine_url: str | None = None,
    vtrix_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[ProviderName, ImageProvider]:
    """One client per provider, each owning its connection pool (close with ``aclose``).
    Base URLs default to ``TASTEMACHINE_API_URL`` / ``VTRIX_API_URL``, then the real APIs."""
    return {
        ProviderName.TASTEMACHINE: TasteMachineClient(tastemachine_url, timeout=timeout),
        ProviderName.VTRIX: VtrixClient(vtrix_url, timeout=timeout),
    }
