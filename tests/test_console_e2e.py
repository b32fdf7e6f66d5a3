"""End to end: `tmbot sim` and `tmbot console` as separate processes over real HTTP."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest
from PIL import Image

from tests.procs import bot_env, run_console, sim_process, start_console
from tmbot.simulator import key_id

SCALE = 60.0
ALICE = "tm_test_aliceAAAAAAAA1111"
BOB = "tm_test_bobBBBBBBBBBB2222"
ACCEPTED = re.compile(r"^\[(\w+)\] accepted: ", re.M)
DELIVERED = re.compile(r"^\[(\w+)\] delivered: (\S+\.png) \((\d+)×(\d+)", re.M)


def raw_bytes(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


async def test_several_users_and_a_bad_line(tmp_path: Path) -> None:
    db, out = tmp_path / "bot.db", tmp_path / "images"
    lines = [
        f"key {ALICE}",
        f"@bob key {BOB}",
        "a minimal poster for a Tokyo coffee shop --ar 3:4",
        "@bob a lighthouse at dawn --ar 16:9 --fast",
        "a poster with a typo --ar 3x4",
        "@bob a tall banner --ar 1:8 --model nano-banana-2 --res 1k",
        "credits",
    ]
    async with sim_process("--time-scale", str(SCALE)) as sim:
        code, stdout, stderr = await run_console(
            bot_env(sim.url, db, scale=SCALE), out, lines, "--user", "alice"
        )
        stats = await sim.stats()
        # once the images are in, the balance their answers reported is shown (the credits
        # line above may come before the first create is answered: nothing waits for it)
        again, later, _ = await run_console(
            bot_env(sim.url, db, scale=SCALE), out, ["credits"], "--user", "alice"
        )
    assert code == 0 and again == 0, stderr
    accepted = ACCEPTED.findall(stdout)
    delivered = {m[0]: m for m in DELIVERED.findall(stdout)}
    assert len(accepted) == 3 and set(accepted) == set(delivered), stdout
    # the bad line got one sentence with a did-you-mean, and nothing was sent for it
    errors = [line for line in stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "3:4" in errors[0], stdout
    assert stats["totals"]["tasks_created"] == 3
    assert stats["totals"]["rate_limited"] == 0
    assert stats["keys"][key_id(ALICE)]["tasks_created"] == 1
    assert stats["keys"][key_id(BOB)]["tasks_created"] == 2
    # real PNGs whose shapes match the requested aspect ratios
    ratios = sorted(round(int(w) / int(h), 2) for _, _, w, h in delivered.values())
    assert ratios == [0.12, 0.75, 1.78]
    for _, path, w, h in delivered.values():
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (int(w), int(h))
    assert "your use of it: 10 credits today" in stdout
    assert "990 credits left" in later
    # no raw key in the database, its WAL, the key file, the output or the logs
    leak = raw_bytes(db, db.with_name("bot.db-wal"), tmp_path / "bot.key")
    for key in (ALICE, BOB):
        assert key.encode() not in leak
        assert key not in stdout and key not in stderr and key not in later


FAULTS = (
    "--error-rate", "0.1", "--timeout-rate", "0.05", "--hang-seconds", "1",
    "--failure-rate", "0.1", "--seed", "11",
)  # fmt: skip
STARTED = re.compile(r"^\[(\w+)\] started \(task ", re.M)
OUTCOME = re.compile(r"^\[(\w+)\] (delivered|failed): ", re.M)


@pytest.mark.parametrize("faults", [(), FAULTS], ids=["clean", "faults"])
async def test_sigkill_mid_flight_resumes_without_resubmitting(
    tmp_path: Path, faults: tuple[str, ...]
) -> None:
    """Kill the console while ten tasks run and two wait; a restart with an empty stdin
    ends each exactly once and the provider sees twelve creates, not more. Under 5xx,
    timeouts and failed tasks too (none of which creates a task twice)."""
    scale = 10.0  # 30 s tasks take about 3 s: long enough to kill mid-flight
    db, out = tmp_path / "bot.db", tmp_path / "images"
    briefs = [f"poster number {i} --ar 4:5" for i in range(12)]
    async with sim_process("--time-scale", str(scale), *faults) as sim:
        env = bot_env(sim.url, db, scale=scale, extra={"TMBOT_HTTP_TIMEOUT": "0.5"})
        proc = await start_console(env, out, "--user", "alice")
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(f"{b}\n" for b in [f"key {ALICE}", *briefs]).encode())
        await proc.stdin.drain()
        first_run: list[str] = []
        started = accepted = 0
        while started < 10 or accepted < 12:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "console ended early"
            first_run.append(line)
            started += " started (task " in line
            accepted += bool(ACCEPTED.match(line))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert not any(" delivered: " in line for line in first_run)

        code, second, stderr = await run_console(env, out, [], "--user", "alice")
        stats = await sim.stats()
    assert code == 0, stderr
    ids = ACCEPTED.findall("".join(first_run))
    assert len(ids) == 12
    ended = OUTCOME.findall("".join(first_run) + second)
    assert sorted(i for i, _ in ended) == sorted(ids), second  # each ends exactly once
    delivered = {i for i, outcome in ended if outcome == "delivered"}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"tmbot-{i}.png" for i in delivered)
    if not faults:
        assert len(delivered) == 12
    started = set(STARTED.findall("".join(first_run) + second))
    totals = stats["totals"]
    # one task per generation that reached the provider: the ten running were polled
    # again, not re-sent (under faults, a create that timed out is failed, not re-sent)
    assert totals["tasks_created"] == len(started)
    assert len(started) == 12 if not faults else len(started) >= 10
    assert totals["rate_limited"] == 0


async def test_empty_stdin_with_nothing_to_do_exits_at_once(tmp_path: Path) -> None:
    async with sim_process("--time-scale", str(SCALE)) as sim:
        code, stdout, stderr = await run_console(
            bot_env(sim.url, tmp_path / "bot.db", scale=SCALE), tmp_path / "out", []
        )
    assert code == 0, stderr
    assert stdout == ""


async def test_a_bad_provider_url_is_one_sentence_and_an_exit_not_a_hang(tmp_path: Path) -> None:
    env = bot_env("ftp://nope.invalid", tmp_path / "bot.db", scale=SCALE)
    code, _, stderr = await run_console(env, tmp_path / "out", [], timeout=20)
    assert code == 2
    assert "TASTEMACHINE_API_URL must be an http(s) URL" in stderr
    assert "Traceback" not in stderr
