"""`tmbot slack` itself: Socket Mode in-process through the fake's websocket, HTTP mode as
a subprocess against the fake Slack and the simulator, and its one-sentence refusals."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from adapters.slack.main import run
from tests.conftest import SCALE
from tests.fakes.slack import BOT_USER_ID, GENERAL, SOCKET_ACK, FakeSlack, payloads, post_signed
from tests.procs import LISTEN, bot_env, dead_port, tmbot_command
from tests.slack_rig import ALICE, ALICE_KEY, SECRET, people
from tmbot.config import Config
from tmbot.simulator import Simulator


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        people(fake)
        yield fake


def card_done(fake: FakeSlack, card_ts: str) -> bool:
    return any(
        c.params.get("ts") == card_ts and "tmbot_again" in c.everything()
        for c in fake.calls_to("chat.update")
    )


async def test_socket_mode_runs_the_whole_flow(
    fake: FakeSlack, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMBOT_SECRET_KEY", Fernet.generate_key().decode())
    config = Config(
        database_url=f"sqlite:///{tmp_path / 'socket.db'}",
        tastemachine_url=sim.base_url,
        vtrix_url=sim.base_url,
        time_scale=SCALE,
    )
    env = {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_URL": fake.api_url,
    }
    stop = asyncio.Event()
    task = asyncio.create_task(run(config, env, redactor=None, stop=stop, signals=False))
    try:
        await fake.wait_socket_connected(timeout=15)
        key = payloads.socket_envelope(
            "slash_commands",
            payloads.slash_command(
                "/taste", f"key {ALICE_KEY}", response_url=fake.new_response_url()
            ),
        )
        await fake.socket_send(key)
        await fake.wait_for_call("response_url", timeout=10)
        command = payloads.socket_envelope(
            "slash_commands",
            payloads.slash_command("/taste", "a kite", response_url=fake.new_response_url()),
        )
        ack = await fake.socket_send(command)
        assert ack["payload"]["response_type"] == "ephemeral"
        card = await fake.wait_for_call(
            "chat.postMessage", lambda c: "blocks" in c.params, timeout=15
        )
        card_ts = str(card.response["ts"])
        said = fake.add_user_message(GENERAL, ALICE, f"<@{BOT_USER_ID}> a fox")
        mention = payloads.socket_envelope(
            "events_api",
            payloads.event_callback(
                payloads.app_mention_event(f"<@{BOT_USER_ID}> a fox", ts=said.ts)
            ),
        )
        await fake.socket_send(mention)
        await fake.wait_for(lambda _: card_done(fake, card_ts), timeout=20)
        await fake.wait_for_call(
            "files.completeUploadExternal",
            lambda c: c.params.get("thread_ts") != card_ts,
            timeout=20,
        )
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
    assert len(fake.calls_to(SOCKET_ACK)) == 3
    assert fake.calls_containing(ALICE_KEY) == []


async def test_tmbot_slack_http_as_a_subprocess(
    fake: FakeSlack, sim: Simulator, tmp_path: Path
) -> None:
    env = bot_env(
        sim.base_url,
        tmp_path / "e2e.db",
        scale=SCALE,
        extra={
            "SLACK_BOT_TOKEN": fake.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url,
            "SLACK_APP_TOKEN": fake.app_token,  # --http wins over it
            "TMBOT_SECRET_KEY": Fernet.generate_key().decode(),
        },
    )
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("slack", "--http", "--host", "127.0.0.1", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = LISTEN.search(line)
        assert match, line
        url = match.group(1)

        def slash(text: str) -> payloads.SignedRequest:
            fields = payloads.slash_command("/taste", text, response_url=fake.new_response_url())
            return payloads.signed_form(SECRET, fields)

        assert (await post_signed(url, slash(f"key {ALICE_KEY}"))).status == 200
        await fake.wait_for_call("response_url", timeout=15)
        answer = await post_signed(url, slash("a minimal poster <!channel> --ar 3:4"))
        assert answer.status == 200
        card = await fake.wait_for_call(
            "chat.postMessage", lambda c: "blocks" in c.params, timeout=15
        )
        card_ts = str(card.response["ts"])
        await fake.wait_for(lambda _: card_done(fake, card_ts), timeout=30)
        upload = fake.calls_to("files.completeUploadExternal")[0]
        assert upload.params["thread_ts"] == card_ts
        forged = await post_signed(
            url, payloads.signed_form("wrong", payloads.slash_command("/taste", "x"))
        )
        assert forged.status == 401
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert fake.calls_containing(ALICE_KEY) == []
    assert ALICE_KEY not in err.decode()
    assert all("<!channel>" not in c.everything() for c in fake.calls_to("chat.postMessage"))


async def _refusal(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("slack", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_missing_or_invalid_token_is_one_sentence_and_exit_code_2(fake: FakeSlack) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    code, err = await _refusal(base)
    assert code == 2
    assert err.strip().startswith("tmbot: SLACK_BOT_TOKEN is not set")
    assert len(err.strip().splitlines()) == 1
    bad = {
        **base,
        "SLACK_BOT_TOKEN": "xoxb-not-the-right-one",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
    }
    code, err = await _refusal(bad)
    assert code == 2
    assert "SLACK_BOT_TOKEN is not valid" in err and "invalid_auth" in err
    assert "xoxb-not-the-right-one" not in err


async def test_an_unreachable_web_api_is_one_sentence_and_exit_code_2(fake: FakeSlack) -> None:
    port = dead_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    token = "xoxb-never-reaches-slack-0001"
    for mode in ({"SLACK_SIGNING_SECRET": SECRET}, {"SLACK_APP_TOKEN": fake.app_token}):
        env = {
            **base,
            **mode,
            "SLACK_BOT_TOKEN": token,
            "SLACK_API_URL": f"http://127.0.0.1:{port}/api/",
        }
        code, err = await _refusal(env)
        assert code == 2, err
        assert err.startswith(
            f"tmbot: Slack's Web API cannot be reached at 127.0.0.1:{port} (ClientConnectorError)"
        ), err
        assert len(err.strip().splitlines()) == 1, err
        assert token not in err and fake.app_token not in err


async def test_a_refused_app_token_is_one_sentence_not_endless_retries(
    fake: FakeSlack, tmp_path: Path
) -> None:
    """slack_sdk's Socket Mode connect() retries a refused app token forever; tmbot asks
    apps.connections.open itself first and says so."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TMBOT_"))}
    env = {
        **base,
        "TMBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "TMBOT_SECRET_KEY": Fernet.generate_key().decode(),
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": "xapp-1-not-the-right-one",
        "SLACK_API_URL": fake.api_url,
    }
    code, err = await _refusal(env)
    assert code == 2, err
    said = err.strip().splitlines()
    assert said[-1] == "tmbot: SLACK_APP_TOKEN is not valid (Slack answered invalid_auth).", err
    assert "Traceback" not in err and "xapp-1-not-the-right-one" not in err
    assert len(fake.calls_to("apps.connections.open")) == 1  # asked once, not retried
    assert fake.socket_connections_opened == 0
