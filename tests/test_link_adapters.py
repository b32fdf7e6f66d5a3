"""Linked teams and accounts through both chat adapters at once: one runtime (SQLite file,
vault, scheduler, engine, a dispatcher per platform) behind the real Slack adapter (bolt,
signed requests, slack_sdk against the fake Slack) and the real Discord client (discord.py
against the fake Discord), on the simulator. What a request paid with is read at the
simulator: the key each task was created with."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.discord.bot import TasteBot
from adapters.slack.app import build_app, key_label, web_client
from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import SlackNotifier
from tests.discord_helpers import FOLLOWUP, Running
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import FakeUser
from tests.fakes.http import serve
from tests.fakes.slack import RESPONSE_URL, FakeSlack
from tests.harness import FAST_DISPATCH, Bot, Recorder, _vault
from tests.slack_rig import ALICE, ALICE_KEY, BOSS, SECRET, TEAM_KEY, Rig, people
from tmbot import ApiKey, KeyScope, ProviderName
from tmbot.config import Config
from tmbot.runtime import open_runtime
from tmbot.simulator import Simulator, key_id

DISCORD_TEAM_KEY = "tm_test_discordTeamKey0003"
CODE = re.compile(r"`([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})`")
TIMEOUT = 30.0


@dataclass
class Both:
    slack: Rig
    discord: Running

    @property
    def sfake(self) -> FakeSlack:
        return self.slack.fake

    @property
    def dfake(self) -> FakeDiscord:
        return self.discord.fake

    async def slack_says(self, text: str, *, user: str) -> str:
        """Run ``/taste text`` in Slack as ``user``; the private answer."""
        mark = self.sfake.mark()
        assert (await self.slack.slash(text, user=user)).status == 200
        return await self.slack.ephemeral(after=mark)

    async def discord_says(
        self,
        name: str,
        options: dict[str, str] | None = None,
        *,
        user: FakeUser | None = None,
        subcommand: str | None = None,
        expect: str,
    ) -> str:
        """Run ``/name`` in Discord; the private follow-up holding ``expect``."""
        before = len(self.dfake.calls)
        command = self.dfake.slash_command(name, options, user=user, subcommand=subcommand)
        await self.dfake.dispatch("INTERACTION_CREATE", command)
        call = await self.dfake.wait_for(
            lambda c: (
                c.route == FOLLOWUP
                and c.method == "POST"
                and self.dfake.calls.index(c) >= before
                and expect in (c.json or {}).get("content", "")
            ),
            timeout=TIMEOUT,
        )
        assert call.json["flags"] == 64, "answered in public"
        return str(call.json["content"])


@pytest.fixture
async def sfake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        people(fake)
        yield fake


@pytest.fixture
async def dfake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@asynccontextmanager
async def both(
    tmp_path: Path, sim: Simulator, sfake: FakeSlack, dfake: FakeDiscord
) -> AsyncIterator[Both]:
    """One process serving Slack and Discord, as ``tmbot run`` does."""
    assert dfake.guild is not None
    client = web_client(sfake.bot_token, sfake.api_url)
    slack_notifier = SlackNotifier(
        client, min_edit_interval=0.0, max_progress_edits=2, share_delay=0.01
    )
    bot = TasteBot(guild_id=dfake.guild.id, guild_ready_timeout=0.05)
    config = Config(time_scale=sim.config.time_scale, http_timeout=TIMEOUT)
    async with open_runtime(
        config,
        {"slack": slack_notifier, "discord": bot.notifier},
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        tastemachine_url=sim.base_url,
        vtrix_url=sim.base_url,
        vault=_vault(tmp_path),
        dispatch_policy=FAST_DISPATCH,
    ) as runtime:
        slack_notifier.key_label = key_label(runtime.engine)
        bot.use(runtime.engine)
        app = build_app(SlackHandlers(runtime.engine, client), client, signing_secret=SECRET)
        async with serve(app.web_app(path="/slack/events")) as base:
            rig = Rig(
                sfake, Bot(runtime, Recorder("slack")), f"{base}/slack/events", slack_notifier
            )
            with dfake.patch_discord():
                task: asyncio.Task[None] | None = None
                try:
                    await bot.login(dfake.token)
                    task = asyncio.create_task(bot.connect(reconnect=False))
                    async with asyncio.timeout(TIMEOUT):
                        await bot.wait_until_ready()
                    yield Both(rig, Running(bot, runtime, dfake))
                finally:
                    await bot.close()
                    if task is not None:
                        await task


def code_in(text: str) -> str:
    found = CODE.search(text)
    assert found is not None, text
    return found[1]


async def link_teams(env: Both) -> str:
    """A Slack admin's code typed by the Discord server's admin; the Discord answer."""
    code = code_in(await env.slack_says("team link", user=BOSS))
    return await env.discord_says("taste-team", {"code": code}, subcommand="link", expect="Linked")


def no_secret_anywhere(env: Both, *secrets: str) -> None:
    for secret in secrets:
        assert env.sfake.calls_containing(secret) == []
        for call in env.dfake.calls:
            assert secret not in repr((call.path, call.query, call.json))


async def discord_brief(env: Both, user: FakeUser, brief: str, *, refused: str = "") -> str:
    """``/taste brief:…`` in Discord; with ``refused``, the private refusal holding it."""
    before = len(env.dfake.calls)
    command = env.dfake.slash_command("taste", {"brief": brief}, user=user)
    await env.dfake.dispatch("INTERACTION_CREATE", command)
    if not refused:
        return ""
    call = await env.dfake.wait_for(
        lambda c: (
            c.route == FOLLOWUP
            and env.dfake.calls.index(c) >= before
            and refused in (c.json or {}).get("content", "")
        ),
        timeout=TIMEOUT,
    )
    assert call.json["flags"] == 64
    return str(call.json["content"])


async def test_a_slack_admins_code_links_a_discord_server_whose_briefs_the_slack_team_key_pays(
    tmp_path: Path, sim: Simulator, sfake: FakeSlack, dfake: FakeDiscord
) -> None:
    member = dfake.add_user("dora")
    async with both(tmp_path, sim, sfake, dfake) as env:
        assert "Saved the team's key" in await env.slack_says(f"team key {TEAM_KEY}", user=BOSS)
        budget = await env.slack_says("team budget default 15/day", user=BOSS)
        # the server had its own team key: set aside while linked
        await env.discord.runtime.engine.bind_key(
            env.discord.actor(dfake.owner, admin=True),
            ProviderName.TASTEMACHINE,
            ApiKey(DISCORD_TEAM_KEY),
            scope=KeyScope.TEAM,
        )
        linked = await link_teams(env)
        # a member's brief on Discord: the team key bound in Slack pays
        await discord_brief(env, member, "a lighthouse at dawn")
        await env.discord.upload()
        await env.discord.settled()
        # the budget set in Slack caps the Discord member: 10 of 15 used, the next 10 refused
        refusal = await discord_brief(env, member, "another lighthouse", refused="budget")
        shown = await env.slack_says("team show", user=BOSS)
    assert "15 credits a day" in budget
    responded = sfake.calls_to(RESPONSE_URL)
    assert responded and all(c.params["response_type"] == "ephemeral" for c in responded)
    assert "one team with the Slack workspace" in linked
    assert "…0003" in linked and "set aside" in linked  # the server's own team key, kept
    (task,) = sim.tasks()  # the refused brief never reached the provider
    assert task["key_id"] == key_id(TEAM_KEY) and task["brief"] == "a lighthouse at dawn"
    assert "you have 5 of your 15/day team budget" in refusal
    assert f"• {member.id}: 10 / 10 credits" in shown  # Discord use counted with Slack's team
    no_secret_anywhere(env, TEAM_KEY, DISCORD_TEAM_KEY)


async def test_after_link_a_personal_key_bound_in_slack_pays_the_same_persons_discord_brief(
    tmp_path: Path, sim: Simulator, sfake: FakeSlack, dfake: FakeDiscord
) -> None:
    alice = dfake.add_user("alice")
    async with both(tmp_path, sim, sfake, dfake) as env:
        await env.slack_says(f"team key {TEAM_KEY}", user=BOSS)
        await env.slack_says(f"key {ALICE_KEY}", user=ALICE)
        # before the teams are linked, a personal code is refused
        early = await env.slack_says("link", user=ALICE)
        await link_teams(env)
        code_text = await env.slack_says("link", user=ALICE)
        linked = await env.discord_says(
            "taste-link", {"code": code_in(code_text)}, user=alice, expect="Linked"
        )
        await discord_brief(env, alice, "a fox in the snow")
        (upload,) = await env.discord.upload()
        await env.discord.settled()
        history = await env.slack_says("history", user=ALICE)  # the history follows her
        again = await env.discord_says(
            "taste-link", {"code": code_in(code_text)}, user=alice, expect="already"
        )
        unlinked = await env.discord_says("taste-unlink", user=alice, expect="no longer linked")
        await discord_brief(env, alice, "a hare in the snow")
        await env.discord.upload(2)
        await env.discord.settled()
    assert "ask an admin to run `team link`" in early and CODE.search(early) is None
    assert "keys, settings and history of your account in the Slack workspace" in linked
    first, second = sim.tasks()
    assert first["key_id"] == key_id(ALICE_KEY) and first["brief"] == "a fox in the snow"
    assert second["key_id"] == key_id(TEAM_KEY)  # unlinked: her Discord account has no key
    assert "a fox in the snow" in history
    assert "already" in again and "each works once" in again
    assert "each has its own keys" in unlinked
    # the image was posted on Discord (where she asked), not in Slack
    assert upload.files and sfake.calls_to("files.completeUploadExternal") == []
    no_secret_anywhere(env, TEAM_KEY, ALICE_KEY)


async def test_members_are_refused_team_links_on_both_platforms_and_no_code_is_made(
    tmp_path: Path, sim: Simulator, sfake: FakeSlack, dfake: FakeDiscord
) -> None:
    member = dfake.add_user("dora")
    async with both(tmp_path, sim, sfake, dfake) as env:
        in_slack = await env.slack_says("team link", user=ALICE)
        code = code_in(await env.slack_says("team link", user=BOSS))
        in_discord = await env.discord_says(
            "taste-team", {"code": code}, subcommand="link", user=member, expect="admins"
        )
        # the refusal did not use the code: the server's admin still can
        linked = await env.discord_says(
            "taste-team", {"code": code}, subcommand="link", expect="Linked"
        )
    assert "Only admins of the Slack workspace" in in_slack and CODE.search(in_slack) is None
    assert "Only admins of the Discord server" in in_discord
    assert "one team with the Slack workspace" in linked
