"""Every fault path of the scheduler, against the simulator's fault knobs over real HTTP.

Each generation must end delivered or failed with a reason a person can read; none is lost,
none stays in a non-final state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Bot, running_bot
from tmbot.events import Delivered, Failed
from tmbot.records import GenStatus
from tmbot.scheduling.scheduler import SchedulerSettings
from tmbot.simulator import SimConfig, Simulator

SCALE = 60.0
KEY = "tm_test_faultsAAAA0001"
FAST = SchedulerSettings(backoff_base=0.5, backoff_cap=4.0)


async def finish(bot: Bot) -> None:
    await bot.settled()
    assert await bot.store.unfinished_generations() == []


async def test_429_slows_the_whole_key_and_the_image_still_arrives(tmp_path: Path) -> None:
    async with (
        Simulator(SimConfig(time_scale=SCALE, seed=1)) as sim,
        running_bot(tmp_path, sim, settings=FAST) as bot,
    ):
        await bot.bind("alice", KEY)
        sim.burst_429(KEY, 3)
        gens = [await bot.ask("alice", f"poster {i}") for i in range(3)]
        await finish(bot)
        stats = sim.stats().for_key(KEY)
    assert all(isinstance(bot.recorder.final(g.id)[0], Delivered) for g in gens)
    assert stats.rate_limited == 3
    # after the first 429 the whole key waited: the burst did not turn into a retry storm
    assert stats.requests <= 3 + 3 * 4


async def test_server_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    async with Simulator(SimConfig(time_scale=SCALE, server_error_rate=0.5, seed=2)) as sim:
        async with running_bot(tmp_path, sim, settings=FAST) as bot:
            await bot.bind("alice", KEY)
            gens = [await bot.ask("alice", f"poster {i}") for i in range(4)]
            await finish(bot)
        stats = sim.stats().for_key(KEY)
    assert all(isinstance(bot.recorder.final(g.id)[0], Delivered) for g in gens)
    assert stats.tasks_created == 4  # a 500 happens before the work: no duplicates


async def test_poll_timeouts_are_retried(tmp_path: Path) -> None:
    config = SimConfig(time_scale=SCALE, seed=3, hang_seconds=2.0)
    async with (
        Simulator(config) as sim,
        running_bot(tmp_path, sim, settings=FAST, timeout=0.3) as bot,
    ):
        await bot.bind("alice", KEY)
        gens = [await bot.ask("alice", f"poster {i}") for i in range(3)]
        await bot.recorder.started(3)
        sim.configure(timeout_rate=0.3)
        await finish(bot)
    assert all(isinstance(bot.recorder.final(g.id)[0], Delivered) for g in gens)


async def test_malformed_polls_fail_after_bounded_retries(tmp_path: Path) -> None:
    async with Simulator(SimConfig(time_scale=SCALE, seed=4)) as sim:
        async with running_bot(tmp_path, sim, settings=FAST) as bot:
            await bot.bind("alice", KEY)
            gen = await bot.ask("alice", "a poster")
            await bot.recorder.started(1)  # the create's answer is in; now garble the polls
            sim.configure(malformed_rate=1.0)
            await finish(bot)
        stats = sim.stats().for_key(KEY)
    reason = bot.recorder.failure(gen.id)
    assert "Taste Machine" in reason and reason.endswith(".")
    assert stats.creates == 1
    assert stats.polls == FAST.max_malformed + 1  # bounded: tried, then gave up


async def test_a_garbled_create_answer_is_never_sent_again(tmp_path: Path) -> None:
    """The task exists at the provider but we could not read its id: sending the create
    again would make (and bill) a second image."""
    async with Simulator(SimConfig(time_scale=SCALE, malformed_rate=1.0, seed=4)) as sim:
        async with running_bot(tmp_path, sim, settings=FAST) as bot:
            await bot.bind("alice", KEY)
            gen = await bot.ask("alice", "a poster")
            await finish(bot)
        creates = sim.stats().for_key(KEY).creates
    assert creates == 1
    assert "not sent again (to avoid paying twice)" in bot.recorder.failure(gen.id)


async def test_a_create_that_timed_out_is_never_sent_again(tmp_path: Path) -> None:
    config = SimConfig(time_scale=SCALE, timeout_rate=1.0, hang_seconds=1.0, seed=8)
    async with (
        Simulator(config) as sim,
        running_bot(tmp_path, sim, settings=FAST, timeout=0.2) as bot,
    ):
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await finish(bot)
    reason = bot.recorder.failure(gen.id)
    assert "did not answer in time" in reason and "not sent again" in reason


async def test_failed_task_reports_the_providers_reason(tmp_path: Path) -> None:
    config = SimConfig(time_scale=SCALE, task_failure_rate=1.0, seed=5)
    async with Simulator(config) as sim, running_bot(tmp_path, sim) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await finish(bot)
        stored = await bot.store.get_generation(gen.id)
    reason = bot.recorder.failure(gen.id)
    assert reason and reason.endswith(".")
    assert stored is not None and stored.error == reason  # kept for `history`


async def test_expired_image_link_is_reported(tmp_path: Path) -> None:
    # the link dies a tenth of a provider second after completion: gone before we look
    config = SimConfig(time_scale=SCALE, image_ttl_seconds=0.1, seed=6)
    async with Simulator(config) as sim, running_bot(tmp_path, sim) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await finish(bot)
    assert "expired" in bot.recorder.failure(gen.id)


async def test_task_past_the_deadline_fails_with_a_clear_reason(tmp_path: Path) -> None:
    settings = SchedulerSettings(deadline=120.0)
    async with Simulator(SimConfig(time_scale=SCALE * 5, estimate_seconds=3000.0)) as sim:
        async with running_bot(tmp_path, sim, settings=settings) as bot:
            await bot.bind("alice", KEY)
            gen = await bot.ask("alice", "a poster")
            await finish(bot)
        polls = sim.stats().for_key(KEY).polls
    assert "2 minutes" in bot.recorder.failure(gen.id)
    assert polls <= 12  # it kept looking, cheaply, then gave up


@pytest.mark.parametrize(
    ("key", "words"),
    [("tm_test_revokedAAAA0001", "rejected"), ("tm_test_brokeAAAA0001", "credits")],
)
async def test_key_problems_fail_at_once_without_retrying(
    tmp_path: Path, key: str, words: str
) -> None:
    async with Simulator(SimConfig(time_scale=SCALE)) as sim:
        async with running_bot(tmp_path, sim) as bot:
            await bot.bind("alice", key)
            gen = await bot.ask("alice", "a poster")
            await finish(bot)
        requests = sim.stats().for_key(key).requests
    assert words in bot.recorder.failure(gen.id)
    assert requests == 1


async def test_fault_soak_every_generation_ends_with_a_reason(tmp_path: Path) -> None:
    """100 generations under 10% 5xx, 5% timeouts, 429 bursts, malformed bodies, failed
    tasks and some expired links: each ends delivered or failed with a reason."""
    config = SimConfig(
        time_scale=SCALE,
        server_error_rate=0.10,
        timeout_rate=0.05,
        hang_seconds=1.0,
        malformed_rate=0.03,
        task_failure_rate=0.05,
        seed=7,
    )
    keys = [f"tm_test_soak{i:04d}AAAA" for i in range(5)]
    async with Simulator(config) as sim:
        async with running_bot(tmp_path, sim, settings=FAST, timeout=0.3) as bot:
            for i, key in enumerate(keys):
                await bot.bind(f"user{i}", key)
            gens = []
            for n in range(100):
                if n % 25 == 0:
                    sim.burst_429(keys[n % 5], 4)
                if n == 60:
                    sim.configure(image_ttl_seconds=0.05)  # the last ones' links die at once
                gens.append(await bot.ask(f"user{n % 5}", f"soak poster {n} --fast --res 1k"))
            await finish(bot)
            stored = [await bot.store.get_generation(g.id) for g in gens]
        totals = sim.stats().totals
    outcomes = [bot.recorder.final(g.id) for g in gens]
    assert all(len(o) == 1 for o in outcomes), "each generation ends exactly once"
    failed = [o[0] for o in outcomes if isinstance(o[0], Failed)]
    delivered = [o[0] for o in outcomes if isinstance(o[0], Delivered)]
    assert len(failed) + len(delivered) == 100
    assert all(f.reason and f.reason.endswith(".") for f in failed)
    assert len(delivered) >= 40  # the faults are real, but most work still gets through
    assert all(
        s is not None and s.status in (GenStatus.DELIVERED, GenStatus.FAILED) for s in stored
    )
    assert totals.rate_limited >= 4
