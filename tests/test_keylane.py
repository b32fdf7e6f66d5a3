"""One key's lane: its request budget and its slots work together."""

from __future__ import annotations

import asyncio

from tmbot.capabilities import Limits
from tmbot.clock import Clock
from tmbot.scheduling.ratelimit import CREATE, POLL
from tmbot.scheduling.scheduler import KeyLane, SchedulerSettings


async def test_a_poll_keeps_a_request_for_the_create_waiting_for_its_slot() -> None:
    """With a brief queued for the lane's only slot, a poll does not take the last token:
    the create that its answer may free would otherwise wait for the next one."""
    clock = Clock(scale=60.0)
    settings = SchedulerSettings(budget_reserve=0, window_margin=0.0)
    lane = KeyLane("k", Limits(4, 60.0, 1), clock=clock, settings=settings)  # 2 tokens
    await lane.slots.acquire("alice")  # the one slot is busy …
    queued = asyncio.create_task(lane.slots.acquire("bob"))  # … and bob waits for it
    await asyncio.sleep(0)
    assert lane.slots.waiting == 1
    await lane.permit(CREATE)  # one token left
    poll = asyncio.create_task(lane.permit(POLL))
    await clock.sleep(1.0)
    assert not poll.done()  # one token is there, but it is kept
    before = clock.monotonic()
    await lane.permit(CREATE)
    assert clock.monotonic() - before < 1.0  # the create finds it at once
    lane.slots.release()
    await queued
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)


async def test_without_anyone_waiting_a_poll_takes_the_last_token() -> None:
    clock = Clock(scale=60.0)
    settings = SchedulerSettings(budget_reserve=0, window_margin=0.0)
    lane = KeyLane("k", Limits(4, 60.0, 1), clock=clock, settings=settings)
    await lane.slots.acquire("alice")
    await lane.permit(CREATE)
    before = clock.monotonic()
    await lane.permit(POLL)
    assert clock.monotonic() - before < 1.0
