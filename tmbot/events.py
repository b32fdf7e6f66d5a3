"""Typed events: what happened to a generation, as the platform notifiers see it.

Every event is written to the store's **outbox** in the same transaction as the state change
that produced it (:mod:`tmbot.lifecycle`), then handed to the platform's notifier by that
platform's :class:`tmbot.outbox.Dispatcher`, in order per generation, at least once. An event
carries the generation as stored when it is handed over.

``Accepted`` comes first: the notifier posts the request card on it and returns the card's
:class:`~tmbot.records.MessageLink`, which later events find among the links they are given.
``Queued`` and ``Started`` are *progress*: a newer one replaces an older one still waiting.
``Delivered`` and ``Failed`` are final; ``Deleted`` may follow a final one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tmbot.records import Generation, NewEvent, OutboxEntry


@dataclass(frozen=True)
class Accepted:
    """Stored and on its way: show the request card (or adopt ``place.card_message``)."""

    generation: Generation


@dataclass(frozen=True)
class Queued:
    """Waiting locally for a slot on its key. ``position`` is 1-based."""

    generation: Generation
    position: int
    eta_seconds: float | None = None  # provider seconds until it is expected to start


@dataclass(frozen=True)
class Started:
    """The provider accepted the task (``generation.estimate_seconds`` says how long)."""

    generation: Generation


@dataclass(frozen=True)
class Delivered:
    """The image is downloaded: post it. After a crash the same event may be handed over
    again; the links given with it say whether an image was already posted."""

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


@dataclass(frozen=True)
class Deleted:
    """The requester or an admin deleted a finished result: remove or mark its messages."""

    generation: Generation
    by: str  # the user id who deleted it
    by_label: str  # how to name them


Event = Accepted | Queued | Started | Delivered | Failed | Deleted

#: kinds a newer progress event replaces while they wait in the outbox
PROGRESS = ("queued", "started")


def encode(event: Event) -> NewEvent:
    """The stored form of an event (its generation is the row it belongs to)."""
    match event:
        case Accepted():
            return NewEvent("accepted")
        case Queued(position=position, eta_seconds=eta):
            return NewEvent("queued", {"position": position, "eta": eta}, replaces=PROGRESS)
        case Started():
            return NewEvent("started", replaces=PROGRESS)
        case Delivered():
            payload = {
                "filename": event.filename,
                "width": event.width,
                "height": event.height,
                "credits_used": event.credits_used,
                "credits_remaining": event.credits_remaining,
            }
            return NewEvent("delivered", payload, blob=event.image)
        case Failed(reason=reason):
            return NewEvent("failed", {"reason": reason})
        case Deleted(by=by, by_label=label):
            return NewEvent("deleted", {"by": by, "by_label": label})


def decode(entry: OutboxEntry, generation: Generation, blob: bytes | None = None) -> Event:
    """The typed event for a stored one (``blob``: a delivered event's image)."""
    p: Mapping[str, object] = entry.payload
    match entry.kind:
        case "accepted":
            return Accepted(generation)
        case "queued":
            return Queued(generation, int(_num(p.get("position")) or 0), _num(p.get("eta")))
        case "started":
            return Started(generation)
        case "delivered":
            return Delivered(
                generation=generation,
                image=blob or b"",
                filename=str(p.get("filename") or f"tmbot-{generation.id}.png"),
                width=int(_num(p.get("width")) or 0),
                height=int(_num(p.get("height")) or 0),
                credits_used=_num(p.get("credits_used")),
                credits_remaining=_num(p.get("credits_remaining")),
            )
        case "failed":
            return Failed(generation, str(p.get("reason") or generation.error or ""))
        case "deleted":
            return Deleted(generation, str(p.get("by") or ""), str(p.get("by_label") or ""))
    raise ValueError(f"unknown outbox event kind {entry.kind!r}")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
