"""Operating the bot as a host would: JSON logs with every move and never a key, `tmbot
status` beside a running bot, settings from a .env file."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx

from storage.sqlite import latest_schema, stored_schema
from tests.fakes.slack import FakeSlack
from tests.harness import Bot, old_database
from tests.procs import (
    bot_env,
    dead_port,
    run_console,
    run_tmbot,
    sim_process,
    start_console,
    tmbot_command,
)
from tmbot.health import serve
from tmbot.logs import JsonFormatter, configure_logging

SCALE = 60.0
MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]


KEY = "tm_test_logsLLLLLLLLLL0001"


async def test_json_lines_carry_each_move_and_no_key(tmp_path: Path) -> None:
    async with sim_process("--time-scale", str(SCALE)) as sim:
        env = bot_env(sim.url, tmp_path / "bot.db", scale=SCALE, extra={"TMBOT_LOG_FORMAT": "json"})
        code, stdout, stderr = await run_console(
            env, tmp_path / "out", [f"key {KEY}", "a poster --fast --res 1k"]
        )
    assert code == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one object
    moves = [line for line in lines if line.get("logger") == "tmbot.lifecycle"]
    assert [m["state"] for m in moves] == ["submitting", "submitted", "delivered"]
    generation = moves[0]["generation"]
    assert all(m["generation"] == generation and m["platform"] == "console" for m in moves)
    assert all({"time", "level", "message", "key", "seconds"} <= set(m) for m in moves)
    assert KEY not in stderr and KEY not in stdout


def test_the_redactor_covers_every_logger_in_both_formats() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        for fmt in ("text", "json"):
            stream = io.StringIO()
            redactor = configure_logging(level="INFO", fmt=fmt, stream=stream)
            redactor.register(KEY)
            logging.getLogger("slack_sdk.web").info("sent Authorization: Bearer %s", KEY)
            logging.getLogger("discord.http").warning("token %s rejected", KEY)
            written = stream.getvalue()
            assert KEY not in written and written.count("\n") == 2, written
            if fmt == "json":
                assert [json.loads(line)["logger"] for line in written.splitlines()] == [
                    "slack_sdk.web",
                    "discord.http",
                ]
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_a_json_line_keeps_an_exception_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["error"].startswith("Traceback")


async def test_status_reads_the_database_beside_a_running_bot(tmp_path: Path) -> None:
    db, out = tmp_path / "bot.db", tmp_path / "out"
    async with sim_process("--time-scale", "1") as sim:  # images take their real 30 s
        env = bot_env(sim.url, db, scale=1.0)
        console = await start_console(env, out)
        assert console.stdin is not None and console.stdout is not None
        console.stdin.write(f"key {KEY}\n".encode())
        for n in range(12):  # two more than the key's ten slots
            console.stdin.write(f"poster {n}\n".encode())
        await console.stdin.drain()
        started = 0
        while started < 10:
            line = (await asyncio.wait_for(console.stdout.readline(), 30)).decode()
            started += " started (task " in line
        status = await asyncio.create_subprocess_exec(
            *tmbot_command("status"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        shown, errors = await asyncio.wait_for(status.communicate(), 30)
        running = console.returncode is None  # the bot it read beside was not disturbed
        console.kill()
        await console.wait()
    text = shown.decode()
    assert status.returncode == 0, errors.decode()
    assert "Generations: 2 waiting, 10 generating." in text, text
    assert "• The Taste Machine …0001 (personal): 2 / 10" in text, text
    assert "Events not yet shown" in text or "Every event has been shown." in text
    assert KEY not in text
    assert running


async def test_a_dotenv_file_fills_in_what_the_environment_leaves_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\nTMBOT_DATABASE_URL=sqlite:///from-dotenv.db\nTMBOT_LOG_LEVEL=INFO\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMBOT_")}

    async def status(extra: dict[str, str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *tmbot_command("status"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**env, **extra},
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    assert "No database at from-dotenv.db yet" in await status({})
    # the real environment wins over the file
    assert "No database at real.db yet" in await status({"TMBOT_DATABASE_URL": "sqlite:///real.db"})


async def _doctor(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    code, out, err = await run_tmbot("doctor", env=env, cwd=cwd)
    return code, out + err


async def test_doctor_passes_a_good_configuration_and_names_each_problem(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    db = tmp_path / "bot.db"
    async with sim_process("--time-scale", str(SCALE)) as sim:
        env = bot_env(sim.url, db, scale=SCALE, extra={"TMBOT_SECRET_KEY": first})
        code, _, stderr = await run_console(env, tmp_path / "out", [f"key {KEY}"])
        assert code == 0, stderr
        async with FakeSlack(bot_token="xoxb-not-shown-1") as slack:
            chat = {
                "SLACK_BOT_TOKEN": "xoxb-not-shown-1",
                "SLACK_SIGNING_SECRET": "s3cr3t-not-shown",
                "SLACK_API_URL": slack.api_url,
            }
            code, good = await _doctor({**env, **chat}, tmp_path)
        assert code == 0, good
        assert all(line.startswith("ok ") for line in good.splitlines()), good
        assert "stored keys: 1 stored, all readable" in good

        # no chat tokens, a rotated secret, an unreachable provider
        broken = {
            **env,
            "TMBOT_SECRET_KEY": second,
            "TASTEMACHINE_API_URL": f"http://127.0.0.1:{dead_port()}",
        }
        code, bad = await _doctor(broken, tmp_path)
    assert code == 1
    failures = [line for line in bad.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failures] == [
        "FAIL chat platforms",
        "FAIL stored keys",
        "FAIL The Taste Machine",
    ], bad
    assert "…0001 (personal)" in bad and "TMBOT_SECRET_KEY changed" in bad
    # a folder where the database should be
    folder = tmp_path / "folder.db"
    folder.mkdir()
    code, odd = await _doctor({**env, "TMBOT_DATABASE_URL": f"sqlite:///{folder}"}, tmp_path)
    assert code == 1 and "FAIL database:" in odd and "is not a file" in odd
    for text in (good, bad, odd):
        for secret in (KEY, first, second, "xoxb-not-shown-1", "s3cr3t-not-shown"):
            assert secret not in text


async def test_sigterm_stops_at_once_and_the_next_start_finishes_the_work(
    tmp_path: Path,
) -> None:
    db, out = tmp_path / "bot.db", tmp_path / "out"
    async with sim_process("--time-scale", "10") as sim:  # images take about 3 s
        env = bot_env(sim.url, db, scale=10.0, extra={"TMBOT_SHUTDOWN_GRACE": "0.2"})
        console = await start_console(env, out)
        assert console.stdin is not None and console.stdout is not None
        console.stdin.write(f"key {KEY}\n".encode())
        for n in range(3):
            console.stdin.write(f"poster {n}\n".encode())
        await console.stdin.drain()
        first: list[str] = []
        while sum(" started (task " in line for line in first) < 3:
            first.append((await asyncio.wait_for(console.stdout.readline(), 30)).decode())
        console.send_signal(signal.SIGTERM)  # stdin is still open: only the signal stops it
        rest, _ = await asyncio.wait_for(console.communicate(), 10)
        first += rest.decode().splitlines(keepends=True)
        assert console.returncode == 0
        code, second, stderr = await run_console(env, out, [])  # resumes, then exits
        stats = await sim.stats()
    assert code == 0, stderr
    delivered = [line for line in [*first, *second.splitlines()] if " delivered: " in line]
    assert len(delivered) == 3 and not any("already" in line for line in delivered), delivered
    assert len(list(out.glob("tmbot-*.png"))) == 3
    assert stats["totals"]["tasks_created"] == 3  # nothing was sent twice


async def test_ready_only_once_every_part_is(make_bot: MakeBot) -> None:
    connected = asyncio.Event()

    async def adapter() -> bool:
        return connected.is_set()

    async with make_bot() as bot:
        checks = {**bot.runtime.readiness(), "test adapter": adapter}
        async with serve(checks) as url, httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/healthz")).json() == {"status": "alive"}
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503
            assert waiting.json()["checks"] == {
                "store": True,
                "engine": True,
                "test adapter": False,
            }
            connected.set()
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            await bot.runtime.engine.aclose()
            assert (await client.get("/readyz")).json()["checks"]["engine"] is False


async def test_status_and_doctor_change_nothing_they_look_at(tmp_path: Path) -> None:
    """Neither creates, locks nor migrates a database, nor makes a key file."""
    old = tmp_path / "old.db"
    old_database(old, migrations=3).close()
    before = old.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMBOT_", "SLACK_"))}
    dead = f"http://127.0.0.1:{dead_port()}"  # never the real APIs from a test
    env.update(TMBOT_DATABASE_URL=f"sqlite:///{old}", TASTEMACHINE_API_URL=dead, VTRIX_API_URL=dead)
    code, text = await _doctor(env, tmp_path)
    failed = [line.split(":")[0] for line in text.splitlines() if line.startswith("FAIL")]
    assert code == 1 and failed == [
        "FAIL chat platforms",
        "FAIL The Taste Machine",
        "FAIL Vtrix (Nano Banana 2)",
    ], text
    assert f"schema 3 of {latest_schema()}; it is migrated at the next start" in text, text
    assert "secret: none yet" in text
    status = await asyncio.create_subprocess_exec(
        *tmbot_command("status"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    _, said = await asyncio.wait_for(status.communicate(), 30)
    assert status.returncode == 2 and "schema 3" in said.decode()
    assert stored_schema(old) == 3 and old.read_bytes() == before
    assert not (tmp_path / "old.key").exists() and not (tmp_path / "old.db.lock").exists()


async def test_a_bot_process_settles_its_heap_and_a_one_off_command_does_not(
    tmp_path: Path,
) -> None:
    # tmbot.heap: a long-running bot freezes its start-up heap and collects less often;
    # `status` (a one-off look) keeps CPython's defaults
    probe = (
        "import gc, sys\n"
        "from tmbot.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('heap', code, *gc.get_threshold(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    env = bot_env("http://127.0.0.1:9", tmp_path / "bot.db", scale=1.0)
    seen = []
    for args in (["console", "--out", str(tmp_path / "out")], ["status"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            probe,
            *args,
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        lines = [line for line in err.decode().splitlines() if line.startswith("heap ")]
        assert lines, err.decode()
        seen.append(lines[-1])
    assert seen == ["heap 0 5000 20 20 True", "heap 0 700 10 10 False"]
