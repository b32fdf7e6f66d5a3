"""The per-key sliding window: never more than the budget in any window."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from tmbot.clock import Clock
from tmbot.scheduling.ratelimit import RateWindow


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


async def served_order(waiters: list[tuple[str, int, float]]) -> list[str]:
    """The order in which (name, priority, chance) requests, arriving in that order at a full
    window, are served."""
    window = RateWindow(clock=Clock(scale=600.0), budget=2, window=60.0, margin=0.5)
    await window.acquire()
    await window.acquire()  # the window is full now
    order: list[str] = []

    async def one(name: str, priority: int, chance: float) -> None:
        await window.acquire(priority, value=lambda: chance)
        order.append(name)

    tasks = []
    for waiter in waiters:
        tasks.append(asyncio.create_task(one(*waiter)))
        await asyncio.sleep(0)  # let it join the queue before the next arrives
    await asyncio.gather(*tasks)
    return order


async def test_creates_go_before_polls_when_the_budget_is_short() -> None:
    from tmbot.scheduling.ratelimit import CREATE, POLL

    order = await served_order(
        [(f"poll{i}", POLL, 1.0) for i in range(3)] + [("create", CREATE, 1.0)]
    )
    assert order[0] == "create"  # arrived last, served first
    assert order[1:] == ["poll0", "poll1", "poll2"]  # the rest (equally likely) in arrival order


async def test_a_cancelled_waiter_does_not_block_the_queue() -> None:
    clock = Clock(scale=600.0)
    window = RateWindow(clock=clock, budget=1, window=60.0, margin=0.5)
    await window.acquire()
    stuck = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    await window.acquire()  # served once the window has room, not blocked forever
    assert window.waiting == 0


async def test_requests_are_spread_out_not_bunched_into_the_window() -> None:
    """After a burst of half the budget, further requests come about one per
    window / budget seconds, instead of filling the window and then waiting for it to roll."""
    clock = Clock(scale=60.0)  # coarse enough that a busy machine's loop lag cannot skew it
    window = RateWindow(clock=clock, budget=20, window=60.0, margin=0.0)
    stamps = []
    for _ in range(15):
        await window.acquire()
        stamps.append(clock.monotonic())
    assert stamps[9] - stamps[0] < 1.0  # the burst goes at once
    gaps = [b - a for a, b in pairwise(stamps[10:])]
    assert all(gap >= 2.5 for gap in gaps)  # then ~3 s apart: 20 per 60 s, spread out
    assert stamps[-1] - stamps[0] < 30.0  # and the last did not wait for the window to roll


async def test_polls_go_by_their_chance_of_finding_the_task_done() -> None:
    from tmbot.scheduling.ratelimit import POLL

    order = await served_order([("unlikely", POLL, 0.1), ("sure", POLL, 1.0), ("even", POLL, 0.5)])
    assert order == ["sure", "even", "unlikely"]


def test_the_worth_a_poll_needs_rises_as_the_window_fills() -> None:
    from tmbot.scheduling.ratelimit import value_floor

    assert value_floor(0.0) == value_floor(0.3) == 0.0  # a quiet key polls freely
    assert 0.0 < value_floor(0.65) < value_floor(0.9) < 1.0
    assert value_floor(1.0) == 1.0  # a full window: only polls sure to free a slot


async def test_an_unlikely_poll_waits_while_the_window_is_busy() -> None:
    """With 6 of 10 requests spent, a poll with a 10% chance is held back (and weighed
    again as its chance grows), while a sure one goes at once."""
    from tmbot.scheduling.ratelimit import POLL

    clock = Clock(scale=600.0)
    window = RateWindow(clock=clock, budget=10, window=60.0, margin=0.5)
    for _ in range(5):
        await window.acquire()
    chance = 0.1
    unlikely = asyncio.create_task(window.acquire(POLL, value=lambda: chance))
    await window.acquire(POLL, value=lambda: 1.0)
    await clock.sleep(6.0)  # room and tokens, but not worth it yet
    assert not unlikely.done()
    chance = 0.9
    await asyncio.wait_for(unlikely, 1.0)  # weighed again within half a provider second


async def test_a_poll_leaves_room_for_the_create_it_may_free() -> None:
    """A poll keeping one request in reserve waits for two tokens, so a create that turns
    up once one token is back goes at once instead of waiting for the next."""
    from tmbot.scheduling.ratelimit import CREATE, POLL

    clock = Clock(scale=60.0)
    window = RateWindow(clock=clock, budget=4, window=60.0, margin=0.0)  # 2 tokens, 1 per 15 s
    await window.acquire()
    await window.acquire()  # the bucket is empty
    poll = asyncio.create_task(window.acquire(POLL, 1))
    await clock.sleep(20.0)  # one token is back: enough for a poll, but it keeps it
    assert not poll.done()
    before = clock.monotonic()
    await window.acquire(CREATE)
    assert clock.monotonic() - before < 1.0
    await asyncio.wait_for(poll, 2.0)


def test_requests_another_process_sent_count_in_the_window() -> None:
    clock = Clock(scale=1.0)
    window = RateWindow(clock=clock, budget=5, window=60.0, margin=1.0)
    window.seed([10.0, 20.0, 30.0, 40.0, 50.0, 70.0])  # the last is out of the window already
    assert window.used() == 5
    # the oldest counted went out 50 s ago: room again once it is 61 s old
    assert 10.5 < window.delay() <= 11.0
    assert [round(age) for age in window.ages()] == [50, 40, 30, 20, 10]
