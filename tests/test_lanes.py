"""Lanes, claims and the funds guard of :mod:`storage.lanes` on the session's PostgreSQL:
several coordinators (as several processes would hold) on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import asyncpg

from storage import PostgresStore
from storage.lanes import LEASE, PostgresCoordinator
from tests.harness import Bot
from tmbot.errors import TmbotError
from tmbot.replies import GenerationAccepted
from tmbot.simulator import Simulator

MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]
TEAM = "tm_test_teamGUARDGUARD0009"


@asynccontextmanager
async def coordinators(pg_url: str, count: int) -> AsyncIterator[list[PostgresCoordinator]]:
    async with AsyncExitStack() as stack:
        made: list[PostgresCoordinator] = []
        for _ in range(count):
            store = await PostgresStore.open(pg_url, exclusive=True, shared=True)
            stack.push_async_callback(store.close)
            coordinator = store.coordinator()
            await coordinator.start(
                work=lambda: None, events=lambda _p: None, lost=lambda _l: None, busy=set
            )
            stack.push_async_callback(coordinator.close)
            made.append(coordinator)
        for coordinator in made:  # each knows every live member
            await coordinator.renew()
        yield made


async def lapse(pg_url: str, lane: str) -> None:
    """The lane's lease lapses in the store (its owner stalled or died without giving it up)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE lane_leases SET expires_at = 0 WHERE lane = $1", lane)
    finally:
        await conn.close()


async def test_each_lane_has_one_owner_and_free_lanes_spread_across_live_processes(
    pg_url: str,
) -> None:
    lanes = [f"tastemachine:{n:016x}" for n in range(30)]
    async with coordinators(pg_url, 3) as three:
        assert all(len(c.members) == 3 for c in three)
        won = [await asyncio.gather(*(c.take(lane) for c in three)) for lane in lanes]
        assert all(sum(takes) == 1 for takes in won)  # one owner per lane
        pairs = list(zip(lanes, won, strict=True))
        owned = [{lane for lane, takes in pairs if takes[n]} for n in range(3)]
        assert all(owned)  # spread: every process runs some of them
        assert all(c.owns(lane) for c, mine in zip(three, owned, strict=True) for lane in mine)
        conn = await asyncpg.connect(pg_url)
        try:
            rows = await conn.fetch("SELECT lane, owner FROM lane_leases")
        finally:
            await conn.close()
        by_member = {c.member: n for n, c in enumerate(three)}
        assert {r["lane"]: by_member[r["owner"]] for r in rows} == {
            lane: n for n, mine in enumerate(owned) for lane in mine
        }
        # a lane whose work waited longer than a lease is still not taken from a live owner
        first, second = three[0], three[1]
        lane = sorted(owned[0])[0]
        assert not await second.take(lane, waiting=LEASE * 2)
        # an owner that stops gives its lanes up at once: another takes them
        await first.close()
        assert not first.owns(lane)
        assert await second.take(lane, waiting=LEASE * 2)


async def test_outbox_claims_are_held_by_one_process_at_a_time(pg_url: str) -> None:
    async with coordinators(pg_url, 2) as (a, b):
        assert await a.claim("slack", ["g1", "g2"]) == {"g1", "g2"}
        assert await b.claim("slack", ["g1", "g2", "g3"]) == {"g3"}
        assert await b.claim("discord", ["g1"]) == {"g1"}  # per platform
        assert await a.claim("slack", ["g1"]) == {"g1"}  # its own, again
        await a.unclaim("slack", ["g1"])
        assert await b.claim("slack", ["g1", "g2"]) == {"g1"}


async def test_two_processes_cannot_both_spend_the_last_of_a_budget(
    make_bot: MakeBot, pg_url: str
) -> None:
    async with make_bot(database_url=pg_url) as one, make_bot(database_url=pg_url) as two:
        admin = one.actor("admin", admin=True)
        for text in (f"team key {TEAM}", "team budget @alice 8/day"):  # one 8-credit image
            await one.engine.execute(admin, text, one.place)
        brief = "a poster --fast --res 1k"
        answers = await asyncio.gather(
            *(
                bot.engine.execute(bot.actor("alice"), brief, bot.place)
                for bot in (one, two, one, two)
            ),
            return_exceptions=True,
        )
        accepted = [a for a in answers if isinstance(a, GenerationAccepted)]
        refused = [a for a in answers if isinstance(a, TmbotError)]
        assert len(accepted) == 1 and len(refused) == 3, answers
        assert all("budget" in err.user_message for err in refused)
        await one.settled()
        await two.settled()


async def test_an_owner_that_could_not_renew_learns_it_lost_the_lane(pg_url: str) -> None:
    lost: list[str] = []
    async with coordinators(pg_url, 2) as (a, b):
        await a.close()  # restarted below with a `lost` that records
        await a.start(work=lambda: None, events=lambda _p: None, lost=lost.append, busy=set)
        await b.renew()
        lane = "tastemachine:00000000000000aa"
        assert await a.take(lane, waiting=LEASE * 2) and a.owns(lane)
        # a stalled owner: its lease lapses in the store before it renews again
        await lapse(pg_url, lane)
        assert await b.take(lane, waiting=LEASE * 2)
        await a.renew()
        assert lost == [lane] and not a.owns(lane) and b.owns(lane)


async def test_a_lane_taken_while_the_heartbeat_renews_is_kept(pg_url: str) -> None:
    # the renewal compared the lanes held after its UPDATE with those the UPDATE renewed, so
    # a lane taken in between was dropped at once (seen as "tmbot restarted while sending")
    lost: list[str] = []
    async with coordinators(pg_url, 1) as (a,):
        await a.close()
        await a.start(work=lambda: None, events=lambda _p: None, lost=lost.append, busy=set)
        lanes = [f"tastemachine:{n:016x}" for n in range(40)]
        for lane in lanes:
            renewing = asyncio.create_task(a.renew())
            await asyncio.sleep(0)  # the renewal has begun and waits for the database
            assert await a.take(lane, waiting=LEASE * 2)
            await renewing
        await a.renew()
        assert lost == []
        assert all(a.owns(lane) for lane in lanes)


async def test_a_lane_taken_over_carries_its_rate_window_to_the_new_owner(pg_url: str) -> None:
    lane = "tastemachine:00000000000000bb"
    inherited: dict[str, list[float]] = {}
    ages = {lane: [0.5, 20.0, 40.0]}  # what the owner sent in the window: 0.5 s ago, …
    async with coordinators(pg_url, 2) as (a, b):
        for coordinator, sent in ((a, ages.get), (b, lambda _lane: [])):
            await coordinator.close()
            await coordinator.start(
                work=lambda: None,
                events=lambda _p: None,
                lost=lambda _l: None,
                busy=lambda: {lane},
                sent=lambda found, sent=sent: sent(found) or [],
                inherit=lambda found, noted: inherited.__setitem__(found, list(noted)),
            )
        await b.renew()
        assert await a.take(lane, waiting=LEASE * 2)
        await a.renew()  # the heartbeat notes the window
        # the owner dies: its lease lapses without it giving the lane up
        await lapse(pg_url, lane)
        assert await b.take(lane, waiting=LEASE * 2)
        got = sorted(inherited.pop(lane))
        # the three it noted, older now, and the one of its last heartbeat once more (it may
        # have sent as much again before it died)
        assert len(got) == 4
        since = got[1] - 0.5  # from the note to the takeover
        assert 0.0 <= since < 5.0
        assert abs(got[2] - got[1] - 19.5) < 0.01 and abs(got[3] - got[1] - 39.5) < 0.01
        # as if sent a heartbeat (1.5 s) after the one it noted 0.5 s before its note
        assert abs(got[0] - max(0.0, since - 1.0)) < 0.01
        # given up on purpose: what it noted as it closed, nothing assumed after
        ages[lane] = [1.0]
        await b.close()
        await a.close()
        await a.start(
            work=lambda: None,
            events=lambda _p: None,
            lost=lambda _l: None,
            busy=set,
            inherit=lambda found, noted: inherited.__setitem__(found, list(noted)),
        )
        await b.start(
            work=lambda: None,
            events=lambda _p: None,
            lost=lambda _l: None,
            busy=set,
            sent=lambda _lane: [1.0],
        )
        assert await b.take(lane, waiting=LEASE * 2)
        await b.close()
        assert await a.take(lane, waiting=LEASE * 2)
        (only,) = inherited.pop(lane)
        assert 1.0 <= only < 5.0


async def test_one_process_on_sqlite_owns_everything_without_asking_the_store(
    make_bot: MakeBot,
) -> None:
    async with make_bot() as bot:
        coordinator = bot.runtime.coordinator
        assert coordinator.sole and coordinator.owns("tastemachine:any")
        assert await coordinator.take("tastemachine:any")
        assert await coordinator.claim("test", ["g1"]) == {"g1"}


async def test_two_engines_on_one_database_hand_each_event_over_once(
    make_bot: MakeBot, pg_url: str, sim: Simulator
) -> None:
    async with make_bot(database_url=pg_url) as one, make_bot(database_url=pg_url) as two:
        admin = one.actor("admin", admin=True)
        await one.engine.execute(admin, f"team key {TEAM}", one.place)
        asked = await asyncio.gather(
            *(
                bot.engine.execute(bot.actor(f"member{n}"), f"poster {n} --fast", bot.place)
                for n in range(16)
                for bot in ((one, two)[n % 2],)
            )
        )
        ids = [a.generation.id for a in asked if isinstance(a, GenerationAccepted)]
        assert len(ids) == 16
        await asyncio.gather(one.settled(60), two.settled(60))
        for gid in ids:
            posts = one.recorder.images(gid) + two.recorder.images(gid)
            kinds = [type(e).__name__ for e in one.recorder.of(gid) + two.recorder.of(gid)]
            assert len(posts) == 1 and kinds.count("Accepted") == 1, (gid, kinds)
            assert kinds.count("Delivered") == 1 and kinds.count("Started") == 1, (
                gid,
                [type(e).__name__ for e in one.recorder.of(gid)],
                [type(e).__name__ for e in two.recorder.of(gid)],
                [
                    (e.generation.status, e.generation.task_id)
                    for e in one.recorder.of(gid) + two.recorder.of(gid)
                ],
                sim.stats().for_key(TEAM),
            )
    used = sim.stats().for_key(TEAM)  # one lane: its limits held across both engines
    assert used.tasks_created == 16 and used.rate_limited == 0
    assert used.max_concurrent_seen <= 10
