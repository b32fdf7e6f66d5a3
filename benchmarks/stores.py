"""``python -m benchmarks.stores``: one process on SQLite, one on PostgreSQL and three on one
PostgreSQL database, in the same run, on the same loads; then how long a lane takes to be
taken over after its owner is killed.

For ``many-keys`` (200 keys x 5 briefs) and ``burst`` (50 briefs on one team key), each
configuration runs against a fresh simulator (:mod:`benchmarks.simhost`) and a fresh database:
its worker processes (:mod:`benchmarks.worker`, the real bot built by
:func:`tmbot.runtime.open_runtime`) start, the first binds the keys, all start sending
together, each its share of the briefs (round-robin), and all stay until every brief has
ended. Their traces are merged (:func:`benchmarks.ours.merge`) and measured as
:mod:`benchmarks.run` measures one (:func:`benchmarks.metrics.compute`).

The takeover: three processes on PostgreSQL with a steady load on one team key; once ten
images are delivered the lane's owner is killed (SIGKILL); reported are the time from the
kill until another process owns the lane (its ``NOTIFY tmbot_lanes``) and until that
process's first request for the key is sent to the simulator, and whether every brief was
delivered once with nothing created twice at the provider.

PostgreSQL is a throwaway cluster (:class:`tests.pg.Cluster`), started once for the run.

    python -m benchmarks.stores                            # everything (~6 minutes)
    python -m benchmarks.stores --quick                    # a fast smoke run (~1 minute)
    python -m benchmarks.stores --out benchmarks/STORES.md
    python -m benchmarks.stores --check                    # exit 1 when a target is missed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from benchmarks import report
from benchmarks.metrics import compute
from benchmarks.ours import merge, trace_of
from benchmarks.plan import new_key
from benchmarks.report import _num, _ratio
from benchmarks.run import RunFailed, _spawn, _tail, simulator
from benchmarks.scenarios import CONCURRENCY, RPM, Scenario, scenario
from storage.lanes import LANES_CHANNEL
from tests.pg import Cluster, ClusterUnavailable

M = dict[str, Any]
SCENARIOS = ("many-keys", "burst")
#: the takeover target (real seconds from the kill to the new owner's first request)
TAKEOVER_TARGET = 10.0
#: the lane's owner is killed once this many images are delivered (the lane is busy; quick)
KILL_AFTER = (CONCURRENCY, 5)
#: --quick: fewer keys for many-keys than benchmarks.run's quick table (three processes each)
QUICK_KEYS = 10


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    processes: int
    postgres: bool


SETUPS = (
    Setup("sqlite", "SQLite, 1 process", 1, postgres=False),
    Setup("pg", "PostgreSQL, 1 process", 1, postgres=True),
    Setup("pg3", "PostgreSQL, 3 processes", 3, postgres=True),
)


# --- the worker processes ----------------------------------------------------------------


class Workers:
    """Worker processes stepping together: each prints a step (``ready``, ``sent N``,
    ``settled``) and waits; once all live ones have, each is told to go on. Event lines
    (``accepted ID``, ``delivered ID``, ``failed ID``, ``posted-before ID``: a Delivered
    event handed over again whose image a process killed since had posted) are counted as
    they come."""

    def __init__(self, procs: list[asyncio.subprocess.Process], errs: list[Path]) -> None:
        self.procs = procs
        self.errs = errs
        self.accepted: list[str] = []
        self.delivered: Counter[str] = Counter()
        self.failed: list[str] = []
        self.posted_before: set[str] = set()
        self._steps: list[asyncio.Queue[str]] = [asyncio.Queue() for _ in procs]
        self._changed = asyncio.Condition()
        self._readers = [asyncio.create_task(self._read(n)) for n in range(len(procs))]

    @classmethod
    async def start(
        cls, args: Callable[[int], list[str]], n: int, tag: str, tmp: Path, env: dict[str, str]
    ) -> Workers:
        errs = [tmp / f"{tag}-w{i}.err" for i in range(n)]
        procs = [await _spawn(args(i), stderr=errs[i], stdin=True, env=env) for i in range(n)]
        return cls(procs, errs)

    async def _read(self, n: int) -> None:
        stream = self.procs[n].stdout
        assert stream is not None
        while line := (await stream.readline()).decode():
            kind, _, what = line.strip().partition(" ")
            async with self._changed:
                if kind == "accepted":
                    self.accepted.append(what)
                elif kind == "delivered":
                    self.delivered[what] += 1
                elif kind == "failed":
                    self.failed.append(what)
                elif kind == "posted-before":
                    self.posted_before.add(what)
                else:
                    self._steps[n].put_nowait(line.strip())
                self._changed.notify_all()
        self._steps[n].put_nowait("")  # ended

    def delivered_once(self) -> int:
        """Images posted exactly once: said delivered once, or never said by the process
        that posted it because it was killed right after, and found posted by another."""
        ids = set(self.delivered) | self.posted_before
        return sum(
            1
            for g in ids
            if self.delivered[g] == 1 or (self.delivered[g] == 0 and g in self.posted_before)
        )

    def _errors(self) -> str:
        return "\n".join(f"worker {n}: {_tail(err, 8)}" for n, err in enumerate(self.errs))

    async def step(self, name: str, among: Sequence[int], limit: float) -> list[str]:
        """Wait until every worker in ``among`` has said ``name``; tell them to go on."""
        said = []
        try:
            async with asyncio.timeout(limit):
                for n in among:
                    line = await self._steps[n].get()
                    if not line.startswith(name):
                        raise RunFailed(f"worker {n} said {line!r}, not {name!r}\n{self._errors()}")
                    said.append(line)
        except TimeoutError:
            raise RunFailed(f"the workers did not say {name!r}\n{self._errors()}") from None
        for n in among:
            stdin = self.procs[n].stdin
            assert stdin is not None
            stdin.write(b"go\n")
            await stdin.drain()
        return said

    async def until(self, what: Callable[[], bool], limit: float, said: str) -> None:
        try:
            async with asyncio.timeout(limit), self._changed:
                await self._changed.wait_for(what)
        except TimeoutError:
            raise RunFailed(f"{said} within {limit:g} s\n{self._errors()}") from None

    async def finish(self, among: Sequence[int], limit: float = 60) -> None:
        for n in among:
            try:
                code = await asyncio.wait_for(self.procs[n].wait(), limit)
            except TimeoutError:
                raise RunFailed(f"worker {n} did not exit\n{self._errors()}") from None
            if code != 0:
                raise RunFailed(f"worker {n} exited {code}\n{self._errors()}")

    async def kill_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)


def _worker_args(
    scenario: Scenario, sim_url: str, database_url: str, keys: Path, result: Path, quick: bool
) -> Callable[[int], list[str]]:
    def args(i: int) -> list[str]:
        return [
            "benchmarks.worker", "--side", "ours", "--scenario", scenario.name,
            "--url", sim_url, "--scale", repr(scenario.time_scale),
            "--result", str(result.with_suffix(f".w{i}.json")),
            "--database-url", database_url, "--keys", str(keys),
            *(["--quick"] if quick else []),
        ]  # fmt: skip

    return args


def _count_share(args: Callable[[int], list[str]], count: int) -> Callable[[int], list[str]]:
    return lambda i: [*args(i), "--share", f"{i}/{count}"]


def merged(results: list[M]) -> M:
    """The workers' results as one run: every brief's trace filled in from what every
    process saw; loop lag and RSS are the worst process's."""
    traces = [trace_of(t) for r in results for t in r["traces"]]
    merge(
        traces,
        [r["notified"] for r in results],
        [{k: trace_of(v) for k, v in r["tasks"].items()} for r in results],
    )
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["client_errors"])
    return {
        "side": "ours",
        "scenario": results[0]["scenario"],
        "scale": results[0]["scale"],
        "t0": min(r["t0"] for r in results),
        "t_end": max(r["t_end"] for r in results),
        "timed_out": any(r["timed_out"] for r in results),
        "lag": max(results, key=lambda r: r["lag"].get("grid_p99_ms") or 0)["lag"],
        "rss": max(results, key=lambda r: r["rss"].get("peak", 0))["rss"],
        "keys": results[0]["keys"],
        "traces": [t.to_json() for t in traces],
        "client_errors": dict(errors),
        "max_queue_position": max(r["max_queue_position"] for r in results),
    }


# --- one configuration on one scenario ------------------------------------------------------


async def run_setup(
    chosen: Scenario, setup: Setup, cluster: Cluster, *, quick: bool, seed: int, tmp: Path
) -> M:
    tag = f"{chosen.name}-{setup.name}"
    keys = tmp / f"{tag}-keys.json"
    keys.write_text(json.dumps([new_key() for _ in range(chosen.keys)]))
    if setup.postgres:
        database_url = await cluster.fresh_database()
    else:
        database_url = f"sqlite:///{tmp / f'{tag}.db'}"
    env = dict(os.environ, TMBOT_SECRET_KEY=Fernet.generate_key().decode())
    everyone = range(setup.processes)
    limit = chosen.timeout + 60
    async with simulator(chosen.sim_config("ours", seed), tag, tmp) as sim:
        args = _worker_args(chosen, sim.url, database_url, keys, tmp / tag, quick)
        workers = await Workers.start(
            _count_share(args, setup.processes), setup.processes, tag, tmp, env
        )
        try:
            await workers.step("ready", everyone, 120)
            await workers.step("sent", everyone, limit)
            await workers.step("settled", everyone, limit)
            await workers.finish(everyone)
        finally:
            await workers.kill_all()
        stats, raw = await sim.stats()
        (tmp / f"{tag}-stats.json").write_text(raw)
    results = [json.loads(tmp.joinpath(f"{tag}.w{i}.json").read_text()) for i in everyone]
    metrics = compute(chosen, merged(results), stats, sim.clock, sim.host)
    per_key = stats["keys"]
    metrics.update(
        setup=setup.name,
        processes=setup.processes,
        accepted=len(workers.accepted),
        delivered_once=sum(1 for n in workers.delivered.values() if n == 1),
        delivered_twice=sum(1 for n in workers.delivered.values() if n > 1),
        peak_per_key=max(
            (int(per_key.get(kid, {}).get("max_concurrent_seen", 0)) for kid in results[0]["keys"]),
            default=0,
        ),
    )
    if setup.postgres:
        await cluster.drop_database(database_url)
    return metrics


# --- the takeover ---------------------------------------------------------------------------


async def takeover(cluster: Cluster, *, quick: bool, seed: int, tmp: Path, rep: int) -> M:
    chosen = scenario("takeover", quick=quick)
    tag = f"takeover-{rep}"
    keys = tmp / f"{tag}-keys.json"
    keys.write_text(json.dumps([new_key() for _ in range(chosen.keys)]))
    database_url = await cluster.fresh_database()
    env = dict(os.environ, TMBOT_SECRET_KEY=Fernet.generate_key().decode())
    owners: list[tuple[float, int]] = []  # (when, pid) of each lane take
    taken = asyncio.Event()

    def on_take(*args: object) -> None:
        member = str(args[-1]).split(" ", 1)[1]
        owners.append((time.monotonic(), int(member.split("@", 1)[0])))
        taken.set()

    listener = await asyncpg.connect(database_url)
    await listener.add_listener(LANES_CHANNEL, on_take)
    limit = chosen.timeout + 60
    try:
        async with simulator(chosen.sim_config("ours", seed + rep), tag, tmp) as sim:
            args = _worker_args(chosen, sim.url, database_url, keys, tmp / tag, quick)
            workers = await Workers.start(_count_share(args, 3), 3, tag, tmp, env)
            try:
                await workers.step("ready", range(3), 120)
                await workers.step("sent", range(3), limit)
                after = KILL_AFTER[quick]
                await workers.until(
                    lambda: len(workers.delivered) >= after, limit, f"{after} were not delivered"
                )
                pid = owners[-1][1]
                pids = [p.pid for p in workers.procs]
                if pid not in pids:
                    raise RunFailed(f"the lane's owner {pid} is none of the workers {pids}")
                victim = pids.index(pid)
                workers.procs[victim].kill()
                killed = time.monotonic()
                await workers.procs[victim].wait()
                taken.clear()
                async with asyncio.timeout(60):
                    while not any(at > killed and who != pid for at, who in owners):
                        await taken.wait()
                        taken.clear()
                owned = min(at for at, who in owners if at > killed and who != pid)
                survivors = [n for n in range(3) if n != victim]
                await workers.step("settled", survivors, limit)
                await workers.finish(survivors)
            finally:
                await workers.kill_all()
            stats = (await sim.stats())[0]
    finally:
        await listener.close()
        await cluster.drop_database(database_url)
    results = [json.loads(tmp.joinpath(f"{tag}.w{n}.json").read_text()) for n in survivors]
    sent = [t for r in results for t in r["sent"] if t > killed]
    totals = stats["totals"]
    return {
        "briefs": chosen.total,
        "scale": chosen.time_scale,
        "accepted": len(workers.accepted),
        "delivered": len(set(workers.delivered) | workers.posted_before),
        "delivered_once": workers.delivered_once(),
        "failed": len(workers.failed),
        "owned_after": owned - killed,
        "first_request_after": (min(sent) - killed) if sent else None,
        "tasks_created": totals["tasks_created"],
        "rate_limited": totals["rate_limited"],
        "peak_per_key": totals["max_concurrent_seen"],
    }


# --- the report -------------------------------------------------------------------------------


def _row(label: str) -> report.Row:
    return next(r for r in report.ROWS if r.label == label)


ROWS: tuple[report.Row, ...] = (
    _row("delivered / briefs (failed)"),
    report.Row(
        "delivered exactly once",
        lambda m: (
            f"{m['delivered_once']}/{m['expected']}"
            + (f" ({m['delivered_twice']} twice)" if m["delivered_twice"] else "")
        ),
    ),
    _row("requests per delivered image"),
    _row("429s received"),
    _row("delivery overhead p50 (s, felt)"),
    _row("delivery overhead p95 (s, felt)"),
    _row("  poll lag p50 / p95 (s)"),
    _row("  fetch p50 / p95 (real ms)"),
    _row("  fetch = poll+store+download+hand-over"),
    _row("busy slots while work queued: mean / all 10"),
    _row("  slot handover (s): poll lag + wait + HTTP"),
    report.Row(
        "tasks created at the provider / briefs",
        lambda m: f"{m['tasks_created']}/{m['expected']}",
    ),
    report.Row("peak running per key at the simulator", lambda m: str(m["peak_per_key"])),
    _row("makespan (s)"),
    report.Row(
        "peak RSS (MB), loop lag p99 (ms): worst process",
        lambda m: f"{_num(m['rss_peak_mb'], 1)}, {_num(m['lag_grid_p99_ms'], 1)}",
    ),
    _row("simulator: loop lag p99 (ms) / CPU"),
    _row("time scale / real seconds"),
)


@dataclass
class Results:
    scenarios: list[Scenario]
    runs: dict[str, dict[str, M]]  # scenario -> setup -> metrics
    takeovers: list[M]
    quick: bool
    seed: int
    elapsed: float
    command: str
    machine: dict[str, str] = field(default_factory=report.machine_info)

    def verdicts(self) -> list[tuple[str, str, bool]]:
        out = []
        for s in self.scenarios:
            for setup in SETUPS:
                m = self.runs[s.name].get(setup.name)
                if m is None:
                    continue
                ok = (
                    m["delivered_once"] == m["expected"] == m["tasks_created"]
                    and m["rate_limited"] == 0
                    and m["peak_per_key"] <= CONCURRENCY
                    and not m["timed_out"]
                )
                shown = (
                    f"{m['delivered_once']}/{m['expected']} delivered once, "
                    f"{m['tasks_created']} created, {m['rate_limited']} 429s, "
                    f"peak {m['peak_per_key']} per key"
                )
                out.append((f"{s.name}, {setup.label}", shown, ok))
        if self.takeovers:
            first = [t["first_request_after"] for t in self.takeovers]
            ok = None not in first and statistics.median(first) < TAKEOVER_TARGET
            shown = "median " + _num(
                statistics.median(first) if None not in first else None,
                1,
            )
            out.append(
                (
                    f"takeover: the new owner's first request under {TAKEOVER_TARGET:g} s",
                    f"{shown} s",
                    ok,
                )
            )
            ok = all(
                t["delivered_once"] == t["briefs"] - t["failed"]
                and t["tasks_created"] <= t["briefs"]
                and t["rate_limited"] == 0
                for t in self.takeovers
            )
            shown = "; ".join(
                f"{t['delivered_once']}/{t['briefs']} once, {t['failed']} failed "
                f"({t['tasks_created'] - t['delivered_once']} of them created at the provider), "
                f"{t['tasks_created']} created, {t['rate_limited']} 429s"
                for t in self.takeovers
            )
            out.append(
                (
                    "takeover: each brief delivered once or failed with a reason, nothing "
                    "created twice, no 429",
                    shown,
                    ok,
                )
            )
        return out

    @property
    def all_passed(self) -> bool:
        return all(ok for *_, ok in self.verdicts())

    def _rows(self, s: Scenario) -> list[list[str]]:
        by = self.runs[s.name]
        base = by.get("sqlite")
        rows = []
        for row in ROWS:
            if not row.only(s):
                continue
            cells = [row.label.strip()]
            cells += [row.cell(by[x.name]) if x.name in by else "" for x in SETUPS]
            for other in ("pg", "pg3"):
                m = by.get(other)
                ratio = ""
                if row.ratio_of and m and base:
                    ratio = _ratio(m[row.ratio_of], base[row.ratio_of])
                cells.append(ratio)
            rows.append(cells)
        return rows

    def _takeover_rows(self) -> list[list[str]]:
        rows = []
        for n, t in enumerate(self.takeovers, 1):
            rows.append(
                [
                    str(n),
                    _num(t["owned_after"], 2),
                    _num(t["first_request_after"], 2),
                    f"{t['delivered_once']}/{t['briefs']}",
                    str(t["failed"]),
                    str(t["tasks_created"] - t["delivered_once"]),
                    f"{t['tasks_created']}/{t['briefs']}",
                    str(t["rate_limited"]),
                    str(t["peak_per_key"]),
                ]
            )
        if len(self.takeovers) > 1:
            owned = [t["owned_after"] for t in self.takeovers]
            first = [t["first_request_after"] for t in self.takeovers if t["first_request_after"]]
            median = statistics.median(first) if first else None
            rows.append(["median", _num(statistics.median(owned)), _num(median)] + [""] * 6)
        return rows

    TAKEOVER_HEAD = (
        "run",
        "kill → new owner (s)",
        "kill → its first request (s)",
        "delivered once",
        "failed",
        "created, not delivered",
        "created / briefs",
        "429s",
        "peak running",
    )

    def _header(self) -> list[str]:
        m = self.machine
        t = scenario("takeover", quick=self.quick)
        return [
            f"machine: {m['cpu']} ({m['cores']}), {m['memory']}, {m['os']}",
            f"python {m['python']}; run {m['date']}; commit {m['commit']}; seed {self.seed}"
            + ("; QUICK mode (smoke run, not a measurement)" if self.quick else ""),
            "each configuration: a fresh simulator and a fresh database; 3 processes each "
            "send a third of the briefs (round-robin); limits "
            f"{RPM} requests/min and {CONCURRENCY} running per key",
            f"takeover: 3 processes on PostgreSQL, {t.total} briefs on one team key at ×"
            f"{t.time_scale:g}; the lane's owner is killed (SIGKILL) once "
            f"{KILL_AFTER[self.quick]} are delivered; times are real seconds (a lease lapses "
            "5 s after its last renewal)",
            f"command: {self.command}  ({self.elapsed:.0f} s)",
        ]

    def text(self) -> str:
        out = [*self._header(), ""]
        heads = ["", *(x.label for x in SETUPS), "PG1/SQLite", "PG3/SQLite"]
        widths = [46, 32, 32, 32, 11, 11]
        for s in self.scenarios:
            out.append(f"== {s.name}: {s.title} ==")
            out.append(
                "".join(
                    f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
                    for i, (h, w) in enumerate(zip(heads, widths, strict=True))
                )
            )
            for cells in self._rows(s):
                out.append(
                    "".join(
                        f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                    )
                )
            out.append("")
        if self.takeovers:
            out.append("== takeover after kill -9 of the lane's owner ==")
            out.append("  ".join(self.TAKEOVER_HEAD))
            out.extend(
                "  ".join(f"{c:>{len(h)}}" for c, h in zip(r, self.TAKEOVER_HEAD, strict=True))
                for r in self._takeover_rows()
            )
            out.append("")
        out.append("targets:")
        for text, shown, ok in self.verdicts():
            out.append(f"  {'PASS' if ok else 'FAIL'}  {text}: {shown}")
        return "\n".join(out)

    def markdown(self) -> str:
        out = ["# Stores benchmark: SQLite, PostgreSQL, three processes on PostgreSQL", ""]
        out.extend(f"- {line}" for line in self._header())
        out += ["", "## Targets", "", "| | what | measured |", "|---|---|---|"]
        for text, shown, ok in self.verdicts():
            out.append(f"| {'PASS' if ok else '**FAIL**'} | {text} | {shown} |")
        out.append("")
        for s in self.scenarios:
            out += [f"## {s.name}: {s.title}", ""]
            out.append(
                "| | " + " | ".join(x.label for x in SETUPS) + " | PG 1 / SQLite | PG 3 / SQLite |"
            )
            out.append("|---|" + "---:|" * (len(SETUPS) + 2))
            out.extend("| " + " | ".join(cells) + " |" for cells in self._rows(s))
            out.append("")
        if self.takeovers:
            out += ["## Takeover after kill -9 of the lane's owner", ""]
            out.append("| " + " | ".join(self.TAKEOVER_HEAD) + " |")
            out.append("|---|" + "---:|" * (len(self.TAKEOVER_HEAD) - 1))
            for r in self._takeover_rows():
                out.append("| " + " | ".join(r) + " |")
            out.append("")
        out += ["## How to read this", ""]
        out.extend(f"- {line}" for line in NOTES)
        out.append("")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "command": self.command,
            "quick": self.quick,
            "seed": self.seed,
            "scenarios": self.runs,
            "takeovers": self.takeovers,
            "targets": [{"target": t, "measured": s, "passed": ok} for t, s, ok in self.verdicts()],
        }


NOTES = (
    "The figures are benchmarks.run's (RESULTS.md explains each): provider seconds unless "
    "marked real; requests, 429s, tasks created and the peak running per key come from the "
    "simulator's counters.",
    "Three processes: their traces are merged (a brief is requested in the process that "
    "accepted it; its create and polls are timed in the lane's owner; 'delivered' is the "
    "first hand-over to a notifier, in whichever process claimed the event). 'Delivered "
    "exactly once' counts the Delivered events handed to a notifier across all processes. "
    "Peak RSS and loop lag are the worst process's.",
    "Takeover: 'new owner' is the NOTIFY tmbot_lanes of a surviving process taking the lane; "
    "'its first request' is the first create or poll for the key a survivor sends after the "
    "kill (the new owner is the only one that sends for it). A lease lapses 5 s after its "
    "last renewal and the others look every 1.5 s, so about 5–6.5 s is expected. A create in "
    "flight at the kill (status 'submitting') fails with a reason rather than being sent "
    "again ('failed'); 'created, not delivered' counts those the provider had created (paid "
    "for, never shown). The owner is killed right after an image is delivered, when it is "
    "sending the creates that refill the freed slots: the least lucky moment.",
)


# --- main -------------------------------------------------------------------------------------


def loads(names: Sequence[str], *, quick: bool) -> list[Scenario]:
    """The scenarios by name (quick: many-keys on fewer keys)."""
    chosen = [scenario(n, quick=quick) for n in names]
    if quick:
        chosen = [replace(s, keys=QUICK_KEYS) if s.keys > QUICK_KEYS else s for s in chosen]
    return chosen


async def run_all(
    chosen: list[Scenario],
    setups: Sequence[Setup],
    *,
    takeovers: int,
    quick: bool,
    seed: int,
    cluster: Cluster,
    keep: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, dict[str, M]], list[M]]:
    runs: dict[str, dict[str, M]] = {}
    found: list[M] = []
    with tempfile.TemporaryDirectory(prefix="tmbot-stores-") as tmpdir:
        tmp = Path(tmpdir)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the runs)
            tmp = keep

        def note(text: str, began: float | None = None) -> None:
            if progress:
                if began is None:
                    print(text, end="", flush=True, file=sys.stderr)
                else:
                    print(f"  {time.monotonic() - began:5.1f} s", file=sys.stderr)

        for s in chosen:
            for setup in setups:
                began = time.monotonic()
                note(f"… {s.name:<10} {setup.label:<24} ×{s.time_scale:g}")
                runs.setdefault(s.name, {})[setup.name] = await run_setup(
                    s, setup, cluster, quick=quick, seed=seed, tmp=tmp
                )
                note("", began)
        for rep in range(takeovers):
            began = time.monotonic()
            note(f"… takeover {rep + 1}/{takeovers}")
            found.append(await takeover(cluster, quick=quick, seed=seed, tmp=tmp, rep=rep))
            note("", began)
    return runs, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stores",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )  # fmt: skip
    parser.add_argument(
        "--takeovers", type=int, default=None, help="takeover repetitions (default 3; quick 1)"
    )
    parser.add_argument("--out", type=Path, help="also write the results as markdown here")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", type=Path, help="keep every raw trace in this folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seed", type=int, default=7, help="the simulator's seed")
    args = parser.parse_args(argv)
    chosen = loads(args.scenario or SCENARIOS, quick=args.quick)
    takeovers = args.takeovers if args.takeovers is not None else (1 if args.quick else 3)
    started = time.monotonic()
    try:
        cluster = Cluster.start()
    except ClusterUnavailable as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    try:
        runs, found = asyncio.run(
            run_all(
                chosen, SETUPS, takeovers=takeovers, quick=args.quick, seed=args.seed,
                cluster=cluster, keep=args.keep,
            )
        )  # fmt: skip
    except RunFailed as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    finally:
        cluster.stop()
    command = "python -m benchmarks.stores " + " ".join(sys.argv[1:] if argv is None else argv)
    results = Results(
        chosen, runs, found, args.quick, args.seed, time.monotonic() - started, command.strip()
    )
    return report.publish(results, out=args.out, json_out=args.json, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
