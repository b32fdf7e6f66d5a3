"""Several ``tmbot console`` processes on one PostgreSQL database, as real processes: each key's
lane is run by one of them (its limits hold across all), every image is delivered once, and
when the lane's owner is killed another takes the lane over, polls what is at the provider
again and never re-submits."""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet

from storage.lanes import LANES_CHANNEL
from tests.procs import bot_env, sim_process, start_console

TEAM = "tm_test_sharedTEAMkey000777"
BRIEFS = 30
PROCESSES = 3
ACCEPTED = re.compile(r"^\[(\w+)\] accepted: ", re.M)
STARTED = re.compile(r"^\[(\w+)\] started ", re.M)
DELIVERED = re.compile(r"^\[(\w+)\] delivered: ", re.M)


class Consoles:
    """Three console processes on one database and one images folder; every line they
    print is collected, and a test waits on conditions over them (with a timeout)."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs
        self.out: list[list[str]] = [[] for _ in procs]
        self.err: list[list[str]] = [[] for _ in procs]
        self._changed = asyncio.Condition()
        self._readers = [
            asyncio.create_task(self._read(n, stream, into))
            for n, proc in enumerate(procs)
            for stream, into in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]

    async def _read(
        self, n: int, stream: asyncio.StreamReader | None, into: list[list[str]]
    ) -> None:
        assert stream is not None
        while line := await stream.readline():
            async with self._changed:
                into[n].append(line.decode())
                self._changed.notify_all()

    def text(self, n: int | None = None) -> str:
        chosen = self.out if n is None else [self.out[n]]
        return "".join(line for lines in chosen for line in lines)

    def ids(self, pattern: re.Pattern[str], n: int | None = None) -> list[str]:
        return pattern.findall(self.text(n))

    async def until(self, what: Callable[[], bool], timeout: float, said: str) -> None:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(what)
        except TimeoutError:
            raise AssertionError(f"{said} within {timeout:g} s; stderr: {self.err}") from None

    async def send(self, n: int, lines: list[str]) -> None:
        stdin = self.procs[n].stdin
        assert stdin is not None
        stdin.write("".join(f"{line}\n" for line in lines).encode())
        await stdin.drain()

    async def finish(self) -> list[int | None]:
        """Close every stdin still open; each console exits once the work is done."""
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()
        codes = [await asyncio.wait_for(proc.wait(), 120) for proc in self.procs]
        await asyncio.gather(*self._readers)
        return codes

    async def kill_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def _start(env: dict[str, str], out: Path) -> Consoles:
    procs = [
        await start_console(env, out, "--user", f"member{n}", "--admin", "boss")
        for n in range(PROCESSES)
    ]
    consoles = Consoles(procs)
    # the team key is bound once, through the first process; all three spend it
    await consoles.send(0, [f"@boss team key {TEAM}"])
    await consoles.until(lambda: "…0777" in consoles.text(0), 60, "the team key was not bound")
    return consoles


async def _burst(consoles: Consoles) -> None:
    """30 briefs on the team key, a third through each process."""
    for n in range(PROCESSES):
        share = range(n, BRIEFS, PROCESSES)
        await consoles.send(n, [f"a poster number {i} --fast --res 1k" for i in share])
    await consoles.until(
        lambda: len(consoles.ids(ACCEPTED)) == BRIEFS, 60, "the briefs were not all accepted"
    )


def _env(sim_url: str, pg_url: str, tmp_path: Path, scale: float) -> dict[str, str]:
    env = bot_env(sim_url, tmp_path / "unused.db", scale=scale)
    env.update(TMBOT_DATABASE_URL=pg_url, TMBOT_SECRET_KEY=Fernet.generate_key().decode())
    return env


async def test_three_processes_share_one_key_within_its_limits_and_deliver_each_image_once(
    tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "images"
    async with sim_process("--time-scale", "10") as sim:
        consoles = await _start(_env(sim.url, pg_url, tmp_path, 10.0), out)
        try:
            await _burst(consoles)
            for n in range(PROCESSES):  # every process accepted its share
                assert len(consoles.ids(ACCEPTED, n)) == BRIEFS // PROCESSES
            await consoles.until(
                lambda: len(set(consoles.ids(DELIVERED))) == BRIEFS, 180, "not all delivered"
            )
            codes = await consoles.finish()
        finally:
            await consoles.kill_all()
        stats = (await sim.stats())["totals"]
    assert codes == [0] * PROCESSES, consoles.err
    accepted = consoles.ids(ACCEPTED)
    delivered = collections.Counter(consoles.ids(DELIVERED))
    twice = [g for g, n in delivered.items() if n > 1]
    assert set(delivered) == set(accepted) and not twice, "\n".join(
        f"{n} {line}"
        for n in range(PROCESSES)
        for line in consoles.out[n] + consoles.err[n]
        if twice[0] in line
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f"tmbot-{g}.png" for g in accepted)
    assert " failed: " not in consoles.text()
    assert stats["tasks_created"] == BRIEFS
    assert stats["rate_limited"] == 0
    assert 1 < stats["max_concurrent_seen"] <= 10


async def test_the_lane_owner_killed_mid_burst_is_taken_over_and_nothing_is_lost_or_resent(
    tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "images"
    taken: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    await listener.add_listener(
        LANES_CHANNEL, lambda *args: taken.put_nowait((time.monotonic(), str(args[-1])))
    )
    try:
        # tasks take about six real seconds: ten are at the provider when the owner dies
        async with sim_process("--time-scale", "5") as sim:
            consoles = await _start(_env(sim.url, pg_url, tmp_path, 5.0), out)
            try:
                await _burst(consoles)
                _, first = await asyncio.wait_for(taken.get(), 30)
                lane, owner = first.split(" ")
                pid = int(owner.split("@", 1)[0])
                (victim,) = [n for n, p in enumerate(consoles.procs) if p.pid == pid]
                await consoles.until(
                    lambda: len(set(consoles.ids(STARTED))) >= 10, 60, "ten did not start"
                )
                consoles.procs[victim].kill()
                killed_at = time.monotonic()
                await consoles.procs[victim].wait()
                while True:  # the next owner of the lane (a renewal by the dead one is not)
                    at, said = await asyncio.wait_for(taken.get(), 30)
                    if said != first:
                        break
                new_lane, new_owner = said.split(" ")
                assert new_lane == lane and int(new_owner.split("@", 1)[0]) != pid
                assert at - killed_at < 10.0
                await consoles.until(
                    lambda: len(list(out.glob("*.png"))) == BRIEFS, 180, "not all delivered"
                )
                alive = [n for n in range(PROCESSES) if n != victim]
                consoles.procs = [consoles.procs[n] for n in alive] + [consoles.procs[victim]]
                codes = await consoles.finish()
            finally:
                await consoles.kill_all()
            stats = (await sim.stats())["totals"]
    finally:
        await listener.close()
    assert codes[: PROCESSES - 1] == [0] * (PROCESSES - 1), consoles.err
    accepted = consoles.ids(ACCEPTED)
    assert len(set(accepted)) == BRIEFS
    assert sorted(p.name for p in out.iterdir()) == sorted(f"tmbot-{g}.png" for g in accepted)
    # each image posted once: a second hand-over (after the kill) finds its link and skips it
    fresh = [
        line
        for line in consoles.text().splitlines()
        if " delivered: " in line and "(already saved)" not in line
    ]
    assert collections.Counter(DELIVERED.findall("\n".join(fresh))) == dict.fromkeys(accepted, 1)
    assert " failed: " not in consoles.text()
    assert stats["tasks_created"] == BRIEFS  # nothing re-submitted, nothing lost
    assert stats["rate_limited"] == 0
    assert stats["max_concurrent_seen"] <= 10
