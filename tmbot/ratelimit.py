"""A per-key request budget: a sliding window shared by creates and polls.

The provider counts requests in a sliding window; we keep our own log of send times and
never send the request that would exceed ``budget`` within ``window`` seconds. A small
``margin`` absorbs the difference between our send time and the provider's receive time.
A 429 blocks the whole key until its Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque

from tmbot.clock import Clock

log = logging.getLogger(__name__)


#: request priorities: a create fills a concurrency slot that is sitting idle, so when the
#: budget is short it goes before polls, which only look at work already running
CREATE, POLL = 0, 1


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
        # minute of nothing); the bucket keeps the wait near the average spacing instead.
        self._rate = budget / (window + margin)
        self._capacity = max(1.0, budget / 4)
        self._tokens = self._capacity
        self._filled_at = clock.monotonic()
        # waiters by (priority, arrival): the head sends next, the rest wait their turn
        self._queue: list[tuple[int, int]] = []
        self._arrivals = itertools.count()
        self._turn = asyncio.Condition()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _prune(self, now: float) -> None:
        horizon = now - self.window - self.margin
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def delay(self) -> float:
        """Provider seconds until the next request may be sent (0 when it may go now)."""
        now = self._clock.monotonic()
        self._prune(now)
        wait = self._blocked_until - now
        if len(self._sent) >= self.budget:
            wait = max(wait, self._sent[-self.budget] + self.window + self.margin - now)
        tokens = self._tokens_at(now)
        if tokens < 1.0:
            wait = max(wait, (1.0 - tokens) / self._rate)
        return max(0.0, wait)

    def _tokens_at(self, now: float) -> float:
        return min(self._capacity, self._tokens + (now - self._filled_at) * self._rate)

    def used(self) -> int:
        """Requests sent within the current window."""
        self._prune(self._clock.monotonic())
        return len(self._sent)

    async def acquire(self, priority: int = POLL) -> None:
        """Wait for room in the window, then count one request as sent. Waiters go by
        priority, then in arrival order."""
        me = (priority, next(self._arrivals))
        heapq.heappush(self._queue, me)
        try:
            async with self._turn:
                self._turn.notify_all()  # a new head may need to start its own wait
                while True:
                    if self._queue[0] != me:
                        await self._turn.wait()
                        continue
                    wait = self.delay()
                    if wait <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._turn.wait(), self._clock.real_seconds(wait))
                heapq.heappop(self._queue)
                now = self._clock.monotonic()
                self._tokens = self._tokens_at(now) - 1.0
                self._filled_at = now
                self._sent.append(now)
                self._turn.notify_all()
        except BaseException:
            if me in self._queue:  # cancelled while waiting
                self._queue.remove(me)
                heapq.heapify(self._queue)
            raise

    def block_for(self, seconds: float) -> None:
        """Hold every request on this key for ``seconds`` (after a 429)."""
        until = self._clock.monotonic() + max(0.0, seconds)
        if until > self._blocked_until:
            log.info("key slowed down for %.1f s after a 429", seconds)
            self._blocked_until = until
