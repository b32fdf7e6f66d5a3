"""A per-key request budget: a sliding window shared by creates and polls.

The provider counts requests in a sliding window; we keep our own log of send times and
never send the request that would exceed ``budget`` within ``window`` seconds. A small
``margin`` absorbs the difference between our send time and the provider's receive time.
A 429 blocks the whole key until its Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from tmbot.clock import Clock

log = logging.getLogger(__name__)


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
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order
        self.waiting = 0

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
        return max(0.0, wait)

    def used(self) -> int:
        """Requests sent within the current window."""
        self._prune(self._clock.monotonic())
        return len(self._sent)

    async def acquire(self) -> None:
        """Wait for room in the window, then count one request as sent."""
        self.waiting += 1
        try:
            async with self._lock:
                while (wait := self.delay()) > 0:
                    await self._clock.sleep(wait)
                self._sent.append(self._clock.monotonic())
        finally:
            self.waiting -= 1

    def block_for(self, seconds: float) -> None:
        """Hold every request on this key for ``seconds`` (after a 429)."""
        until = self._clock.monotonic() + max(0.0, seconds)
        if until > self._blocked_until:
            log.info("key slowed down for %.1f s after a 429", seconds)
            self._blocked_until = until
