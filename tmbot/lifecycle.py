"""The generation state machine: which moves are legal, and the one way to make them.

Every change of a generation goes through :meth:`Lifecycle.move` (or :meth:`Lifecycle.create`
for the first row): the move is checked against :data:`MOVES`, and the row and the events the
move produces are written in one transaction, guarded by the status the caller last saw. So a
crash never leaves a state change without its notice (or a notice without its change), and
two actors racing on one generation (the scheduler and a delete, or two processes) cannot
both win: the loser gets :class:`tmbot.errors.Conflict`.

::

    ACCEPTED ──► SUBMITTING ──► SUBMITTED ──► COMPLETED ──► DELIVERED
        │             │              │             │             │
        └─────────────┴──────────────┴─────────────┴─────────────┴──► FAILED

DELIVERED means the image is downloaded and its ``Delivered`` event stored: from then on the
platform's dispatcher owns it, and if the platform never takes it the generation moves on to
FAILED with a reason. A final status may be "moved" to itself to record a deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tmbot.errors import Conflict, IllegalTransition
from tmbot.events import Accepted, Event, encode
from tmbot.ports import Store
from tmbot.records import Generation, GenStatus

S = GenStatus

#: The legal moves, written down once.
MOVES: dict[GenStatus, frozenset[GenStatus]] = {
    S.ACCEPTED: frozenset({S.SUBMITTING, S.FAILED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.FAILED}),
    S.SUBMITTED: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset({S.DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset({S.DELIVERED, S.FAILED}),
    S.FAILED: frozenset({S.FAILED}),
}


def check_move(current: GenStatus, to: GenStatus) -> None:
    if to not in MOVES[current]:
        raise IllegalTransition(f"A generation cannot go from {current} to {to}.")


class Lifecycle:
    """Writes generations and their events; wakes the dispatcher of the event's platform."""

    def __init__(
        self, *, store: Store, now: Callable[[], float], wake: Callable[[str], None]
    ) -> None:
        self.store = store
        self._now = now
        self._wake = wake

    async def create(self, generation: Generation) -> None:
        """Store a new generation (ACCEPTED) with its ``Accepted`` event."""
        await self.store.insert_generation(generation, [encode(Accepted(generation))])
        self._wake(generation.place.platform)

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
        stored = [encode(make(moved)) for make in events]
        if not await self.store.transition(moved, expect=generation.status, events=stored):
            raise Conflict("That image changed meanwhile; look at it again.")
        if stored:
            self._wake(moved.place.platform)
        return moved

    async def emit(
        self, generation: Generation, event: Event, *, expect: GenStatus | None = None
    ) -> bool:
        """Store an event that changes nothing else (a queue position), only while the
        stored status is ``expect`` (when given). True when it was stored."""
        if not await self.store.add_events(generation.id, [encode(event)], expect=expect):
            return False
        self._wake(generation.place.platform)
        return True
