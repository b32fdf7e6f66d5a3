"""The generation state machine: which moves are legal, and the one way to make them.

Every change of a generation goes through :meth:`Lifecycle.move` (or :meth:`Lifecycle.create`
for the first row): the move is checked against :data:`MOVES`, and the row and the events the
move produces are written in one transaction, guarded by the status the caller last saw. So a
crash never leaves a state change without its notice (or a notice without its change), and
two actors racing on one generation (the scheduler and a delete, or two processes) cannot
both win: the loser gets :class:`tmbot.errors.Conflict`.

::

    ACCEPTED ──► SUBMITTING ──► SUBMITTED ──► (COMPLETED) ──► DELIVERED
        │             │              │  └──────────────────────────►│
        └─────────────┴──────────────┴─────────────┴─────────────┴──► FAILED

The engine stores the provider's result together with the downloaded image (SUBMITTED ──►
DELIVERED in one write): nothing is acted on in between, and a restart there costs one more
poll. COMPLETED remains for rows written that way before, which resume by downloading.

DELIVERED means the image is downloaded and its ``Delivered`` event stored: from then on the
platform's dispatcher owns it, and if the platform never takes it the generation moves on to
FAILED with a reason. A final status may be "moved" to itself to record a deletion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tmbot.errors import Conflict, IllegalTransition
from tmbot.events import Accepted, Event, encode
from tmbot.ports import Store
from tmbot.records import Generation, GenStatus, NewEvent, OutboxEntry

log = logging.getLogger(__name__)

S = GenStatus

#: The legal moves, written down once.
MOVES: dict[GenStatus, frozenset[GenStatus]] = {
    S.ACCEPTED: frozenset({S.SUBMITTING, S.FAILED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.FAILED}),
    S.SUBMITTED: frozenset({S.COMPLETED, S.DELIVERED, S.FAILED}),
    S.COMPLETED: frozenset({S.DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset({S.DELIVERED, S.FAILED}),
    S.FAILED: frozenset({S.FAILED}),
}


def check_move(current: GenStatus, to: GenStatus) -> None:
    if to not in MOVES[current]:
        raise IllegalTransition(f"A generation cannot go from {current} to {to}.")


#: Told of events right after they are stored (the dispatchers' in-memory fast path).
Stored = Callable[[Generation, Sequence[tuple[OutboxEntry, NewEvent]]], None]


def _nobody(generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]) -> None:
    """Nobody hands events over in this process: they wait in the outbox."""


class Lifecycle:
    """Writes generations and their events, then tells ``stored`` (the dispatcher of the
    events' platform hands them over without reading them back)."""

    def __init__(
        self, *, store: Store, now: Callable[[], float], stored: Stored | None = None
    ) -> None:
        self.store = store
        self._now = now
        self._stored = stored or _nobody

    async def create(self, generation: Generation) -> None:
        """Store a new generation (ACCEPTED) with its ``Accepted`` event."""
        events = [encode(Accepted(generation))]
        entries = await self.store.insert_generation(generation, events)
        self._stored(generation, list(zip(entries, events, strict=True)))

    async def move(
        self,
        generation: Generation,
        to: GenStatus,
        *,
        events: Sequence[Callable[[Generation], Event]] = (),
        **fields: Any,
    ) -> Generation:
        """``generation`` (as the caller last saw it) moved to ``to`` with ``fields``
        changed, stored with the events built from the new row. Raises IllegalTransition
        for a move not in MOVES, Conflict when the stored status is no longer the one the
        caller saw."""
        check_move(generation.status, to)
        moved = replace(generation, status=to, updated_at=self._now(), **fields)
        written = [encode(make(moved)) for make in events]
        entries = await self.store.transition(moved, expect=generation.status, events=written)
        if entries is None:
            raise Conflict("That image changed meanwhile; look at it again.")
        log.info(
            "generation %s: %s -> %s",
            moved.id,
            generation.status.value,
            to.value,
            extra={
                "generation": moved.id,
                "key": moved.key.lane_id,
                "state": to.value,
                "seconds": round(moved.updated_at - moved.created_at, 3),
                "platform": moved.place.platform,
            },
        )
        if entries:
            self._stored(moved, list(zip(entries, written, strict=True)))
        return moved

    async def emit(
        self, generation: Generation, event: Event, *, expect: GenStatus | None = None
    ) -> bool:
        """Store an event that changes nothing else (a queue position), only while the
        stored status is ``expect`` (when given). True when it was stored."""
        written = [encode(event)]
        entries = await self.store.add_events(generation.id, written, expect=expect)
        if entries is None:
            return False
        self._stored(generation, list(zip(entries, written, strict=True)))
        return True
