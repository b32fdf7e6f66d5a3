"""Measuring the process itself: event-loop lag and resident memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import sys
import threading
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


class RssSampler:
    """Samples this process's RSS from a thread (so a busy loop does not skew it)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._proc = psutil.Process()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self._proc.memory_info().rss))
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_now())
        return self.peak


@dataclass(frozen=True)
class Measured:
    """One side's run of a scenario: when, whether it finished, loop lag and memory."""

    t0: float
    t_end: float
    timed_out: bool
    lag: dict[str, float | int | None]
    rss: dict[str, int]

    def fields(self) -> dict[str, object]:
        return {
            "t0": self.t0,
            "t_end": self.t_end,
            "timed_out": self.timed_out,
            "lag": self.lag,
            "rss": self.rss,
        }


async def measure(work: Awaitable[None], *, limit: float, rss_start: int) -> Measured:
    """Run ``work`` under the loop-lag probe and the RSS sampler, within ``limit`` seconds."""
    rss_setup = rss_now()
    probe = LagProbe()
    sampler = RssSampler()
    probe.start()
    sampler.start()
    t0 = time.monotonic()
    timed_out = False
    try:
        async with asyncio.timeout(limit):
            await work
    except TimeoutError:
        timed_out = True
    t_end = time.monotonic()
    lag = await probe.stop()
    peak_sampled = sampler.stop()
    rss = {
        "start": rss_start,
        "setup": rss_setup,
        "peak": max(peak_sampled, peak_rss()),
        "peak_sampled": peak_sampled,
    }
    return Measured(t0, t_end, timed_out, lag, rss)
