"""End to end: `tmbot discord` as a separate process against the fake Discord (REST and
gateway over loopback) and the simulator."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discord_helpers import CALLBACK, FOLLOWUP, MESSAGES, THREADS
from tests.fakes.discord import FakeDiscord
from tests.procs import bot_env, tmbot_command
from tmbot.simulator import Simulator

KEY = "tm_test_subprocessAAAA0001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command(*args), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_tmbot_discord_binds_a_key_and_posts_an_image(
    tmp_path: Path, sim: Simulator, fake: FakeDiscord
) -> None:
    assert fake.guild is not None
    env = bot_env(
        sim.base_url,
        tmp_path / "bot.db",
        scale=sim.config.time_scale,
        extra={
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_URL": fake.api_url,
            "DISCORD_GUILD_ID": str(fake.guild.id),
        },
    )
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("discord"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake.wait_ready(timeout=60)
        await fake.wait_for(lambda c: c.method == "PUT" and "commands" in c.route, timeout=60)
        await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste-key"))
        modal = await fake.wait_for(lambda c: c.route == CALLBACK and c.json["type"] == 9)
        submit = fake.modal_submit(modal.json["data"]["custom_id"], {"key": KEY})
        await fake.dispatch("INTERACTION_CREATE", submit)
        await fake.wait_for(
            lambda c: c.route == FOLLOWUP and "Saved" in (c.json or {}).get("content", "")
        )
        command = fake.slash_command("taste", {"brief": "a lighthouse", "aspect_ratio": "16:9"})
        await fake.dispatch("INTERACTION_CREATE", command)
        upload = await fake.wait_for(
            lambda c: c.method == "POST" and c.route == MESSAGES and bool(c.files), timeout=60
        )
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    thread = fake.calls_to("POST", THREADS)[0]
    assert upload.params["channel_id"] == thread.params["message_id"]
    assert upload.files[0].data.startswith(b"\x89PNG")
    assert KEY not in err.decode()
    for call in fake.calls:
        assert KEY not in repr((call.path, call.query, call.json))


async def test_a_missing_or_refused_token_is_one_sentence_and_exit_code_2(
    tmp_path: Path, fake: FakeDiscord
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "TMBOT_"))}
    env["TMBOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'bot.db'}"
    code, err = await _run(env, "discord")
    assert code == 2 and err.count("\n") == 1 and "DISCORD_TOKEN is not set" in err
    env.update(DISCORD_TOKEN="not-the-token", DISCORD_API_URL=fake.api_url)
    code, err = await _run(env, "discord")
    assert code == 2 and "refused DISCORD_TOKEN" in err, err
    assert "not-the-token" not in err


async def test_invite_url_prints_the_url(tmp_path: Path) -> None:
    env = {**os.environ, "DISCORD_CLIENT_ID": "42"}
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("discord", "invite-url"), env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert out.decode().startswith("https://discord.com/oauth2/authorize?client_id=42&")
