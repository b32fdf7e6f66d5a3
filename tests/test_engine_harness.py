"""The console front end in-process, on real parts: the simulator over HTTP, a SQLite file in
tmp_path, the vault with its generated key file, the scheduler and the engine. Lines go
through :class:`adapters.console.Console` exactly as typed on stdin; what it prints is
collected. Shared by tests/test_teams*.py, tests/test_credits*.py and tests/test_engine*.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.console import PLATFORM, Console, ConsoleNotifier
from tmbot.config import Config
from tmbot.engine import Engine
from tmbot.ports import Store
from tmbot.redact import RedactingFilter
from tmbot.runtime import Runtime, open_runtime
from tmbot.simulator import KeyStats, SimConfig, Simulator
from tmbot.vault import Vault, key_file_for

#: provider seconds per real second, for the simulator and the bot alike
SCALE = 100.0
#: the simulator's estimate for a pro 2k image (30 s in reality): short, to keep tests fast;
#: the bot polls from the estimate the provider announces, whatever it is
ESTIMATE = 5.0
ACCEPTED = re.compile(r"^\[(\w+)\] accepted: ")
#: a line the notifier printed for an event (not a reply to a typed line)
EVENT = re.compile(r"^\[\w+\] (?:queued|started|delivered|failed|deleted)\b")


@dataclass
class Transcript:
    """Everything the console printed, with a way to wait for a line without sleeping."""

    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def write(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def wait_for(self, pattern: str, *, timeout: float = 20.0) -> str:
        """The first printed line matching ``pattern`` (a regex), waiting for it if needed."""
        regex = re.compile(pattern)

        async def seen() -> str:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(seen(), timeout)

    def about(self, generation_id: str) -> list[str]:
        return [line for line in self.lines if line.startswith(f"[{generation_id}] ")]


@dataclass
class Chat:
    console: Console
    runtime: Runtime
    sim: Simulator
    transcript: Transcript
    out: Path
    db: Path
    redactor: RedactingFilter

    async def say(self, line: str) -> str:
        """Type one line; returns the console's reply to it (event lines printed meanwhile
        for running generations are left out)."""
        start = len(self.transcript.lines)
        await self.console.handle_line(line)
        new = self.transcript.lines[start:]
        return "\n".join(printed for printed in new if not EVENT.match(printed))

    async def ask(self, line: str) -> str:
        """Type a line that must be accepted; returns the new generation's id."""
        said = await self.say(line)
        match = ACCEPTED.match(said)
        assert match, f"{line!r} was not accepted: {said}"
        return match[1]

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def store(self) -> Store:
        return self.runtime.store

    async def settle(self) -> None:
        await asyncio.wait_for(self.runtime.settled(), 30)

    def stats(self, key: str) -> KeyStats:
        return self.sim.stats().for_key(key)

    def final(self, generation_id: str) -> str:
        """The delivered/failed line of a generation (after :meth:`settle`)."""
        ends = [
            line
            for line in self.transcript.about(generation_id)
            if " delivered: " in line or " failed: " in line
        ]
        assert len(ends) == 1, self.transcript.about(generation_id)
        return ends[0]

    def printed(self) -> str:
        return "\n".join(self.transcript.lines)


@asynccontextmanager
async def console_chat(
    tmp_path: Path,
    *,
    user: str = "alice",
    admins: Iterable[str] = ("alice",),
    scale: float = SCALE,
    now: Callable[[], float] = time.time,
    sim_config: SimConfig | None = None,
) -> AsyncIterator[Chat]:
    config = sim_config or SimConfig(time_scale=scale, estimate_seconds=ESTIMATE)
    db, out = tmp_path / "bot.db", tmp_path / "images"
    transcript = Transcript()
    redactor = RedactingFilter()
    async with (
        Simulator(config) as sim,
        open_runtime(
            Config(time_scale=config.time_scale),
            {PLATFORM: ConsoleNotifier(out, write=transcript.write)},
            redactor=redactor,
            database_url=f"sqlite:///{db}",
            tastemachine_url=sim.base_url,
            vtrix_url=sim.base_url,
            vault=Vault.from_environment(env={}, key_file=key_file_for(db)),
            now=now,
        ) as runtime,
    ):
        console = Console(runtime.engine, user=user, admins=admins, write=transcript.write)
        yield Chat(console, runtime, sim, transcript, out, db, redactor)


def stored_bytes(db: Path) -> bytes:
    """The database, its WAL and the vault's key file, as bytes (for leak checks)."""
    paths = (db, db.with_name(db.name + "-wal"), key_file_for(db))
    return b"".join(p.read_bytes() for p in paths if p.exists())


async def test_the_harness_runs_one_image_end_to_end(tmp_path: Path) -> None:
    key = "tm_test_harnessAAAA0001"
    async with console_chat(tmp_path) as chat:
        assert await chat.say(f"key {key}") == (
            "Saved your key for The Taste Machine (…0001), encrypted."
        )
        gen = await chat.ask("a small test poster --fast --res 1k")
        await chat.settle()
        assert " delivered: " in chat.final(gen)
        assert chat.stats(key).tasks_created == 1
        assert (chat.out / f"tmbot-{gen}.png").exists()
    assert key.encode() not in stored_bytes(chat.db)
    assert key not in chat.printed()
