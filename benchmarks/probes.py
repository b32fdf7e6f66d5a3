"""Measuring the process itself: event-loop lag and resident memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]

#: the lag ticker's period (real seconds)
TICK = 0.010


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class LagProbe:
    """Event-loop lag: a task that wakes every ``TICK`` real seconds on a fixed grid and
    records how late it woke.

    Two views. ``wake``: one sample per wake-up, the overshoot of that sleep (the classic
    ticker). ``grid``: one sample per grid point, the delay a callback due at that moment
    actually waited; a stall of 5 s gives 500 samples from 5 s down to 0 instead of one, so
    its p99 is the lag at a random moment, which long stalls cannot hide behind."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self.wake: list[float] = []
        self.grid: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-probe")

    async def _run(self) -> None:
        tick = self.tick
        origin = time.monotonic()
        k = 1
        while True:
            due = origin + k * tick
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            self.wake.append(max(0.0, now - due))
            while origin + k * tick <= now:
                self.grid.append(now - (origin + k * tick))
                k += 1

    async def stop(self) -> dict[str, float | int | None]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.summary()

    def summary(self) -> dict[str, float | int | None]:
        wake, grid = self.wake, self.grid
        return {
            "samples": len(wake),
            "p50_ms": _ms(percentile(wake, 0.50)),
            "p99_ms": _ms(percentile(wake, 0.99)),
            "max_ms": _ms(max(wake) if wake else None),
            "grid_p99_ms": _ms(percentile(grid, 0.99)),
            "grid_over_50ms": (sum(1 for g in grid if g > 0.05) / len(grid)) if grid else None,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def rss_now() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """The kernel's high-water mark of this process's RSS (bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass(frozen=True)
class Measured:
    """One side's run of a scenario: when, whether it finished, loop lag and memory."""

    t0: float
    t_end: float
    timed_out: bool
    lag: dict[str, float | int | None]
    rss: dict[str, int]
    #: CPU seconds (user + system, every thread) this process spent on the work
    cpu_seconds: float

    def fields(self) -> dict[str, object]:
        return {
            "t0": self.t0,
            "t_end": self.t_end,
            "timed_out": self.timed_out,
            "lag": self.lag,
            "rss": self.rss,
            "cpu_seconds": self.cpu_seconds,
        }


async def measure(work: Awaitable[None], *, limit: float, rss_start: int) -> Measured:
    """Run ``work`` under the loop-lag probe, within ``limit`` seconds. The peak RSS is the
    kernel's own high-water mark: a thread sampling it every 20 ms cost 5-8 % of the bot's
    CPU at load, and could only miss peaks the kernel does not."""
    rss_setup = rss_now()
    probe = LagProbe()
    probe.start()
    cpu0 = _cpu()
    t0 = time.monotonic()
    timed_out = False
    try:
        async with asyncio.timeout(limit):
            await work
    except TimeoutError:
        timed_out = True
    t_end = time.monotonic()
    cpu = _cpu() - cpu0
    lag = await probe.stop()
    rss = {"start": rss_start, "setup": rss_setup, "peak": peak_rss()}
    return Measured(t0, t_end, timed_out, lag, rss, cpu)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
