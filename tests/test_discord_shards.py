"""Discord's gateway shards across real ``tmbot run`` processes on one PostgreSQL database,
against the fake Discord (REST and a gateway that routes each guild's events to its shard's
session only) and the simulator over HTTP: each shard held by one process at a time, an
interaction in a guild of each shard answered and its image posted once, a killed holder's
shard taken over by another process, and a process holding no shard posting through REST."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from storage.lanes import LEASE, preferred
from tests.discord_helpers import CALLBACK, MESSAGES
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import EVERYONE_PERMISSIONS, FakeChannel
from tests.procs import bot_env
from tests.run_helpers import BotProcess, start_run
from tmbot.coordination import lane_of
from tmbot.domain import ApiKey, ProviderName
from tmbot.simulator import SimConfig, Simulator

SCALE = 20.0
SHARDS = 2
#: what the fake's GET /gateway/bot says: a process spaces its IDENTIFYs 5 s / 4 apart
MAX_CONCURRENCY = 4
CONNECTED = re.compile(r"discord shard (\d+) of \d+ (connected|disconnected)")


@dataclass
class World:
    sim: Simulator
    fake: FakeDiscord
    channels: list[FakeChannel]  # a channel of a guild on each shard, by shard
    env: dict[str, str]  # on a SQLite file in tmp_path
    pg_url: str = ""

    def on_postgresql(self, url: str) -> None:
        self.env["TMBOT_DATABASE_URL"] = self.pg_url = url


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = SimConfig(time_scale=SCALE, seed=5)
    async with (
        Simulator(config) as sim,
        FakeDiscord(shards=SHARDS, default_guild=False, max_concurrency=MAX_CONCURRENCY) as fake,
    ):
        channels = []
        for shard in range(SHARDS):
            guild = fake.add_guild(f"Guild on shard {shard}", shard=shard)
            channels.append(guild.add_text_channel("general"))
            guild.add_member(fake.bot, [guild.add_role("tmbot", EVERYONE_PERMISSIONS)])
            guild.add_member(fake.owner)
        env = bot_env(
            sim.base_url,
            tmp_path / "bot.db",
            scale=SCALE,
            extra={
                "TMBOT_SECRET_KEY": Fernet.generate_key().decode(),
                "TMBOT_LOG_FORMAT": "json",
                "TMBOT_DISCORD_SHARDS": str(SHARDS),
                "DISCORD_TOKEN": fake.token,
                "DISCORD_API_URL": fake.api_url,
            },
        )
        env = {k: v for k, v in env.items() if not k.startswith(("SLACK_", "PORT"))}
        yield World(sim, fake, channels, env)


def shards_of(bot: BotProcess) -> set[int]:
    """The shards a process says it holds now (its connected/disconnected lines)."""
    held: set[int] = set()
    for line in bot.out:
        match = CONNECTED.search(line)
        if match:
            shard = int(match.group(1))
            (held.add if match.group(2) == "connected" else held.discard)(shard)
    return held


def uploads(fake: FakeDiscord) -> list[int]:
    """The guild of every image posted (files sent to a channel, answered 200)."""
    return [
        fake.channel(int(c.params["channel_id"])).guild_id or 0
        for c in fake.calls_to("POST", MESSAGES)
        if c.files and c.status == 200
    ]


async def interact(world: World, shard: int, brief: str) -> int:
    """A /taste interaction in the guild on ``shard``; its id."""
    data = world.fake.slash_command("taste", {"brief": brief}, channel=world.channels[shard])
    assert await world.fake.dispatch("INTERACTION_CREATE", data) == 1  # one session got it
    return int(data["id"])


def answers(fake: FakeDiscord, interaction: int) -> int:
    return sum(
        1 for c in fake.calls_to("POST", CALLBACK) if int(c.params["interaction_id"]) == interaction
    )


async def every_view_has(pg_url: str, count: int, timeout: float = 15) -> list[str]:
    """The live members once there are ``count`` and each has renewed since the newest
    joined (its heartbeat reads the live members as it renews, so each knows all of them).
    The store has no notice for renewals: this looks every tenth of a second."""
    conn = await asyncpg.connect(pg_url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                rows = await conn.fetch(
                    "SELECT member, started_at, expires_at FROM members"
                    " WHERE expires_at > extract(epoch from clock_timestamp())"
                )
                newest = max((r["started_at"] for r in rows), default=0.0)
                renewed = all(r["expires_at"] - LEASE > newest for r in rows)
                if len(rows) == count and renewed:
                    return [str(r["member"]) for r in rows]
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def lane_owner(pg_url: str, lane: str) -> str | None:
    conn = await asyncpg.connect(pg_url)
    try:
        owner = await conn.fetchval("SELECT owner FROM lane_leases WHERE lane = $1", lane)
        return None if owner is None else str(owner)
    finally:
        await conn.close()


async def until(
    fake: FakeDiscord, what: Callable[[], bool], timeout: float, said: str, bots: list[BotProcess]
) -> None:
    """Wait until ``what()``, looking again whenever a process prints a line or the fake's
    gateway changes (a session identified or closed)."""
    deadline = time.monotonic() + timeout
    while not what():
        left = deadline - time.monotonic()
        if left <= 0:
            tails = "\n".join(b.text()[-1500:] for b in bots)
            raise AssertionError(f"{said} within {timeout:g} s\n{tails}")
        waits = [asyncio.ensure_future(_changed(b)) for b in bots]
        waits.append(asyncio.ensure_future(_fake_changed(fake)))
        try:
            await asyncio.wait(waits, timeout=min(left, 1.0), return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()


async def _changed(bot: BotProcess) -> None:
    async with bot.changed:
        await bot.changed.wait()


async def _fake_changed(fake: FakeDiscord) -> None:
    async with fake._changed:
        await fake._changed.wait()


async def test_each_shard_is_held_once_answered_in_its_guild_and_taken_over_when_killed(
    world: World, pg_url: str
) -> None:
    world.on_postgresql(pg_url)
    fake = world.fake
    bots = [await start_run(world.env) for _ in range(2)]
    try:
        for bot in bots:
            await bot.wait_line(r"tmbot run: ready \(")
        # the two spread the two shards between them, one each, one session per shard
        await until(
            fake,
            lambda: (
                [len(shards_of(b)) for b in bots] == [1, 1]
                and all(len(s) == 1 for s in fake.shard_holders().values())
                and len(fake.shard_holders()) == SHARDS
            ),
            30,
            "the two processes did not hold one shard each",
            bots,
        )
        rest = await start_run(world.env)
        bots.append(rest)
        ready = await rest.wait_line(r"tmbot run: ready \(")
        assert "REST only" in ready[0]
        assert shards_of(rest) == set()

        # the key of the guild on shard 1 is one whose lane goes to the process holding no
        # shard (the lanes' rendezvous hashing over the live processes, all three alive)
        members = await every_view_has(world.pg_url, 3)
        rest_member = next(m for m in members if m.startswith(f"{rest.proc.pid}@"))
        keys = [f"tm_test_shardKeyNumber{n:06d}" for n in range(1000)]
        key1 = next(
            k
            for k in keys
            if preferred(lane_of(ProviderName.TASTEMACHINE, ApiKey(k)), members) == rest_member
        )
        key0 = next(k for k in keys if k != key1)
        for shard, key in ((0, key0), (1, key1)):
            bound = await interact(world, shard, f"team key {key}")
            await fake.wait_for(
                lambda c, i=bound: (
                    c.route == CALLBACK
                    and int(c.params["interaction_id"]) == i
                    and "Saved the team" in json.dumps(c.json)
                ),
                timeout=30,
            )
        asked = [
            await interact(world, shard, f"a poster for shard {shard} --fast --res 1k")
            for shard in range(SHARDS)
        ]
        await fake.wait_for(lambda _: len(uploads(fake)) >= SHARDS, timeout=60)
        lane1 = lane_of(ProviderName.TASTEMACHINE, ApiKey(key1))
        assert await lane_owner(world.pg_url, lane1) == rest_member
        # the process holding no shard posted that image (REST only)
        await rest.wait_line(r"posted the image of", stderr=True, timeout=30)
        assert sorted(uploads(fake)) == sorted(c.guild_id for c in world.channels)
        assert all(answers(fake, i) == 1 for i in asked)

        # kill -9 the holder of shard 0: another process identifies shard 0 and answers
        holder = next(b for b in bots if 0 in shards_of(b))
        holder.proc.kill()
        await holder.proc.wait()
        killed = time.monotonic()
        survivors = [b for b in bots if b is not holder]
        await until(
            fake,
            lambda: (
                any(0 in shards_of(b) for b in survivors)
                and len(fake.shard_holders().get(0, [])) == 1
            ),
            20,
            "no other process took shard 0 over",
            survivors,
        )
        takeover = time.monotonic() - killed
        print(f"shard 0 taken over {takeover:.1f} s after its holder was killed")
        assert takeover < 15
        again = await interact(world, 0, "a lighthouse after the takeover --fast --res 1k")
        await fake.wait_for(lambda _: len(uploads(fake)) >= SHARDS + 1, timeout=60)
        assert answers(fake, again) == 1
        assert Counter(uploads(fake))[world.channels[0].guild_id] == 2

        # SIGTERM gives a process's shards up at once: the last one takes them all
        first, last = survivors
        stopping = time.monotonic()
        assert await first.stop() == 0, first.text()[-3000:]
        await until(
            fake,
            lambda: (
                shards_of(last) == {0, 1}
                and all(len(fake.shard_holders().get(s, [])) == 1 for s in range(SHARDS))
            ),
            15,
            "the last process did not take every shard",
            [last],
        )
        handed = time.monotonic() - stopping
        print(f"shards of a stopped process taken over {handed:.1f} s after SIGTERM")
        assert fake.shard_conflicts == []  # never two sessions on one shard at once
        identified = Counter(fake.identified_shards())
        print(f"identifies per shard: {dict(identified)}")
        assert identified[0] >= 2 and identified[1] >= 1
        assert await last.stop() == 0, last.text()[-3000:]
        assert fake.token not in "".join(b.text() for b in bots)
    finally:
        for bot in bots:
            if bot.proc.returncode is None:
                bot.proc.kill()
                await bot.proc.wait()


async def bind_and_ask(world: World, shard: int, key: str, brief: str) -> int:
    """Bind ``key`` as the team key of the guild on ``shard``, then ask for ``brief`` there;
    the id of the brief's interaction."""
    bound = await interact(world, shard, f"team key {key}")
    await world.fake.wait_for(
        lambda c: (
            c.route == CALLBACK
            and int(c.params["interaction_id"]) == bound
            and "Saved the team" in json.dumps(c.json)
        ),
        timeout=30,
    )
    return await interact(world, shard, brief)


async def test_one_process_on_sqlite_holds_every_shard_discord_recommends(world: World) -> None:
    world.env["TMBOT_DISCORD_SHARDS"] = "auto"  # the fake's GET /gateway/bot says 2
    bot = await start_run(world.env)
    try:
        ready = await bot.wait_line(r"tmbot run: ready \(")
        assert "gateway: shard 0, 1 of 2" in ready[0]
        holders = world.fake.shard_holders()
        assert sorted(holders) == [0, 1] and all(len(s) == 1 for s in holders.values())
        asked = [
            await bind_and_ask(world, s, f"tm_test_soleShardKey{s:08d}", f"a kite {s} --fast")
            for s in range(SHARDS)
        ]
        await world.fake.wait_for(lambda _: len(uploads(world.fake)) >= SHARDS, timeout=60)
        assert sorted(uploads(world.fake)) == sorted(c.guild_id for c in world.channels)
        assert all(answers(world.fake, i) == 1 for i in asked)
        assert await bot.stop() == 0, bot.text()[-3000:]
        assert Counter(world.fake.identified_shards()) == Counter({0: 1, 1: 1})
        first, second = world.fake.identify_times
        assert second - first >= 5.0 / MAX_CONCURRENCY - 0.05  # Discord's IDENTIFY limit
        assert world.fake.shard_conflicts == []
    finally:
        if bot.proc.returncode is None:
            bot.proc.kill()
            await bot.proc.wait()


async def test_a_shard_count_that_is_not_a_number_is_refused_in_one_sentence(
    world: World,
) -> None:
    world.env["TMBOT_DISCORD_SHARDS"] = "two"
    bot = await start_run(world.env)
    assert await bot.finished(timeout=60) == 2
    assert "TMBOT_DISCORD_SHARDS must be a whole number of gateway shards" in bot.text()
    assert world.fake.identifies == []
