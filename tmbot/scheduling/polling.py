"""When to poll a running task.

The first poll goes near the moment the task is expected to end, not every 2 s from
submission. For each (provider, model, resolution) profile the planner learns two things,
as ratios of the provider's estimate (or of a default duration where there is none):

* ``first``: where the first look goes. It is tracked as the ``first_quantile`` of the
  duration distribution (Robbins-Monro): each task found done at the first look nudges it
  earlier, each found still running nudges it later, so about that share of tasks cost
  exactly one poll. A first-look catch tells only that the task ended *before* we looked;
  it is never mistaken for an end time.
* ``late``: the 95th percentile of the end times of the tasks that outlived the first look
  (each known to within one step). Between ``first`` and ``late`` the planner looks every
  ``step`` seconds; past ``late`` it backs off geometrically, so a slow task stays cheap.

With durations spread ±10 % around a 30 s estimate this costs ~1.7 polls per image with half
the tasks noticed within a second of ending (the arithmetic is in tests/test_polling.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

Profile = tuple[str, str, str]  # (provider, model, resolution)
_Key = tuple[Profile, bool]  # (profile, whether the provider gave an estimate)


@dataclass(frozen=True)
class PollPolicy:
    #: share of tasks the first look should find already done
    first_quantile: float = 0.6
    #: gap between looks after the first, up to the expected late end (provider seconds):
    #: bounds the delay between a task finishing and us noticing
    step: float = 1.0
    #: never poll more often than this
    min_interval: float = 0.5
    #: past the expected window, gaps grow by this factor up to ``max_interval``
    backoff: float = 1.5
    max_interval: float = 30.0
    #: assumed (first, late) ratios before anything has been observed
    prior_first: float = 1.0
    prior_late: float = 1.15
    #: how far one observation moves ``first`` (in ratio units) once warmed up
    learning_rate: float = 0.01
    #: duration assumed when the provider gives no estimate and nothing has been observed
    default_duration: float = 30.0
    #: late-end observations kept per profile
    memory: int = 64


@dataclass
class _Learned:
    first: float
    observations: int = 0
    #: consecutive nudges in the same direction (+ later, - earlier)
    streak: int = 0
    late_ends: deque[float] = field(default_factory=deque)


class PollPlanner:
    def __init__(self, policy: PollPolicy | None = None) -> None:
        self.policy = policy or PollPolicy()
        self._learned: dict[_Key, _Learned] = {}

    def _scale(self, estimate: float | None) -> tuple[float, bool]:
        if estimate is not None and estimate > 0:
            return estimate, True
        return self.policy.default_duration, False

    def _state(self, key: _Key) -> _Learned:
        state = self._learned.get(key)
        if state is None:
            state = _Learned(first=self.policy.prior_first)
            state.late_ends = deque(maxlen=self.policy.memory)
            self._learned[key] = state
        return state

    def expected_window(self, profile: Profile, estimate: float | None) -> tuple[float, float]:
        """(first look, expected late end) in provider seconds after submission."""
        scale, has_estimate = self._scale(estimate)
        state = self._learned.get((profile, has_estimate))
        first = state.first if state else self.policy.prior_first
        late = self.policy.prior_late
        if state and len(state.late_ends) >= 3:
            ordered = sorted(state.late_ends)
            late = ordered[-1 - len(ordered) // 20]  # 95th percentile: one odd task is ignored
        return first * scale, max(first, late) * scale

    def done_chance(
        self, profile: Profile, estimate: float | None, *, elapsed: float, seen_running: float
    ) -> float:
        """The chance that a task ``elapsed`` seconds after submit, last seen running at
        ``seen_running``, has ended: durations are taken as spread evenly over the range
        that puts the first look at its quantile and the late end at the 95th percentile.
        Past that range nothing is known, so a look there counts as sure to be worth it."""
        first, late = self.expected_window(profile, estimate)
        q = self.policy.first_quantile
        width = max((late - first) / (0.95 - q), 0.5)
        low = first - q * width

        def share(t: float) -> float:
            return min(1.0, max(0.0, (t - low) / width))

        seen = share(seen_running)
        if seen >= 1.0:
            return 1.0
        return max(0.0, (share(elapsed) - seen) / (1.0 - seen))

    def next_delay(
        self, profile: Profile, estimate: float | None, *, elapsed: float, polls: int
    ) -> float:
        """Provider seconds to wait before the next poll, ``elapsed`` seconds after submit
        and ``polls`` polls so far."""
        p = self.policy
        first, late = self.expected_window(profile, estimate)
        if polls == 0 and elapsed < first:
            return max(p.min_interval, first - elapsed)
        if elapsed < late:
            return max(p.min_interval, p.step)
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
        """Learn from a task seen done at ``seen_done_at`` (provider seconds after submit),
        last seen running at ``seen_running_at`` (0 when the first look found it done)."""
        if seen_done_at <= 0:
            return
        scale, has_estimate = self._scale(estimate)
        state = self._state((profile, has_estimate))
        p = self.policy
        state.observations += 1
        # large steps while little is known, then the steady learning rate; a long run of
        # nudges the same way means the estimate is off, so those steps grow (up to 4x)
        caught_first = seen_running_at <= 0
        direction = -1 if caught_first else 1
        same_way = state.streak * direction > 0
        state.streak = state.streak + direction if same_way else direction
        rate = max(p.learning_rate, 0.02 / state.observations**0.5)
        rate *= min(4.0, 1 + max(0, abs(state.streak) - 8) / 4)
        if caught_first:
            state.first -= rate * (1 - p.first_quantile)
        else:
            state.first += rate * p.first_quantile
            state.late_ends.append((seen_running_at + seen_done_at) / 2 / scale)
        state.first = max(0.05, state.first)
