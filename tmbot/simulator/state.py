"""The simulator's bookkeeping, free of HTTP: tasks, per-key windows and slots, credits, stats.

Nothing runs in the background. A task is a record of when it started and how long it takes;
its status is worked out from the clock whenever someone asks, and per-key bookkeeping
(freeing concurrency slots, counting completions, refunds) is settled lazily at the next
request for that key or the next :meth:`SimState.stats` call. So a thousand tasks in flight
cost a thousand small records, nothing more.
"""

from __future__ import annotations

import math
import random
import string
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from tmbot.clock import Clock
from tmbot.simulator.config import SimConfig
from tmbot.simulator.stats import Counters, SimStats, build_stats, key_id

TM = "tastemachine"
VTRIX = "vtrix"

_TM_ID_ALPHABET = string.ascii_letters + string.digits
_VTRIX_ID_ALPHABET = string.ascii_lowercase + string.digits


class Phase(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(slots=True)
class Task:
    task_id: str
    provider: str
    kid: str
    brief: str
    model: str  # core name
    aspect_ratio: str
    resolution: str  # core, lower-case
    taste: str | None
    created_mono: float  # provider seconds, on the simulator clock
    created_wall: float  # provider-time epoch
    duration: float  # provider seconds
    estimate: float
    fails: bool
    variant: int  # picks among answer shapes, fixed per task so answers stay consistent
    cost: int  # credits charged (Taste Machine); 0 otherwise
    ttl: float  # image lifetime after completion, provider seconds
    token: str  # image URL token
    prompt_used: str
    with_text: bool = True  # Vtrix: text part in the output
    settled: bool = False
    image_urls: tuple[str, ...] = ()  # the reference images the create asked for
    held: bool = False  # running until released (SimConfig.hold_tasks)

    @property
    def end_mono(self) -> float:
        return self.created_mono + self.duration

    @property
    def end_wall(self) -> float:
        return self.created_wall + self.duration

    def phase(self, now: float) -> Phase:
        if self.held:
            return Phase.RUNNING
        elapsed = now - self.created_mono
        if elapsed >= self.duration:
            return Phase.FAILED if self.fails else Phase.COMPLETE
        if elapsed < 0.1 * self.duration:
            return Phase.QUEUED
        return Phase.RUNNING

    def expired(self, now: float) -> bool:
        return now >= self.end_mono + self.ttl


@dataclass(slots=True)
class Account:
    """One key at one provider: its request window and its unfinished tasks."""

    window: deque[float] = field(default_factory=deque)
    active: list[Task] = field(default_factory=list)


_TASTE_WORDS = {
    "realistic-photo": (
        "shot on a 35mm lens",
        "soft natural window light",
        "shallow depth of field",
        "true-to-life colour",
        "fine film grain",
    ),
    "default": (
        "editorial composition",
        "bold typographic hierarchy",
        "restrained warm palette",
        "generous negative space",
        "crisp print-ready finish",
    ),
}


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.clock = Clock(scale=config.time_scale)
        self.tasks: dict[str, Task] = {}
        self.by_token: dict[str, Task] = {}
        self.accounts: dict[tuple[str, str], Account] = {}
        self.credits: dict[str, int] = {}  # kid -> balance; set on first use or by set_credits
        self.counters: dict[str, Counters] = {}
        self.totals = Counters()
        self.completions: dict[str, float] = {}
        self.bursts: dict[str | None, int] = {}

    # -- configuration -------------------------------------------------------------------

    def reconfigure(self, config: SimConfig) -> None:
        if config.time_scale != self.config.time_scale:
            self.clock = self.clock.rescaled(config.time_scale)
        if config.seed != self.config.seed and config.seed is not None:
            self.rng.seed(config.seed)
        self.config = config

    def now(self) -> float:
        return self.clock.monotonic()

    # -- randomness ----------------------------------------------------------------------

    def chance(self, rate: float) -> bool:
        """True with probability ``rate``; draws nothing when the rate is 0."""
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    def new_id(self, provider: str) -> str:
        alphabet, length = (_TM_ID_ALPHABET, 16) if provider == TM else (_VTRIX_ID_ALPHABET, 20)
        while True:
            task_id = "".join(self.rng.choice(alphabet) for _ in range(length))
            if task_id not in self.tasks:
                return task_id

    # -- stats ---------------------------------------------------------------------------

    def counters_for(self, kid: str | None) -> list[Counters]:
        """The counter sets a request touches: the key's (when known) and the totals."""
        if kid is None:
            return [self.totals]
        c = self.counters.get(kid)
        if c is None:
            c = self.counters[kid] = Counters()
        return [c, self.totals]

    def stats(self) -> SimStats:
        now = self.now()
        for (_, kid), account in self.accounts.items():
            self.settle(kid, account, now)
        return build_stats(self.counters, self.totals, self.credits, self.completions)

    # -- keys ----------------------------------------------------------------------------

    def account(self, provider: str, kid: str) -> Account:
        a = self.accounts.get((provider, kid))
        if a is None:
            a = self.accounts[(provider, kid)] = Account()
        return a

    def balance(self, key: str) -> int:
        """A Taste Machine key's balance, created from the key conventions on first use."""
        kid = key_id(key)
        if kid not in self.credits:
            if "broke" in key:
                self.credits[kid] = 0
            elif "low" in key:
                self.credits[kid] = 25
            else:
                self.credits[kid] = self.config.default_credits
        return self.credits[kid]

    def set_credits(self, key: str, credits: int) -> None:
        self.credits[key_id(key)] = credits

    def add_burst(self, key: str | None, count: int) -> None:
        target = None if key is None else key_id(key)
        self.bursts[target] = self.bursts.get(target, 0) + max(0, count)

    def take_burst(self, kid: str) -> bool:
        for target in (kid, None):
            left = self.bursts.get(target, 0)
            if left > 0:
                self.bursts[target] = left - 1
                return True
        return False

    # -- limits --------------------------------------------------------------------------

    def settle(self, kid: str, account: Account, now: float) -> None:
        """Free the slots of tasks that have ended; count them; refund failed ones."""
        if not account.active:
            return
        still: list[Task] = []
        for task in account.active:
            phase = task.phase(now)
            if phase is Phase.COMPLETE or phase is Phase.FAILED:
                self.finish(task, phase)
            else:
                still.append(task)
        account.active = still

    def finish(self, task: Task, phase: Phase) -> None:
        if task.settled:
            return
        task.settled = True
        for c in self.counters_for(task.kid):
            if phase is Phase.COMPLETE:
                c.tasks_completed += 1
            else:
                c.tasks_failed += 1
        if phase is Phase.COMPLETE:
            self.completions[task.task_id] = task.end_wall
        elif task.cost:
            self.credits[task.kid] = self.credits.get(task.kid, 0) + task.cost

    def rate_retry_after(self, account: Account, rpm: int, now: float) -> int | None:
        """None when one more request fits the window; else Retry-After in provider seconds."""
        window = self.config.rate_window_seconds
        q = account.window
        while q and q[0] <= now - window:
            q.popleft()
        if len(q) < rpm:
            return None
        oldest = q[len(q) - rpm]
        return max(1, math.ceil(oldest + window - now))

    def concurrency_retry_after(self, account: Account, limit: int, now: float) -> int | None:
        if len(account.active) < limit:
            return None
        soonest = min(t.end_mono for t in account.active)
        return max(1, math.ceil(soonest - now))

    # -- tasks ---------------------------------------------------------------------------

    def create_task(
        self,
        *,
        provider: str,
        kid: str,
        account: Account,
        brief: str,
        model: str,
        aspect_ratio: str,
        resolution: str,
        taste: str | None,
        cost: int,
        with_text: bool = True,
        instant_below: float = 0.0,
        image_urls: tuple[str, ...] = (),
    ) -> Task:
        cfg = self.config
        now = self.now()
        estimate = cfg.estimate_for(model, resolution)
        spread = cfg.duration_spread
        duration = estimate * self.rng.uniform(1 - spread, 1 + spread)
        if duration <= instant_below and not cfg.hold_tasks:
            duration = 0.0
        task = Task(
            task_id=self.new_id(provider),
            provider=provider,
            kid=kid,
            brief=brief,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            taste=taste,
            created_mono=now,
            created_wall=self.clock.wall(),
            duration=duration,
            estimate=estimate,
            fails=self.chance(cfg.task_failure_rate),
            variant=self.rng.randrange(1 << 30),
            cost=cost,
            ttl=cfg.image_ttl_seconds,
            token="".join(self.rng.choice(_VTRIX_ID_ALPHABET) for _ in range(24)),
            prompt_used=self._rewrite(brief, taste),
            with_text=with_text,
            image_urls=image_urls,
            held=cfg.hold_tasks,
        )
        self.tasks[task.task_id] = task
        self.by_token[task.token] = task
        account.active.append(task)
        for c in self.counters_for(kid):
            c.tasks_created += 1
            c.max_concurrent_seen = max(c.max_concurrent_seen, len(account.active))
        if duration == 0.0:
            self.settle(kid, account, now)
        return task

    def release(self) -> int:
        """End the hold on every held task: each ends now, or when its duration is up if
        that is later. How many were held."""
        now = self.now()
        held = [task for task in self.tasks.values() if task.held]
        for task in held:
            task.held = False
            task.duration = max(task.duration, now - task.created_mono)
        return len(held)

    def _rewrite(self, brief: str, taste: str | None) -> str:
        """A plausible 'taste engine' rewrite of the brief."""
        words = _TASTE_WORDS.get(taste or "default", _TASTE_WORDS["default"])
        picked = self.rng.sample(words, 3)
        return f"{brief.strip().rstrip('.')}, {', '.join(picked)}"
