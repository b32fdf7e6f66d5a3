"""Typed events the engine hands to a :class:`tmbot.ports.Notifier`."""

from __future__ import annotations

from dataclasses import dataclass

from tmbot.records import Generation


@dataclass(frozen=True)
class Queued:
    """Waiting locally for a slot on its key. ``position`` is 1-based."""

    generation: Generation
    position: int
    eta_seconds: float | None = None  # provider seconds until it is expected to start


@dataclass(frozen=True)
class Started:
    """The provider accepted the task."""

    generation: Generation


@dataclass(frozen=True)
class Delivered:
    """The image is downloaded. Adapters post it at most once per generation id: after a
    crash the same event may be handed over again."""

    generation: Generation
    image: bytes
    filename: str
    width: int
    height: int
    credits_used: float | None
    credits_remaining: float | None


@dataclass(frozen=True)
class Failed:
    generation: Generation
    reason: str  # one sentence a person understands


Event = Queued | Started | Delivered | Failed
