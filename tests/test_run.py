"""`tmbot run` as a real process: Slack (Socket Mode, the fake Slack) and Discord (the fake
Discord's REST and gateway) in one process on one engine, against the simulator over HTTP,
with a SQLite file in tmp_path. Health, one key's limits across both platforms, SIGTERM
with work in flight and the restart after it, and the refusal without any token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.discord_helpers import CALLBACK, MESSAGES
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack, payloads
from tests.procs import bot_env
from tests.run_helpers import HEALTH, BotProcess, first_match, start_run
from tests.slack_rig import ALICE, BOSS, people
from tmbot.errors import ConfigError
from tmbot.shutdown import Stopper
from tmbot.simulator import SimConfig, Simulator

#: provider seconds per real second: a 30 s image takes about 3 s, long enough to overlap
SCALE = 10.0
TEAM_KEY = "tm_test_sharedTeamKey00007"
UPLOADED = "files.completeUploadExternal"


@dataclass
class World:
    sim: Simulator
    slack: FakeSlack
    discord: FakeDiscord
    env: dict[str, str]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    config = SimConfig(time_scale=SCALE, seed=11)
    async with Simulator(config) as sim, FakeSlack() as slack, FakeDiscord() as discord:
        people(slack)
        assert discord.guild is not None
        env = bot_env(
            sim.base_url,
            tmp_path / "bot.db",
            scale=SCALE,
            extra={
                "TMBOT_LOG_FORMAT": "json",
                "TMBOT_SECRET_KEY": Fernet.generate_key().decode(),
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_APP_TOKEN": slack.app_token,
                "SLACK_API_URL": slack.api_url,
                "DISCORD_TOKEN": discord.token,
                "DISCORD_API_URL": discord.api_url,
                "DISCORD_GUILD_ID": str(discord.guild.id),
            },
        )
        env = {k: v for k, v in env.items() if k not in ("PORT", "SLACK_SIGNING_SECRET")}
        yield World(sim, slack, discord, env)


def slack_uploads(fake: FakeSlack) -> list[str]:
    """The threads images went to, one per upload Slack completed."""
    return [str(c.params.get("thread_ts")) for c in fake.calls_to(UPLOADED) if c.ok]


def discord_uploads(fake: FakeDiscord) -> list[int]:
    return [
        int(c.params["channel_id"])
        for c in fake.calls_to("POST", MESSAGES)
        if c.files and c.status == 200
    ]


async def slash(fake: FakeSlack, text: str, user: str = ALICE) -> dict[str, object]:
    fields = payloads.slash_command(
        "/taste", text, user_id=user, response_url=fake.new_response_url()
    )
    ack = await fake.socket_send(payloads.socket_envelope("slash_commands", fields), timeout=15)
    return dict(ack.get("payload") or {})


async def bind_team_key(world: World) -> None:
    """The same key bound as the team key of the Slack workspace and of the Discord guild."""
    mark = world.slack.mark()
    await slash(world.slack, f"team key {TEAM_KEY}", user=BOSS)
    saved = await world.slack.wait_for_call(
        "response_url", lambda c: "Saved the team's key" in str(c.params.get("text")), after=mark
    )
    assert TEAM_KEY not in saved.everything()
    fake = world.discord
    await fake.dispatch(
        "INTERACTION_CREATE", fake.slash_command("taste", {"brief": f"team key {TEAM_KEY}"})
    )
    await fake.wait_for(lambda c: c.route == CALLBACK and "Saved the team" in json.dumps(c.json))


async def ready(bot: BotProcess) -> str:
    """Wait for the ready line; the health URL."""
    url = first_match(await bot.wait_line(r"health on "), HEALTH)
    await bot.wait_line(r"tmbot run: ready \(")
    return url


async def test_both_platforms_share_one_key_budget_and_one_cap(world: World) -> None:
    world.discord.identify_gate.clear()  # the gateway holds the bot's IDENTIFY: not ready
    bot = await start_run(world.env, "--health-port", "0", "--host", "127.0.0.1")
    try:
        url = first_match(await bot.wait_line(r"health on "), HEALTH)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/healthz")).json() == {"status": "alive"}
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503, waiting.text
            assert waiting.json()["checks"]["discord"] is False
            assert waiting.json()["checks"]["store"] is True
            world.discord.identify_gate.set()
            await bot.wait_line(r"tmbot run: ready \(Socket Mode, gateway\)")
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            assert answer.json()["checks"] == {
                "store": True, "engine": True, "slack": True, "discord": True,
            }  # fmt: skip

        await bind_team_key(world)
        # 16 briefs at once on one key: more than its 10 slots, from both platforms
        fake = world.discord
        cards: list[str] = []
        for n in range(8):
            mark = world.slack.mark()
            ack = await slash(world.slack, f"a slack poster {n} --fast --res 1k")
            assert ack["response_type"] == "ephemeral"
            card = await world.slack.wait_for_call(
                "chat.postMessage", lambda c: "blocks" in c.params, after=mark, timeout=15
            )
            cards.append(str(card.response["ts"]))
            brief = {"brief": f"a discord poster {n} --fast --res 1k"}
            await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", brief))
        await world.slack.wait_for(lambda _: len(slack_uploads(world.slack)) >= 8, timeout=90)
        await fake.wait_for(lambda _: len(discord_uploads(fake)) >= 8, timeout=90)
    finally:
        code = await bot.stop()
    assert code == 0, bot.text()[-3000:]
    assert sorted(slack_uploads(world.slack)) == sorted(cards)  # one image per card, once
    assert len(discord_uploads(fake)) == 8
    assert all("a slack poster" not in json.dumps(c.json) for c in fake.calls)
    stats = world.sim.stats().for_key(TEAM_KEY)
    assert stats.tasks_created == 16 and stats.tasks_completed == 16
    assert stats.rate_limited == 0
    assert stats.max_concurrent_seen == 10  # the cap was reached, and held across both
    assert TEAM_KEY not in bot.text()


async def test_sigterm_with_work_in_flight_then_a_restart_loses_nothing(world: World) -> None:
    env = {**world.env, "TMBOT_SHUTDOWN_GRACE": "0.5"}
    bot = await start_run(env)
    fake = world.discord
    try:
        await bot.wait_line(r"tmbot run: ready \(")
        await bind_team_key(world)
        for n in range(3):
            await slash(world.slack, f"a slack lighthouse {n}")
            brief = {"brief": f"a discord lighthouse {n}"}
            await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", brief))
        await bot.wait_moves("submitted", 6)  # all six are at the provider
        bot.proc.send_signal(signal.SIGTERM)
        await bot.wait_line(r"stopping \(SIGTERM\)", stderr=True)
        # during the grace period a new slash command is refused, and nothing is started
        ack = await slash(world.slack, "one more, please")
        assert ack["text"] == "tmbot is restarting; try again in a minute."
        assert ack["response_type"] == "ephemeral"
    finally:
        first = await bot.stop()
    assert first == 0, bot.text()[-3000:]
    posted_before = len(slack_uploads(world.slack)) + len(discord_uploads(fake))
    assert posted_before < 6  # work was left for the next start

    again = await start_run(env)
    try:
        await again.wait_line(r"tmbot run: ready \(")
        await world.slack.wait_for(lambda _: len(slack_uploads(world.slack)) >= 3, timeout=60)
        await fake.wait_for(lambda _: len(discord_uploads(fake)) >= 3, timeout=60)
        async with asyncio.timeout(30):
            await again.wait_moves("delivered", 6 - posted_before)
    finally:
        second = await again.stop()
    assert second == 0, again.text()[-3000:]
    assert len(slack_uploads(world.slack)) == 3 and len(set(slack_uploads(world.slack))) == 3
    assert len(discord_uploads(fake)) == 3 and len(set(discord_uploads(fake))) == 3
    stats = world.sim.stats().for_key(TEAM_KEY)
    assert stats.tasks_created == 6  # polled again after the restart, never re-sent
    assert stats.rate_limited == 0
    cards = [c for c in world.slack.calls_to("chat.postMessage") if "blocks" in c.params]
    assert len(cards) == 3  # "one more, please" made no card


async def test_work_running_at_sigterm_finishes_within_the_grace_and_is_posted(
    world: World,
) -> None:
    """Discord's gateway closes at once, yet the images finishing in the grace period are
    posted on both platforms (REST stays open), and the process ends as soon as they are."""
    env = {**world.env, "TMBOT_SHUTDOWN_GRACE": "60"}
    bot = await start_run(env)
    fake = world.discord
    try:
        await bot.wait_line(r"tmbot run: ready \(")
        await bind_team_key(world)
        await slash(world.slack, "a slack kite")
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "a kite"}))
        await bot.wait_moves("submitted", 2)
        bot.proc.send_signal(signal.SIGTERM)
        await bot.wait_line(r"stopping \(SIGTERM\)", stderr=True)
        async with asyncio.timeout(30), fake._changed:
            await fake._changed.wait_for(lambda: not any(s.ws for s in fake.sessions.values()))
        assert discord_uploads(fake) == []  # the gateway closed while the work still ran
        with pytest.raises(RuntimeError, match="no client is connected"):
            await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", {"brief": "x"}))
        code = await bot.finished(timeout=45)  # it ends by itself once the work is posted
    finally:
        await bot.stop()
    assert code == 0, bot.text()[-3000:]
    assert len(slack_uploads(world.slack)) == 1 and len(discord_uploads(fake)) == 1
    assert len(bot.moves("delivered")) == 2
    assert world.sim.stats().for_key(TEAM_KEY).tasks_created == 2


async def test_http_mode_serves_slack_and_health_on_one_port(world: World) -> None:
    env = {k: v for k, v in world.env.items() if not k.startswith("DISCORD_")}
    env["SLACK_SIGNING_SECRET"] = "signing-secret-for-run"
    bot = await start_run(env, "--http", "--port", "0", "--host", "127.0.0.1")
    try:
        events = await bot.wait_line(r"listening on http://\S+/slack/events")
        url = first_match(await bot.wait_line(r"health on "), HEALTH)
        assert events[0].split("listening on ")[1].strip() == f"{url}/slack/events"
        await bot.wait_line(r"tmbot run: ready \(HTTP mode\)")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            assert set(answer.json()["checks"]) == {"store", "engine", "slack"}
            forged = await client.post("/slack/events", content=b"command=/taste&text=x")
            assert forged.status_code == 401
    finally:
        code = await bot.stop()
    assert code == 0, bot.text()[-3000:]


async def test_http_with_only_discord_serves_health_on_the_port(world: World) -> None:
    """The Procfile's `tmbot run --http --port $PORT` with DISCORD_TOKEN alone: the web
    process binds $PORT (the health routes), as a PaaS boot check needs."""
    env = {k: v for k, v in world.env.items() if not k.startswith("SLACK_")}
    bot = await start_run(env, "--http", "--port", "0", "--host", "127.0.0.1")
    try:
        url = first_match(await bot.wait_line(r"health on "), HEALTH)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/healthz")).json() == {"status": "alive"}
            await bot.wait_line(r"tmbot run: ready \(gateway\)")
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            assert set(answer.json()["checks"]) == {"store", "engine", "discord"}
            assert (await client.post("/slack/events", content=b"x")).status_code == 404
    finally:
        code = await bot.stop()
    assert code == 0, bot.text()[-3000:]
    assert "/slack/events" not in bot.text()


async def test_http_port_taken_names_the_port_flag(world: World) -> None:
    env = {k: v for k, v in world.env.items() if not k.startswith("SLACK_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = await start_run(env, "--http", "--port", str(port), "--host", "127.0.0.1")
        code = await bot.finished()
    assert code == 2, bot.text()[-3000:]
    said = [line for line in bot.err if line.startswith("tmbot:")]
    assert len(said) == 1, bot.text()[-3000:]
    assert said[0].startswith(f"tmbot: tmbot run cannot listen on 127.0.0.1 port {port} (")
    assert said[0].endswith("; pick another with --port.\n")  # the option that set it


async def test_without_any_chat_token_it_names_the_variables_and_exits_2(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DISCORD_", "TMBOT_", "PORT"))
    }
    env["TMBOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'bot.db'}"
    bot = await start_run(env, cwd=str(tmp_path))
    code = await bot.finished()
    said = "".join(bot.err)
    assert code == 2
    assert said.count("\n") == 1 and said.startswith("tmbot: No chat platform is configured")
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"):
        assert name in said
    assert "make demo" in said
    assert not (tmp_path / "bot.db").exists()  # refused before anything was opened


def test_the_procfile_runs_slack_http_mode_on_the_platforms_port() -> None:
    from tmbot.cli import _parser

    procfile = (Path(__file__).parent.parent / "Procfile").read_text().splitlines()
    web = [line for line in procfile if line.startswith("web:")]
    assert len(web) == 1
    words = web[0].removeprefix("web:").split()
    assert words[:2] == ["tmbot", "run"] and "$PORT" in words
    args = _parser().parse_args([w.replace("$PORT", "5000") for w in words[1:]])
    assert args.command == "run" and args.http and args.port == 5000


async def test_a_refused_slack_stops_discord_connecting_and_nothing_is_left_running(
    world: World,
) -> None:
    """Slack refuses its app token while Discord is still connecting: the Discord start is
    cancelled and awaited, its gateway closed, and the process exits with the one sentence
    (no unretrieved task exception, no traceback: the adapters start as one task group)."""
    slack, fake = world.slack, world.discord
    slack.connections_gate.clear()
    fake.identify_gate.clear()
    env = {**world.env, "SLACK_APP_TOKEN": "xapp-1-refused-by-the-fake"}
    bot = await start_run(env, "--health-port", "0", "--host", "127.0.0.1")
    try:
        async with asyncio.timeout(60), fake._changed:
            await fake._changed.wait_for(lambda: fake.gateway_sockets == 1)  # IDENTIFY held
        await slack.wait_for(lambda _: slack.connections_held == 1, timeout=60)
        slack.connections_gate.set()  # now Slack answers invalid_auth
        code = await bot.finished(timeout=60)
    finally:
        await bot.stop()
        fake.identify_gate.set()
    assert code == 2, bot.text()[-3000:]
    said = [line for line in bot.err if not line.startswith("{")]  # JSON log lines aside
    assert said[-1] == "tmbot: SLACK_APP_TOKEN is not valid (Slack answered invalid_auth).\n"
    for noise in ("Traceback", "never retrieved", "Task was destroyed", "Unclosed"):
        assert noise not in bot.text(), bot.text()[-3000:]
    assert "tmbot run: ready" not in bot.text(), bot.text()[-3000:]
    async with asyncio.timeout(30), fake._changed:
        await fake._changed.wait_for(lambda: fake.gateway_sockets == 0)
    assert not any(s.ws for s in fake.sessions.values())


class _Starting:
    """An adapter's start as the runner sees it: ``refuse`` raises once ``peer`` is
    connecting; otherwise it connects until cancelled (``ended`` says it was)."""

    def __init__(self, platform: str, *, refuse: bool, peer: asyncio.Event) -> None:
        self.platform = platform
        self.refuse = refuse
        self.peer = peer
        self.ended = False

    async def start(self) -> str:
        if self.refuse:
            await self.peer.wait()
            raise ConfigError(f"{self.platform} refused the token.")
        self.peer.set()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.ended = True
        return "never"


async def test_a_refused_start_cancels_and_awaits_the_others_before_raising() -> None:
    from adapters import runner

    connecting = asyncio.Event()
    slack = _Starting("slack", refuse=True, peer=connecting)
    discord = _Starting("discord", refuse=False, peer=connecting)
    with pytest.raises(ConfigError, match=r"^slack refused the token\.$"):
        await runner._start([slack, discord], Stopper(), name="run")  # type: ignore[list-item]
    assert discord.ended  # its start was over before the refusal reached the caller
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("start ")]
