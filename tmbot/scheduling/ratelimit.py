"""A per-key request budget: a sliding window shared by creates and polls.

The provider counts requests in a sliding window; we keep our own log of send times and
never send the request that would exceed ``budget`` within ``window`` seconds. A small
``margin`` absorbs the difference between our send time and the provider's receive time.
A 429 blocks the whole key until its Retry-After has passed.

Who goes next: creates first (each fills a concurrency slot sitting idle), then the poll
most likely to find its task done. As the window fills, a poll must also be worth more:
the least chance of success a poll needs rises from nothing (window at most 45 % used) to
certainty (window full), so the last requests of a window go to the polls that will free a
slot, and a key under load never stalls on a full window while its tasks finish unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tmbot.clock import Clock

log = logging.getLogger(__name__)


#: request priorities: a create fills a concurrency slot that is sitting idle, so when the
#: budget is short it goes before polls, which only look at work already running
CREATE, POLL = 0, 1

#: a poll's worth: the chance that it finds its task done (1.0 when unknown)
Value = Callable[[], float]

#: share of the window used below which any poll may go; at a full window only sure ones
FLOOR_FROM = 0.45
#: how long a poll held back for its worth waits before it is weighed again (provider s)
REWEIGH_SECONDS = 0.5


def value_floor(used_share: float) -> float:
    """The least worth a poll needs when ``used_share`` of the window is spent."""
    return min(1.0, max(0.0, (used_share - FLOOR_FROM) / (1.0 - FLOOR_FROM)))


def _certain() -> float:
    return 1.0


@dataclass(eq=False)
class _Waiter:
    priority: int
    arrival: int
    value: Value


class RateWindow:
    def __init__(self, *, clock: Clock, budget: int, window: float, margin: float = 1.0) -> None:
        if budget < 1:
            raise ValueError("budget must be at least 1")
        self._clock = clock
        self.budget = budget
        self.window = window
        self.margin = margin
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        # A token bucket on top of the window spreads requests out: the window alone lets
        # a burst fill it, then holds everything until the oldest request ages out (half a
        # minute of nothing). Its capacity is half the budget: tasks started together end
        # together, and the bucket must let one such round's creates and polls through.
        self._rate = budget / (window + margin)
        self._capacity = max(1.0, budget / 2)
        self._tokens = self._capacity
        self._filled_at = clock.monotonic()
        self._waiters: list[_Waiter] = []
        self._arrivals = itertools.count()
        self._turn = asyncio.Condition()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _prune(self, now: float) -> None:
        horizon = now - self.window - self.margin
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def delay(self, reserve: int = 0) -> float:
        """Provider seconds until the next request may be sent (0 when it may go now),
        leaving ``reserve`` requests of room unspent for others."""
        now = self._clock.monotonic()
        self._prune(now)
        wait = self._blocked_until - now
        room = self.budget - reserve
        if len(self._sent) >= room:
            wait = max(wait, self._sent[-room] + self.window + self.margin - now)
        tokens = self._tokens_at(now)
        if tokens < 1.0 + reserve:
            wait = max(wait, (1.0 + reserve - tokens) / self._rate)
        return max(0.0, wait)

    def _tokens_at(self, now: float) -> float:
        return min(self._capacity, self._tokens + (now - self._filled_at) * self._rate)

    def ages(self) -> list[float]:
        """How long ago (provider seconds) each request of the current window was sent."""
        now = self._clock.monotonic()
        self._prune(now)
        return [now - sent for sent in self._sent]

    def seed(self, ages: Iterable[float]) -> None:
        """Count requests another process sent on this key ``ages`` provider seconds ago
        (its lane's previous owner), so this window holds across the takeover."""
        now = self._clock.monotonic()
        self._sent = deque(sorted([*self._sent, *(now - max(0.0, age) for age in ages)]))
        self._prune(now)

    def used(self) -> int:
        """Requests sent within the current window."""
        self._prune(self._clock.monotonic())
        return len(self._sent)

    def _head(self) -> _Waiter:
        """Who goes next: the first create, else the poll worth most (the earlier on ties)."""
        creates = [w for w in self._waiters if w.priority == CREATE]
        if creates:
            return min(creates, key=lambda w: w.arrival)
        return max(self._waiters, key=lambda w: (w.value(), -w.arrival))

    async def acquire(
        self, priority: int = POLL, reserve: int = 0, value: Value | None = None
    ) -> None:
        """Wait for room in the window, then count one request as sent. Creates go first in
        arrival order, then polls by ``value`` (their chance of finding the task done),
        each only once it is worth the room left. ``reserve`` keeps that many requests of
        room for whoever comes next (a poll leaves one for the create its answer may
        release)."""
        reserve = min(reserve, self.budget - 1, int(self._capacity) - 1)
        me = _Waiter(priority, next(self._arrivals), value or _certain)
        self._waiters.append(me)
        try:
            async with self._turn:
                self._turn.notify_all()  # a new head may need to start its own wait
                while True:
                    if self._head() is not me:
                        await self._turn.wait()
                        continue
                    wait = self.delay(reserve)
                    worth = priority == CREATE or me.value() >= value_floor(
                        self.used() / self.budget
                    )
                    if wait <= 0 and not worth:
                        wait = REWEIGH_SECONDS  # its chance grows as time passes
                    if wait <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._turn.wait(), self._clock.real_seconds(wait))
                    self._turn.notify_all()  # the ranking may have changed meanwhile
                self._waiters.remove(me)
                now = self._clock.monotonic()
                self._tokens = self._tokens_at(now) - 1.0
                self._filled_at = now
                self._sent.append(now)
                self._turn.notify_all()
        except BaseException:
            if me in self._waiters:  # cancelled while waiting
                self._waiters.remove(me)
            raise

    def block_for(self, seconds: float) -> None:
        """Hold every request on this key for ``seconds`` (after a 429)."""
        until = self._clock.monotonic() + max(0.0, seconds)
        if until > self._blocked_until:
            log.info("key slowed down for %.1f s after a 429", seconds)
            self._blocked_until = until
