"""The per-key sliding window: never more than the budget in any window."""

from __future__ import annotations

import asyncio

from tmbot.clock import Clock
from tmbot.ratelimit import RateWindow


async def test_never_more_than_budget_in_any_window() -> None:
    clock = Clock(scale=600.0)  # 60 provider seconds pass in 0.1 s
    window = RateWindow(clock=clock, budget=10, window=60.0, margin=0.5)
    stamps: list[float] = []

    async def one() -> None:
        await window.acquire()
        stamps.append(clock.monotonic())

    await asyncio.gather(*(one() for _ in range(25)))
    stamps.sort()
    assert len(stamps) == 25
    for i in range(len(stamps) - 10):
        # request i+10 goes only after request i has left the window
        assert stamps[i + 10] - stamps[i] >= 60.0
    # and it does not dawdle: 25 requests fit in two windows and a bit
    assert stamps[-1] - stamps[0] < 2 * 60.5 + 30


async def test_block_for_holds_every_request() -> None:
    clock = Clock(scale=1000.0)
    window = RateWindow(clock=clock, budget=100, window=60.0)
    start = clock.monotonic()
    window.block_for(30.0)
    await window.acquire()
    assert clock.monotonic() - start >= 30.0
    assert window.used() == 1


def test_delay_is_zero_when_room() -> None:
    window = RateWindow(clock=Clock(), budget=3, window=60.0)
    assert window.delay() == 0.0
