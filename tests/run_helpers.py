"""`tmbot run` as a real process: its output lines read as they come, waited on by pattern
(no sleeps), beside the fake Slack, the fake Discord and the simulator in the test's loop."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.procs import tmbot_command

HEALTH = re.compile(r"health on (http://\S+)/readyz")
LIFECYCLE = "tmbot.lifecycle"


@dataclass
class BotProcess:
    proc: asyncio.subprocess.Process
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            async with self.changed:
                into.append(line.decode())
                self.changed.notify_all()
        async with self.changed:
            self.changed.notify_all()

    async def wait_line(
        self, pattern: str, *, stderr: bool = False, count: int = 1, timeout: float = 60
    ) -> list[str]:
        """The first ``count`` lines matching ``pattern`` (once printed)."""
        lines = self.err if stderr else self.out
        regex = re.compile(pattern)

        def found() -> list[str] | None:
            hits = [line for line in lines if regex.search(line)]
            if len(hits) >= count:
                return hits[:count]
            if self.proc.returncode is not None and all(r.done() for r in self.readers):
                raise AssertionError(
                    f"tmbot exited ({self.proc.returncode}) before {pattern!r}:\n"
                    + "".join(self.out + self.err)[-4000:]
                )
            return None

        async with asyncio.timeout(timeout), self.changed:
            result = await self.changed.wait_for(found)
        return result

    def moves(self, state: str) -> list[dict[str, Any]]:
        """The JSON log lines of generations moving to ``state``."""
        found = []
        for line in self.err:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == LIFECYCLE and entry.get("state") == state:
                found.append(entry)
        return found

    async def wait_moves(self, state: str, count: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.moves(state)) >= count)

    async def stop(self, timeout: float = 60) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await asyncio.gather(*self.readers)
        return code

    async def finished(self, timeout: float = 60) -> int:
        """Wait for the process to end by itself."""
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await asyncio.gather(*self.readers)
        return code

    def text(self) -> str:
        return "".join(self.out + self.err)


async def start_run(env: Mapping[str, str], *args: str, cwd: str | None = None) -> BotProcess:
    proc = await asyncio.create_subprocess_exec(
        *tmbot_command("run", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    bot = BotProcess(proc)
    assert proc.stdout is not None and proc.stderr is not None
    bot.readers = [
        asyncio.create_task(bot._read(proc.stdout, bot.out)),
        asyncio.create_task(bot._read(proc.stderr, bot.err)),
    ]
    return bot


def first_match(lines: list[str], regex: re.Pattern[str]) -> str:
    match = regex.search(lines[0])
    assert match, lines
    return match.group(1)
