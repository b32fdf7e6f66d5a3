"""Linked teams and accounts in the core: the rules of `team link` / `link` and their codes,
against the real engine (SQLite file, vault, scheduler, simulator) with an injected wall
clock. Slack and Discord are stood in for by recorders named after them; what a request
paid with is read at the simulator."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.console import Console
from tests.harness import FAST_DISPATCH, Recorder, _vault
from tests.test_commands_corpus import is_one_sentence
from tmbot import render
from tmbot.config import Config
from tmbot.domain import Actor, Place, tenant_of
from tmbot.errors import NotPermitted, ParseError, TmbotError
from tmbot.links import CODE_TTL
from tmbot.redact import RedactingFilter
from tmbot.replies import (
    AccountsLinked,
    GenerationAccepted,
    LinkCodeIssued,
    Reply,
    TeamsLinked,
    TeamsUnlinked,
)
from tmbot.runtime import Runtime, open_runtime
from tmbot.simulator import Simulator, key_id

SLACK, DISCORD = tenant_of("slack", "T1"), tenant_of("discord", "G1")
OTHER_SLACK, OTHER_DISCORD = tenant_of("slack", "T2"), tenant_of("discord", "G2")
SLACK_TEAM_KEY = "tm_test_slackTeamKey00001"
DISCORD_TEAM_KEY = "tm_test_discordTeam00002"
ALICE_KEY = "tm_test_alicePersonal0003"
KEYS = (SLACK_TEAM_KEY, DISCORD_TEAM_KEY, ALICE_KEY)


def actor(tenant: str, user: str, *, admin: bool = False) -> Actor:
    return Actor(tenant.split(":", 1)[0], tenant, user, is_admin=admin, display_name=user)


def place(tenant: str) -> Place:
    return Place(tenant.split(":", 1)[0], "C1")


@dataclass
class World:
    runtime: Runtime
    clock: list[float]
    said: list[str] = field(default_factory=list)

    def tick(self, seconds: float) -> None:
        self.clock[0] += seconds

    async def run(self, who: Actor, text: str) -> Reply:
        reply = await self.runtime.engine.execute(who, text, place(who.tenant))
        self.said.append(render(reply))
        return reply

    async def refused(self, who: Actor, text: str) -> str:
        with pytest.raises(TmbotError) as info:
            await self.run(who, text)
        message = info.value.user_message
        self.said.append(message)
        assert is_one_sentence(message), message
        return message

    async def code(self, who: Actor, text: str = "team link") -> str:
        reply = await self.run(who, text)
        assert isinstance(reply, LinkCodeIssued)
        return reply.code

    async def brief(self, who: Actor, text: str = "a lighthouse") -> GenerationAccepted:
        reply = await self.run(who, text)
        assert isinstance(reply, GenerationAccepted)
        return reply


@pytest.fixture
async def world(tmp_path: Path, sim: Simulator) -> AsyncIterator[World]:
    async with running(tmp_path, sim) as found:
        yield found


@asynccontextmanager
async def running(
    tmp_path: Path, sim: Simulator, *, redactor: RedactingFilter | None = None
) -> AsyncIterator[World]:
    clock = [time.time()]
    async with open_runtime(
        Config(time_scale=sim.config.time_scale, http_timeout=30.0),
        {"slack": Recorder("slack"), "discord": Recorder("discord")},
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        tastemachine_url=sim.base_url,
        vtrix_url=sim.base_url,
        vault=_vault(tmp_path),
        dispatch_policy=FAST_DISPATCH,
        now=lambda: clock[0],
        redactor=redactor,
    ) as runtime:
        found = World(runtime, clock)
        yield found
        async with asyncio.timeout(30):
            await runtime.settled()
        for key in KEYS:  # no reply or refusal ever carried a key
            assert all(key not in text for text in found.said)


BOSS_S, BOSS_D = actor(SLACK, "U0BOSS", admin=True), actor(DISCORD, "900", admin=True)


async def link(world: World) -> TeamsLinked:
    code = await world.code(BOSS_S)
    reply = await world.run(BOSS_D, f"team link {code}")
    assert isinstance(reply, TeamsLinked)
    return reply


async def test_a_team_code_expires_after_ten_minutes(world: World) -> None:
    late = await world.code(BOSS_S)
    world.tick(CODE_TTL)
    expired = await world.refused(BOSS_D, f"team link {late}")
    fresh = await world.code(BOSS_S)
    world.tick(CODE_TTL - 1)
    linked = await world.run(BOSS_D, f"team link {fresh}")
    assert "expired" in expired and "10 minutes" in expired
    assert isinstance(linked, TeamsLinked) and linked.link.home == SLACK


async def test_the_redactor_forgets_a_code_once_it_has_expired(
    tmp_path: Path, sim: Simulator
) -> None:
    ticks = [0.0]
    redactor = RedactingFilter(clock=lambda: ticks[0])
    async with running(tmp_path, sim, redactor=redactor) as world:
        before = redactor.registered
        codes = [await world.code(BOSS_S) for _ in range(3)]
        assert redactor.registered == before + 6  # each as shown and as typed
        assert all(code not in redactor.redact(f"log: {code}") for code in codes)
        ticks[0] += CODE_TTL  # the codes' ten minutes are over: no longer secrets
        world.tick(CODE_TTL)
        assert redactor.registered == before
        assert all(code in redactor.redact(f"log: {code}") for code in codes)
        assert "expired" in await world.refused(BOSS_D, f"team link {codes[-1]}")


async def test_a_code_works_once_even_when_two_admins_race_for_it(world: World) -> None:
    code = await world.code(BOSS_S)
    racers = [actor(DISCORD, "900", admin=True), actor(OTHER_DISCORD, "901", admin=True)]
    results = await asyncio.gather(
        *(world.run(who, f"team link {code}") for who in racers), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, TeamsLinked)]
    lost = [r for r in results if isinstance(r, TmbotError)]
    assert len(won) == 1 and len(lost) == 1, results
    later = await world.refused(
        actor(tenant_of("discord", "G3"), "902", admin=True), f"team link {code}"
    )
    assert "already been used" in later


async def test_only_admins_make_or_use_team_codes_and_a_refusal_does_not_use_the_code(
    world: World,
) -> None:
    with pytest.raises(NotPermitted):
        await world.run(actor(SLACK, "U0ALICE"), "team link")
    code = await world.code(BOSS_S)
    with pytest.raises(NotPermitted) as info:
        await world.run(actor(DISCORD, "901"), f"team link {code}")
    assert "admins" in info.value.user_message
    assert isinstance(await world.run(BOSS_D, f"team link {code}"), TeamsLinked)
    with pytest.raises(NotPermitted):
        await world.run(actor(DISCORD, "901"), "team unlink")


async def test_wrong_same_place_and_mismatched_codes_get_one_sentence_each(
    world: World, sim: Simulator
) -> None:
    team_code = await world.code(BOSS_S)
    unknown = await world.refused(BOSS_D, "team link ABCD-EFGH-JKMN")
    itself = await world.refused(BOSS_S, f"team link {team_code}")
    same_platform = await world.refused(
        actor(OTHER_SLACK, "U0OTHER", admin=True), f"team link {team_code}"
    )
    as_personal = await world.refused(actor(DISCORD, "901"), f"link {team_code}")
    with pytest.raises(ParseError):
        await world.run(BOSS_D, "team link not-a-code")
    await link(world)
    person_code = await world.code(actor(SLACK, "U0ALICE"), "link")
    as_team = await world.refused(
        actor(OTHER_DISCORD, "902", admin=True), f"team link {person_code}"
    )
    twice = await world.refused(BOSS_S, "team link")
    assert "not one tmbot knows" in unknown
    assert "made here" in itself
    assert "another Slack workspace" in same_platform
    assert "`team link CODE`" in as_personal
    assert "`link CODE`" in as_team
    assert "already linked with the Discord server G1" in twice
    assert sim.tasks() == []


async def test_accounts_link_only_across_one_team(world: World) -> None:
    lone = await world.refused(actor(SLACK, "U0ALICE"), "link")
    await link(world)
    code = await world.code(actor(SLACK, "U0ALICE"), "link")
    unrelated = await world.refused(actor(OTHER_DISCORD, "777"), f"link {code}")
    same_platform = await world.refused(actor(OTHER_SLACK, "U0BOB"), f"link {code}")
    here = await world.refused(actor(SLACK, "U0BOB"), f"link {code}")
    linked = await world.run(actor(DISCORD, "700"), f"link {code}")
    assert "ask an admin to run `team link` first" in lone
    assert "not linked as one team" in unrelated and "`team link`" in unrelated
    assert "another Slack workspace" in same_platform
    assert "made here" in here
    assert isinstance(linked, AccountsLinked)


async def test_codes_are_stored_as_hashes_only(world: World, tmp_path: Path) -> None:
    code = await world.code(BOSS_S)
    with sqlite3.connect(tmp_path / "bot.db") as db:
        rows = [tuple(str(v) for v in row) for row in db.execute("SELECT * FROM link_codes")]
    assert len(rows) == 1
    typed = {code, code.replace("-", ""), code.lower()}
    assert not any(t in value for row in rows for value in row for t in typed)


async def test_the_linked_team_pays_and_unlink_brings_back_the_set_aside_key(
    world: World, sim: Simulator
) -> None:
    await world.run(BOSS_S, f"team key {SLACK_TEAM_KEY}")
    await world.run(BOSS_D, f"team key {DISCORD_TEAM_KEY}")
    linked = await link(world)
    dora = actor(DISCORD, "701")
    during = await world.brief(dora)
    await world.run(BOSS_S, "team budget default 200/month")  # one team: one set of budgets
    team = render(await world.run(BOSS_D, "team show"))
    unlinked = await world.run(BOSS_D, "team unlink")
    after = await world.brief(dora, "a second lighthouse")
    await asyncio.wait_for(world.runtime.settled(), 30)
    assert [k.fingerprint for k in linked.set_aside_keys] == ["…0002"]
    assert [k.fingerprint for k in linked.team_keys] == ["…0001"]
    assert during.generation.key.tenant == SLACK and after.generation.key.tenant == DISCORD
    assert [t["key_id"] for t in sim.tasks()] == [key_id(SLACK_TEAM_KEY), key_id(DISCORD_TEAM_KEY)]
    assert "…0001" in team and "default 200/month" in team and "• 701:" in team
    assert isinstance(unlinked, TeamsUnlinked) and unlinked.link is not None
    assert isinstance(await world.run(BOSS_S, "team unlink"), TeamsUnlinked)


async def test_a_budget_named_on_the_other_platform_caps_the_linked_person(
    world: World, sim: Simulator
) -> None:
    await world.run(BOSS_S, f"team key {SLACK_TEAM_KEY}")
    await link(world)
    alice_s, alice_d = actor(SLACK, "U0ALICE"), actor(DISCORD, "700")
    await world.brief(alice_s)  # 10 credits on the team key, asked in Slack
    code = await world.code(alice_s, "link")
    await world.run(alice_d, f"link {code}")
    saved = render(await world.run(BOSS_D, "team budget <@700> 15/day"))
    refusal = await world.refused(alice_d, "a fox")  # 10 more would pass 15
    credits = render(await world.run(alice_d, "credits"))
    history = render(await world.run(alice_d, "history"))
    unlinked = render(await world.run(alice_s, "unlink"))
    mine = render(await world.run(alice_d, "history"))
    assert "U0ALICE may use up to 15 credits a day" in saved  # the Slack account's member id
    assert "you have 5 of your 15/day team budget left" in refusal
    assert "10 credits today" in credits
    assert "a lighthouse" in history
    assert "no longer linked (with the Discord server G1)" in unlinked
    assert mine == "You have no images yet."
    assert len(sim.tasks()) == 1


async def test_a_result_made_in_slack_regenerated_by_id_in_discord_is_posted_in_discord(
    world: World,
) -> None:
    await world.run(BOSS_S, f"team key {SLACK_TEAM_KEY}")
    await link(world)
    original = await world.brief(actor(SLACK, "U0ALICE"))
    await asyncio.wait_for(world.runtime.settled(), 30)
    again = await world.run(actor(DISCORD, "701"), f"regenerate {original.generation.id}")
    assert isinstance(again, GenerationAccepted)
    assert again.generation.place.platform == "discord"
    assert again.generation.regenerated_from == original.generation.id
    assert re.fullmatch(r"[0-9a-f]{10}", again.generation.id)


async def test_the_console_makes_a_team_code_a_slack_admin_uses(world: World) -> None:
    lines: list[str] = []
    console = Console(world.runtime.engine, user="alice", admins=["boss"], write=lines.append)
    await console.handle_line("@boss team link")
    made = re.search(r"`([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})`", lines[-1])
    assert made is not None, lines
    linked = await world.run(BOSS_S, f"team link {made[1]}")
    await console.handle_line("link")
    assert isinstance(linked, TeamsLinked) and linked.link.home == "console:local"
    assert "in Slack `/taste team link" in lines[0] and "in Discord `/taste-team link" in lines[0]
    assert "in Slack `/taste link" in lines[-1]  # alice's personal code, for her Slack account


async def test_a_code_made_on_discord_makes_the_discord_account_home(
    world: World, sim: Simulator
) -> None:
    await link(world)
    dora_d, dora_s = actor(DISCORD, "700"), actor(SLACK, "U0DORA")
    await world.run(dora_d, f"key {ALICE_KEY}")
    await world.run(dora_d, "settings --ar 16:9")
    code = await world.code(dora_d, "link")
    linked = await world.run(dora_s, f"link {code}")
    made = await world.brief(dora_s)
    assert isinstance(linked, AccountsLinked) and linked.link.home_tenant == DISCORD
    assert made.generation.key.tenant == DISCORD and made.generation.spec.aspect_ratio == "16:9"
    assert made.generation.place.platform == "slack"  # posted where she asked
    await asyncio.wait_for(world.runtime.settled(), 30)
    assert [t["key_id"] for t in sim.tasks()] == [key_id(ALICE_KEY)]


async def test_direct_messages_take_no_team_link(world: World) -> None:
    dm = actor(tenant_of("discord", "dm:700"), "700", admin=True)
    made_there = await world.refused(dm, "team link")
    code = await world.code(BOSS_S)
    used_there = await world.refused(dm, f"team link {code}")
    assert "Direct messages have no team" in made_there and made_there == used_there
