"""One async HTTP client per image API, each translating to the core types at its edge."""

from tmbot.providers.base import ImageProvider

__all__ = ["ImageProvider"]
