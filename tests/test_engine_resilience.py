"""The engine keeps paid work safe: restarts past the deadline, a chat platform that
fails to post, keys shared by several bindings, long queues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.harness import PLACE, Recorder, running_bot
from tmbot.events import Delivered, Event, Failed, Queued, Started
from tmbot.ports import Notice
from tmbot.records import MessageLink
from tmbot.scheduling.scheduler import SchedulerSettings, worth_reporting
from tmbot.simulator import SimConfig, Simulator

SCALE = 60.0
KEY = "tm_test_resilienceAAAA01"


async def test_a_task_resumed_past_its_deadline_is_looked_at_before_giving_up(
    tmp_path: Path,
) -> None:
    async with Simulator(SimConfig(time_scale=SCALE, seed=21)) as sim:
        async with running_bot(tmp_path, sim) as bot:
            await bot.bind("alice", KEY)
            gen = await bot.ask("alice", "a poster")
            await bot.recorder.started(1)
        # the bot is down while the image finishes (40 provider seconds pass)
        await sim.clock.sleep(40.0)
        settings = SchedulerSettings(deadline=5.0)  # long past by now
        async with running_bot(tmp_path, sim, settings=settings, resume=False) as bot:
            planner = bot.engine.scheduler.planner
            profile = ("tastemachine", "nano-banana-pro", "2k")
            before = planner.expected_window(profile, 30.0)
            assert await bot.engine.resume() == 1
            await bot.settled()
            # its duration includes our downtime: not something to learn polling from
            assert planner.expected_window(profile, 30.0) == before
        stats = sim.stats().for_key(KEY)
    (final,) = bot.recorder.final(gen.id)
    assert isinstance(final, Delivered)  # paid for, finished: delivered, not thrown away
    assert stats.tasks_created == 1


@dataclass
class FlakyChat(Recorder):
    """A platform whose progress edits always fail and whose uploads fail ``upload_failures``
    times before working."""

    upload_failures: int = 0

    async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
        if isinstance(event, Queued | Started):
            raise RuntimeError("chat API answered 500")
        if isinstance(event, Delivered) and self.upload_failures > 0:
            self.upload_failures -= 1
            raise RuntimeError("upload failed")
        return await super().notify(event, notice)


async def test_progress_notices_that_fail_do_not_fail_the_work(tmp_path: Path) -> None:
    chat = FlakyChat(upload_failures=2)
    async with (
        Simulator(SimConfig(time_scale=SCALE, seed=22)) as sim,
        running_bot(tmp_path, sim, recorder=chat) as bot,
    ):
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.settled()
    (final,) = chat.final(gen.id)
    assert isinstance(final, Delivered)


async def test_an_image_that_cannot_be_posted_fails_with_a_reason(tmp_path: Path) -> None:
    chat = FlakyChat(upload_failures=99)
    async with (
        Simulator(SimConfig(time_scale=SCALE, seed=23)) as sim,
        running_bot(tmp_path, sim, recorder=chat) as bot,
    ):
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.settled()
        assert await bot.store.unfinished_generations() == []
    (final,) = chat.final(gen.id)
    assert isinstance(final, Failed) and "could not be posted" in final.reason


async def test_one_key_bound_twice_keeps_one_set_of_limits(tmp_path: Path) -> None:
    """Alice's personal key is also the team's key: both bindings share the key's limits."""
    async with Simulator(SimConfig(time_scale=SCALE, seed=24)) as sim:
        async with running_bot(tmp_path, sim) as bot:
            await bot.bind("alice", KEY)
            await bot.engine.execute(bot.actor("admin", admin=True), f"team key {KEY}", PLACE)
            for i in range(12):
                await bot.ask("alice", f"mine {i} --fast --res 1k")
                await bot.ask("bob", f"the team {i} --fast --res 1k")  # bob has no key: team's
            await bot.settled()
        stats = sim.stats().for_key(KEY)
    assert stats.tasks_completed == 24
    assert stats.max_concurrent_seen <= 10
    assert stats.rate_limited == 0


def test_queue_positions_are_coalesced() -> None:
    """A queue of 1,000 draining one slot at a time tells each waiter a few dozen positions,
    not one per slot freed (which would be half a million messages in all)."""
    last, told = None, []
    for position in range(1000, 0, -1):
        if worth_reporting(last, position):
            last = position
            told.append(position)
    assert told[0] == 1000 and told[-3:] == [3, 2, 1]
    assert len(told) <= 40
    assert not worth_reporting(5, 6)  # a newcomer ahead in the rotation: no news
