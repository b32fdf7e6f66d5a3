"""Concurrency slots for one key, handed out round-robin across the users sharing it.

One person's batch of twenty does not block a colleague's single brief: when a slot frees,
the next user in rotation gets it, first-come first-served within each user. Waiters learn
their position (1-based) whenever it changes.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

PositionCallback = Callable[[int], None]
T = TypeVar("T")


def round_robin(rows: Iterable[Sequence[T]]) -> list[T]:
    """One item from each row in turn, rows in their order: the first of every row, then
    the second of every row that has one, and so on."""
    rows = list(rows)
    out: list[T] = []
    depth = 0
    while True:
        layer = [row[depth] for row in rows if len(row) > depth]
        if not layer:
            return out
        out.extend(layer)
        depth += 1


@dataclass(eq=False)
class _Waiter:
    user: str
    future: asyncio.Future[None]
    on_position: PositionCallback | None
    position: int = field(default=0)


class FairSlots:
    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity  # None: unlimited
        self.in_use = 0
        # user -> their waiters in arrival order; dict order is the rotation order
        self._queues: OrderedDict[str, deque[_Waiter]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _has_room(self) -> bool:
        return self.capacity is None or self.in_use < self.capacity

    def occupy(self) -> None:
        """Take a slot without queueing (a task already running at the provider)."""
        self.in_use += 1

    def _order(self) -> list[_Waiter]:
        """Waiters in the order they will be served."""
        return round_robin(self._queues.values())

    def _announce(self) -> None:
        for index, waiter in enumerate(self._order(), start=1):
            if waiter.position != index:
                waiter.position = index
                if waiter.on_position is not None:
                    waiter.on_position(index)

    def _dispatch(self) -> None:
        changed = False
        while self._has_room() and self._queues:
            user, queue = next(iter(self._queues.items()))
            waiter = queue.popleft()
            del self._queues[user]
            if queue:  # the user goes to the back of the rotation
                self._queues[user] = queue
            if waiter.future.done():  # cancelled while waiting
                continue
            self.in_use += 1
            waiter.future.set_result(None)
            changed = True
        if changed:
            self._announce()

    def release(self) -> None:
        self.in_use -= 1
        self._dispatch()

    async def acquire(self, user: str, on_position: PositionCallback | None = None) -> None:
        if self._has_room() and not self._queues:
            self.in_use += 1
            return
        waiter = _Waiter(user, asyncio.get_running_loop().create_future(), on_position)
        self._queues.setdefault(user, deque()).append(waiter)
        self._announce()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release()  # got the slot just as we were cancelled
            else:
                self._remove(waiter)
            raise

    def _remove(self, waiter: _Waiter) -> None:
        queue = self._queues.get(waiter.user)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._queues[waiter.user]
            self._announce()

    @asynccontextmanager
    async def slot(
        self, user: str, on_position: PositionCallback | None = None
    ) -> AsyncIterator[None]:
        await self.acquire(user, on_position)
        try:
            yield
        finally:
            self.release()
