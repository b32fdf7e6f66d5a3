"""Run `tmbot sim` and `tmbot console` as real processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

LISTEN = re.compile(r"listening on (http://\S+)")


@dataclass
class SimProcess:
    proc: asyncio.subprocess.Process
    url: str

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{self.url}/_sim/stats")
            answer.raise_for_status()
            data: dict[str, Any] = answer.json()
            return data

    async def release(self) -> int:
        """Let the held tasks (``--hold-tasks``) end; how many were held."""
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{self.url}/_sim/release")
            answer.raise_for_status()
            released: int = answer.json()["released"]
            return released

    async def configure(self, **changes: object) -> None:
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.url}/_sim/config", json=changes)).raise_for_status()


def tmbot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tmbot.cli", *args]


@asynccontextmanager
async def sim_process(*args: str) -> AsyncIterator[SimProcess]:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("sim", "--port", "0", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = LISTEN.search(line)
        assert match, f"simulator said {line!r}"
        yield SimProcess(proc, match.group(1))
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def bot_env(
    sim_url: str, db: Path, *, scale: float, extra: Mapping[str, str] = {}
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TMBOT_", "TASTEMACHINE_", "VTRIX_"))
    }
    env.update(
        TASTEMACHINE_API_URL=sim_url,
        VTRIX_API_URL=sim_url,
        TMBOT_DATABASE_URL=f"sqlite:///{db}",
        TMBOT_TIME_SCALE=str(scale),
        TMBOT_LOG_LEVEL="INFO",
        **extra,
    )
    return env


async def start_console(
    env: Mapping[str, str], out: Path, *args: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *tmbot_command("console", "--out", str(out), *args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )


async def run_console(
    env: Mapping[str, str], out: Path, lines: list[str], *args: str, timeout: float = 120
) -> tuple[int, str, str]:
    proc = await start_console(env, out, *args)
    stdout, stderr = await asyncio.wait_for(
        proc.communicate("".join(f"{line}\n" for line in lines).encode()), timeout
    )
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def dead_port() -> int:
    """A local port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
