"""What the benchmark runs: four load shapes (and a fault mix), each at its own time scale.

Time scales are chosen per scenario so that the bot's process is never the bottleneck
(its loop lag stays in the milliseconds): heavy scenarios (1,000 generations at once) run
slower than light ones. Every duration the benchmark reports is in provider seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

#: the simulator's per-key limits for The Taste Machine (PROVIDERS.md)
RPM = 60
CONCURRENCY = 10
#: the fewest API requests an image can cost: one create, one poll that finds it done
MIN_REQUESTS_PER_IMAGE = 2
#: nano-banana-pro at 2k: the simulator's estimate; durations are uniform within ±spread
ESTIMATE_SECONDS = 30.0
DURATION_SPREAD = 0.1
#: the naive poller's interval, as the docs suggest
NAIVE_POLL_SECONDS = 2.0


FAULT_LABELS = (
    ("server_error_rate", "500s"),
    ("timeout_rate", "hung requests (504)"),
    ("malformed_rate", "garbled answers"),
    ("task_failure_rate", "failed tasks"),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    keys: int
    users_per_key: int  # more than one: a team key shared by that many users
    briefs_per_user: int
    time_scale: float  # provider seconds per real second, for the bot and the simulator
    sequential: bool = False  # each user waits for an image before sending the next brief
    #: the naive baseline's scale when it differs (its cost per request is fixed in real
    #: time, so a naive poller at 1,000 tasks needs a slower clock to keep its 2 s schedule)
    baseline_scale: float | None = None
    #: SimConfig overrides (fault rates …)
    sim: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    #: real seconds a side may take before the run is cut off
    timeout: float = 240.0

    @property
    def title(self) -> str:
        if self.sequential:
            who = "one user" if self.keys == 1 else f"{self.keys} users, each on a key of their own"
            text = f"{who}, one image at a time ({self.briefs_per_user} in a row)"
        elif self.users_per_key > 1 and self.keys == 1:
            text = f"{self.total} briefs on one team key from {self.users_per_key} users at once"
        else:
            text = f"{self.keys} keys x {self.briefs_per_key} briefs at once ({self.total} in all)"
        faults = [
            f"{100 * float(str(self.sim[name])):g}% {label}"
            for name, label in FAULT_LABELS
            if self.sim.get(name)
        ]
        return text + (f", with {', '.join(faults)}" if faults else "")

    @property
    def briefs_per_key(self) -> int:
        return self.users_per_key * self.briefs_per_user

    @property
    def total(self) -> int:
        return self.keys * self.briefs_per_key

    @property
    def parallel_per_key(self) -> int:
        """How many of a key's images can run at once in this scenario."""
        if self.sequential:
            return self.users_per_key
        return min(CONCURRENCY, self.briefs_per_key)

    @property
    def saturating(self) -> bool:
        """More briefs on a key than it may run at once: work waits for slots."""
        return not self.sequential and self.briefs_per_key > CONCURRENCY

    def scale_for(self, side: str) -> float:
        if side == "baseline" and self.baseline_scale is not None:
            return self.baseline_scale
        return self.time_scale

    def sim_config(self, side: str, seed: int, *, images: str = "stock") -> dict[str, object]:
        """The simulator's settings. ``images="stock"`` serves one picture per size, drawn
        once: a real provider renders on machines of its own, and drawing every brief took
        57 % of this machine's CPU beside the bot; ``"drawn"`` draws each (the old way)."""
        return {
            "time_scale": self.scale_for(side),
            "seed": seed,
            "stock_images": images == "stock",
            **self.sim,
        }


FULL: tuple[Scenario, ...] = (
    Scenario(
        "light",
        keys=3,
        users_per_key=1,
        briefs_per_user=20,
        sequential=True,
        time_scale=40,
    ),
    Scenario(
        "burst",
        keys=1,
        users_per_key=5,
        briefs_per_user=10,
        # slot handover is real time (HTTP, SQLite) times the scale: at x15 the bot's 80 ms
        # to take in 50 briefs reads as 1.2 provider seconds of idle slots
        time_scale=5,
    ),
    Scenario(
        "many-keys",
        keys=200,
        users_per_key=1,
        briefs_per_user=5,
        time_scale=2,
    ),
    Scenario(
        "in-flight",
        keys=100,
        users_per_key=1,
        briefs_per_user=10,
        time_scale=2,
    ),
    Scenario(
        "faults",
        keys=3,
        users_per_key=1,
        briefs_per_user=10,
        time_scale=20,
        sim=MappingProxyType(
            {
                "server_error_rate": 0.05,
                "timeout_rate": 0.02,
                "hang_seconds": 0.5,
                "malformed_rate": 0.03,
                "task_failure_rate": 0.05,
            }
        ),
    ),
)

#: ``--quick``: the same shapes, smaller and faster (a smoke run, not a measurement)
QUICK: tuple[Scenario, ...] = (
    replace(FULL[0], keys=1, briefs_per_user=3, time_scale=60, timeout=60),
    replace(FULL[1], users_per_key=2, briefs_per_user=8, time_scale=60, timeout=60),
    replace(FULL[2], keys=20, time_scale=30, timeout=60),
    replace(FULL[3], keys=10, time_scale=30, timeout=60),
    replace(FULL[4], keys=2, briefs_per_user=5, time_scale=60, timeout=60),
)

NAMES = tuple(s.name for s in FULL)


def scenarios(*, quick: bool) -> dict[str, Scenario]:
    return {s.name: s for s in (QUICK if quick else FULL)}


#: not one of :data:`NAMES` (``benchmarks.run`` does not run it): a steady load on one team key
#: for :mod:`benchmarks.stores`'s takeover measurement; tasks take about 6 real seconds, so
#: ten are at the provider when the lane's owner is killed after the first ten images
TAKEOVER = Scenario(
    "takeover", keys=1, users_per_key=5, briefs_per_user=8, time_scale=5, timeout=120
)
TAKEOVER_QUICK = replace(TAKEOVER, users_per_key=3, briefs_per_user=4, time_scale=10, timeout=60)


def scenario(name: str, *, quick: bool) -> Scenario:
    """A scenario of the table, or the takeover load."""
    if name == TAKEOVER.name:
        return TAKEOVER_QUICK if quick else TAKEOVER
    return scenarios(quick=quick)[name]
