"""Hardening (issue 10) at the process level: one `tmbot console` per SQLite database, and
every bad setting is one line on stderr and exit code 2 (never a traceback)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.procs import bot_env, run_console, sim_process, start_console, tmbot_command

SCALE = 60.0
ALICE = "tm_test_aliceLOCKLOCK0001"
ACCEPTED = re.compile(r"^\[(\w+)\] accepted: ", re.M)
DELIVERED = re.compile(r"^\[(\w+)\] delivered: ", re.M)


async def test_a_second_console_on_one_database_is_refused(tmp_path: Path) -> None:
    db, out = tmp_path / "bot.db", tmp_path / "images"
    briefs = [f"a poster number {i} --fast --res 1k" for i in range(6)]
    async with sim_process("--time-scale", str(SCALE)) as sim:
        env = bot_env(sim.url, db, scale=SCALE)
        first = await start_console(env, out, "--user", "alice")
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write(f"key {ALICE}\n{briefs[0]}\n".encode())
        await first.stdin.drain()
        seen: list[str] = []
        while not any(ACCEPTED.match(line) for line in seen):  # the first holds the lock now
            line = (await asyncio.wait_for(first.stdout.readline(), 60)).decode()
            assert line, "the first console ended early"
            seen.append(line)

        # the second gets the same briefs (and a resume), and is refused before anything
        code, stdout, stderr = await run_console(
            env, out, [f"key {ALICE}", *briefs], "--user", "bob"
        )
        assert code == 2
        assert stdout == ""
        (message,) = stderr.splitlines()
        assert message.startswith("tmbot: Another tmbot (process ")
        assert str(first.pid) in message and "PostgreSQL" in message

        first.stdin.write("".join(f"{b}\n" for b in briefs[1:]).encode())
        first.stdin.close()
        rest, errors = await asyncio.wait_for(first.communicate(), 120)
        assert first.returncode == 0, errors.decode()
        stats = await sim.stats()
    printed = "".join(seen) + rest.decode()
    assert len(set(DELIVERED.findall(printed))) == len(briefs)
    assert stats["totals"]["tasks_created"] == len(briefs)  # nothing sent twice
    assert not list(out.glob("*.part"))


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def _run(args: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command(*args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = bot_env("http://127.0.0.1:9", tmp_path / "ok" / "bot.db", scale=1.0)
    env.pop("TMBOT_LOG_LEVEL")
    return env


def _bad_settings(tmp_path: Path, busy_port: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are my notes, not a database\n")
    if os.geteuid() == 0:
        read_only = Path("/proc/tmbot-hardening-test.db")  # root writes any folder but /proc
    else:
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        read_only = locked / "bot.db"
    console = ["console"]
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "database is a folder": (console, {"TMBOT_DATABASE_URL": f"sqlite:///{folder}"}),
        "database in a read-only folder": (
            console,
            {"TMBOT_DATABASE_URL": f"sqlite:///{read_only}"},
        ),
        "database is not a database": (console, {"TMBOT_DATABASE_URL": f"sqlite:///{not_a_db}"}),
        "database is /dev/null": (console, {"TMBOT_DATABASE_URL": "sqlite:////dev/null"}),
        "database in memory": (console, {"TMBOT_DATABASE_URL": "sqlite:///:memory:"}),
        "database url not sqlite": (console, {"TMBOT_DATABASE_URL": "mysql://x"}),
        "log level verbose": (console, {"TMBOT_LOG_LEVEL": "verbose"}),
        "log format xml": (console, {"TMBOT_LOG_FORMAT": "xml"}),
    }
    for name in ("TMBOT_TIME_SCALE", "TMBOT_HTTP_TIMEOUT", "TMBOT_TASK_DEADLINE"):
        for value in ("nan", "inf", "0", "-1", "soon"):
            cases[f"{name}={value}"] = (console, {name: value})
    for flag in ("--failure-rate", "--error-rate", "--timeout-rate", "--malformed-rate"):
        cases[f"sim {flag} 1.5"] = (["sim", flag, "1.5"], {})
    cases["sim --failure-rate nan"] = (["sim", "--failure-rate", "nan"], {})
    cases["sim --port 70000"] = (["sim", "--port", "70000"], {})
    cases["sim --port -1"] = (["sim", "--port", "-1"], {})
    cases["sim --port abc"] = (["sim", "--port", "abc"], {})
    cases["sim port in use"] = (["sim", "--port", str(busy_port)], {})
    cases["sim --time-scale 0"] = (["sim", "--time-scale", "0"], {})
    return cases


async def test_every_bad_setting_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    busy = _busy_port()
    try:
        cases = _bad_settings(tmp_path, busy.getsockname()[1])
        base = _base_env(tmp_path)
        names = list(cases)
        limit = asyncio.Semaphore(4)

        async def one(name: str) -> tuple[int, str, str]:
            args, extra = cases[name]
            async with limit:
                return await _run(args, {**base, **extra})

        results = await asyncio.gather(*(one(name) for name in names))
    finally:
        busy.close()
    wrong = {
        name: (code, stdout[:200], stderr[-500:])
        for name, (code, stdout, stderr) in zip(names, results, strict=True)
        if not _one_sentence_and_2(code, stdout, stderr)
    }
    assert wrong == {}


def _one_sentence_and_2(code: int, stdout: str, stderr: str) -> bool:
    lines = stderr.splitlines()
    return (
        code == 2
        and not stdout
        and len(lines) == 1
        and lines[0].startswith("tmbot")
        and lines[0].endswith(".")
        and "Traceback" not in stderr
    )


async def test_a_missing_secret_after_keys_were_stored_is_a_startup_sentence(
    tmp_path: Path,
) -> None:
    db, out = tmp_path / "bot.db", tmp_path / "images"
    secret = Fernet.generate_key().decode()
    env = bot_env("http://127.0.0.1:9", db, scale=1.0, extra={"TMBOT_SECRET_KEY": secret})
    code, stdout, stderr = await run_console(env, out, [f"key {ALICE}"])
    assert code == 0, stderr
    assert "Saved your key" in stdout
    env.pop("TMBOT_SECRET_KEY")
    code, stdout, stderr = await run_console(env, out, ["credits"])
    assert code == 2
    (line,) = stderr.splitlines()
    assert "TMBOT_SECRET_KEY that is not set now" in line
    assert not (tmp_path / "bot.key").exists()


@pytest.mark.parametrize("line", ["# a comment", "quit"])
async def test_lines_the_console_skips(tmp_path: Path, line: str) -> None:
    env = bot_env("http://127.0.0.1:9", tmp_path / "bot.db", scale=1.0)
    code, stdout, stderr = await run_console(env, tmp_path / "images", [line, "credits please"])
    assert code == 0, stderr
    if line == "quit":
        assert stdout == ""  # nothing after quit is read
    else:
        assert stdout.startswith("error: `credits` takes nothing more")
