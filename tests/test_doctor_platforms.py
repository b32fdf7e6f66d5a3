"""`tmbot doctor` as a process against the fake Slack (auth.test, x-oauth-scopes) and the fake
Discord (GET /users/@me through discord.py's HTTP client): every problem is one FAIL line
saying what to do, exit code 1, and no token or key appears anywhere in the output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.procs import bot_env, dead_port, run_console, tmbot_command
from tmbot.simulator import Simulator

KEY = "tm_test_doctorDDDDDDDDD0003"
SIGNING = "signing-secret-not-shown"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSlack, FakeDiscord]]:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        yield slack, discord


async def doctor(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("doctor"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def failures(text: str) -> dict[str, str]:
    """check name -> its FAIL line."""
    return {
        line.split(":")[0].removeprefix("FAIL").strip(): line
        for line in text.splitlines()
        if line.startswith("FAIL")
    }


def base_env(sim: Simulator, db: Path, secret: str) -> dict[str, str]:
    env = bot_env(sim.base_url, db, scale=sim.config.time_scale)
    env = {k: v for k, v in env.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env["TMBOT_SECRET_KEY"] = secret
    return env


def platforms(slack: FakeSlack, discord: FakeDiscord) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_API_URL": slack.api_url,
        "DISCORD_TOKEN": discord.token,
        "DISCORD_API_URL": discord.api_url,
    }


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """The file made unwritable for this process: read-only mode, or (as root, whom modes do
    not stop) the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o400)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    if shutil.which("chattr") is None:
        pytest.fail(
            "running as root without chattr: no way to make a file unwritable for this test"
        )
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)  # noqa: S603, S607
    if made.returncode != 0:
        pytest.fail(
            "this filesystem has no immutable attribute (chattr +i), which this test needs as root"
        )
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)  # noqa: S603, S607


async def test_doctor_checks_each_platform_token_and_its_scopes(
    tmp_path: Path, sim: Simulator, fakes: tuple[FakeSlack, FakeDiscord]
) -> None:
    slack, discord = fakes
    env = base_env(sim, tmp_path / "bot.db", Fernet.generate_key().decode())
    secrets = [slack.bot_token, discord.token, SIGNING, env["TMBOT_SECRET_KEY"]]

    code, good = await doctor({**env, **platforms(slack, discord)}, tmp_path)
    assert code == 0, good
    assert "ok   Slack auth: valid for" in good and "every scope of the manifest" in good
    assert "ok   Discord auth: valid for the bot" in good
    assert [c for c in discord.calls if c.path == "/users/@me"], "asked Discord who it is"

    # invalid tokens: both refused
    wrong = {
        **platforms(slack, discord),
        "SLACK_BOT_TOKEN": "xoxb-wrong-and-secret-1",
        "DISCORD_TOKEN": "wrong-and-secret-discord-2",
    }
    secrets += ["xoxb-wrong-and-secret-1", "wrong-and-secret-discord-2"]
    code, refused = await doctor({**env, **wrong}, tmp_path)
    failed = failures(refused)
    assert code == 1 and set(failed) == {"Slack auth", "Discord auth"}, refused
    assert "invalid_auth" in failed["Slack auth"] and "— copy the Bot User" in failed["Slack auth"]
    assert "refused DISCORD_TOKEN" in failed["Discord auth"]

    # missing scopes: named, with what to do
    slack.scopes = [s for s in slack.scopes if s not in ("files:read", "reactions:read")]
    code, scopes = await doctor({**env, **platforms(slack, discord)}, tmp_path)
    failed = failures(scopes)
    assert code == 1 and set(failed) == {"Slack auth"}, scopes
    assert "missing scopes: files:read, reactions:read" in failed["Slack auth"]
    assert "reinstall the app" in failed["Slack auth"]

    # a missing token: the app token without the bot token
    code, missing = await doctor({**env, "SLACK_APP_TOKEN": slack.app_token}, tmp_path)
    failed = failures(missing)
    assert code == 1 and "Slack token" in failed, missing
    assert "SLACK_APP_TOKEN set but SLACK_BOT_TOKEN is not" in failed["Slack token"]
    secrets.append(slack.app_token)

    for text in (good, refused, scopes, missing):
        for secret in secrets:
            assert secret not in text


async def test_doctor_names_an_unwritable_database_and_a_rotated_secret(
    tmp_path: Path, sim: Simulator, fakes: tuple[FakeSlack, FakeDiscord]
) -> None:
    slack, discord = fakes
    db = tmp_path / "bot.db"
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = base_env(sim, db, first)
    code, _, stderr = await run_console(env, tmp_path / "out", [f"key {KEY}"])
    assert code == 0, stderr
    chat = platforms(slack, discord)
    with unwritable(db):
        code, text = await doctor({**env, **chat, "TMBOT_SECRET_KEY": second}, tmp_path)
    failed = failures(text)
    assert code == 1 and set(failed) == {"database", "stored keys"}, text
    assert "is not writable" in failed["database"] and "write access" in failed["database"]
    assert "…0003 (personal)" in failed["stored keys"]
    assert "TMBOT_SECRET_KEY changed" in failed["stored keys"]
    for secret in (KEY, first, second, slack.bot_token, discord.token, SIGNING):
        assert secret not in text


def test_the_fake_slack_grants_exactly_the_manifests_bot_scopes() -> None:
    from adapters.slack.main import manifest_scopes
    from tests.fakes.slack.server import BOT_SCOPES

    scopes = manifest_scopes()
    assert len(scopes) == 10 and "commands" in scopes and "groups:read" in scopes
    assert scopes == BOT_SCOPES  # doctor compares the token's scopes with these


async def test_doctor_says_slack_cannot_be_reached_in_one_line(
    sim: Simulator, tmp_path: Path
) -> None:
    port = dead_port()
    token = "xoxb-doctor-never-reaches-0002"
    env = {
        **base_env(sim, tmp_path / "bot.db", Fernet.generate_key().decode()),
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_API_URL": f"http://127.0.0.1:{port}/api/",
    }
    code, text = await doctor(env, tmp_path)
    assert code == 1, text
    assert "Traceback" not in text
    assert failures(text)["Slack auth"].startswith(
        f"FAIL Slack auth: Slack's Web API cannot be reached at 127.0.0.1:{port} "
        "(ClientConnectorError)"
    ), text
    assert token not in text and SIGNING not in text
