"""Operating the bot as a host would: JSON logs with every move and never a key, `tmbot
status` beside a running bot, settings from a .env file."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from pathlib import Path

from tests.procs import bot_env, run_console, sim_process, start_console, tmbot_command
from tmbot.logs import JsonFormatter, configure_logging

SCALE = 60.0
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
