"""When to poll a running task.

The first poll goes near the moment the task is expected to end, not every 2 s from
submission. Expectations come from the provider's estimate scaled by what we have seen: for
each (provider, model, resolution) profile the planner keeps the recent ratios of actual
duration to announced estimate (or plain durations where the provider gives no estimate)
and polls across that observed range in steps no longer than ``step`` seconds. Past the
range it backs off geometrically, so a slow task costs few requests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

Profile = tuple[str, str, str]  # (provider, model, resolution)
_Key = tuple[Profile, bool]  # (profile, whether the provider gave an estimate)


@dataclass(frozen=True)
class PollPolicy:
    #: longest gap between polls inside the expected window (provider seconds): bounds the
    #: delay between the task finishing and us noticing
    step: float = 1.8
    #: never poll more often than this
    min_interval: float = 0.5
    #: past the expected window, gaps grow by this factor up to ``max_interval``
    backoff: float = 1.5
    max_interval: float = 30.0
    #: assumed ratio range (actual / estimate) before anything has been observed
    prior_low: float = 0.9
    prior_high: float = 1.15
    #: duration assumed when the provider gives no estimate and nothing has been observed
    default_duration: float = 30.0
    #: observations kept per profile
    memory: int = 64


class PollPlanner:
    def __init__(self, policy: PollPolicy | None = None) -> None:
        self.policy = policy or PollPolicy()
        self._ratios: dict[_Key, deque[float]] = {}

    @staticmethod
    def _base(estimate: float | None) -> float | None:
        return estimate if estimate is not None and estimate > 0 else None

    def _range(self, key: _Key) -> tuple[float, float]:
        seen = self._ratios.get(key)
        if not seen or len(seen) < 3:
            return self.policy.prior_low, self.policy.prior_high
        return min(seen), max(seen)

    def expected_window(self, profile: Profile, estimate: float | None) -> tuple[float, float]:
        """(earliest, latest) provider seconds after submission the task is expected to end."""
        base = self._base(estimate)
        low, high = self._range((profile, base is not None))
        # without an estimate, ratios are kept against the default duration
        scale = base if base is not None else self.policy.default_duration
        return low * scale, high * scale

    def next_delay(
        self, profile: Profile, estimate: float | None, *, elapsed: float, polls: int
    ) -> float:
        """Provider seconds to wait before the next poll, ``elapsed`` seconds after submit
        and ``polls`` polls so far."""
        p = self.policy
        early, late = self.expected_window(profile, estimate)
        if elapsed < early:
            # First look one step after the earliest expected end: whatever ended before
            # is noticed within a step, and a narrow window is covered by a single poll.
            first = early + min(p.step, late - early)
            return max(p.min_interval, first - elapsed)
        if elapsed < late:
            span = late - early
            steps = max(1, round(span / p.step + 0.4999))
            return max(p.min_interval, min(p.step, span / steps))
        overdue = elapsed - late
        gap = max(p.step, overdue * (p.backoff - 1))
        return max(p.min_interval, min(p.max_interval, gap))

    def observe(
        self,
        profile: Profile,
        estimate: float | None,
        *,
        seen_running_at: float,
        seen_done_at: float,
    ) -> None:
        """Learn from a task that ended between two looks (elapsed provider seconds).

        ``seen_running_at`` is 0 when the first poll already found it done: then it ended
        at most one step earlier than we looked, which pulls the window earlier over time
        if tasks keep finishing before we look."""
        if seen_done_at <= 0:
            return
        if seen_running_at > 0:
            ended = (seen_running_at + seen_done_at) / 2
        else:
            ended = max(self.policy.min_interval, seen_done_at - self.policy.step)
        base = self._base(estimate)
        scale = base if base is not None else self.policy.default_duration
        key = (profile, base is not None)
        self._ratios.setdefault(key, deque(maxlen=self.policy.memory)).append(ended / scale)
