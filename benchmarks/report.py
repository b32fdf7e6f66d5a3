"""The tables (text and markdown) and the issue's targets."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil  # type: ignore[import-untyped]

from benchmarks.scenarios import CONCURRENCY, DURATION_SPREAD, ESTIMATE_SECONDS, RPM, Scenario

if TYPE_CHECKING:
    from benchmarks.run import SideRun

REPO = Path(__file__).resolve().parent.parent
M = dict[str, Any]


# --- formatting ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _pair(a: str, b: str) -> str:
    return f"{a} / {b}"


def _ratio(ours: float | None, base: float | None) -> str:
    if ours is None or base is None:
        return ""
    if base == 0:
        return "–" if ours == 0 else "∞"
    return f"{ours / base:.2f}"


def _handover(idle: dict[str, float] | None) -> str:
    if not idle:
        return "–"
    total = _num(idle["total"])
    if idle["poll lag"] == idle["waiting"] == idle["http"] == 0:
        return total
    parts = " + ".join(_num(idle[k]) for k in ("poll lag", "waiting", "http"))
    return f"{total} = {parts}"


@dataclass(frozen=True)
class Row:
    label: str
    cell: Callable[[M], str]
    ratio_of: str | None = None  # metric whose ours/baseline ratio is shown
    only: Callable[[Scenario], bool] = lambda s: True


ROWS: tuple[Row, ...] = (
    Row(
        "delivered / briefs (failed)", lambda m: f"{m['delivered']}/{m['expected']} ({m['failed']})"
    ),
    Row(
        "API requests: creates + polls",
        lambda m: f"{m['requests']} = {m['creates']} + {m['polls']}",
    ),
    Row(
        "requests per delivered image",
        lambda m: _num(m["requests_per_image"]),
        "requests_per_image",
    ),
    Row("tasks created at the provider", lambda m: str(m["tasks_created"])),
    Row("429s received", lambda m: str(m["rate_limited"]), "rate_limited"),
    Row("delivery overhead p50 (s, felt)", lambda m: _num(m["overhead_p50"]), "overhead_p50"),
    Row("delivery overhead p95 (s, felt)", lambda m: _num(m["overhead_p95"]), "overhead_p95"),
    Row(
        "  poll lag p50 / p95 (s)",
        lambda m: _pair(_num(m["poll_lag_p50"]), _num(m["poll_lag_p95"])),
    ),
    Row(
        "  fetch p50 / p95 (real ms)",
        lambda m: _pair(_num(m["fetch_p50_ms"], 0), _num(m["fetch_p95_ms"], 0)),
    ),
    Row(
        "  fetch = poll+store+download+hand-over",
        lambda m: "+".join(_num(v, 0) for v in m["fetch_parts_p50_ms"].values()),
    ),
    Row(
        "  raw at the run's scale p50 / p95",
        lambda m: _pair(_num(m["raw_overhead_p50"]), _num(m["raw_overhead_p95"])),
    ),
    Row(
        "throughput per key (img/min), bound",
        lambda m: f"{_num(m['throughput_median'])} of {_num(m['throughput_bound'], 1)}",
        "throughput_median",
    ),
    Row(
        "  achieved / bound: median (worst key)",
        lambda m: f"{_num(m['throughput_ratio_median'])} ({_num(m['throughput_ratio_min'])})",
    ),
    Row(
        "busy slots while work queued: mean / all 10",
        lambda m: _pair(_pct(m["busy_occupancy"]), _pct(m["busy_all_slots"])),
        only=lambda s: s.saturating,
    ),
    Row(
        "  slot handover (s): poll lag + wait + HTTP",
        lambda m: _handover(m["handover_idle"]),
        only=lambda s: s.saturating,
    ),
    Row("peak tasks running at the provider", lambda m: str(m["peak_at_provider"])),
    Row("makespan (s)", lambda m: _num(m["makespan"], 1), "makespan"),
    Row(
        "peak RSS / growth (MB)",
        lambda m: _pair(_num(m["rss_peak_mb"], 1), _num(m["rss_delta_mb"], 1)),
    ),
    Row(
        "loop lag p99: at any moment / per wake (ms)",
        lambda m: _pair(_num(m["lag_grid_p99_ms"], 1), _num(m["lag_p99_ms"], 1)),
    ),
    Row(
        "  longest stall (ms), time lagging > 50 ms",
        lambda m: f"{_num(m['lag_max_ms'], 0)}, {_pct(m['lag_over_50ms'])}",
    ),
    Row(
        "CPU per delivered image (ms, all threads)",
        lambda m: _num(m["cpu_ms_per_image"], 1),
        "cpu_ms_per_image",
    ),
    Row(
        "simulator: loop lag p99 (ms) / CPU",
        lambda m: _pair(_num(m["sim_lag_p99_ms"], 1), f"{_num(m['sim_cpu_percent'], 0)}%"),
    ),
    Row("time scale / real seconds", lambda m: f"×{m['scale']:g} / {m['wall_seconds']:.1f}"),
)


# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    shown: Callable[[M], str]
    passed: Callable[[M], bool]
    miss: Callable[[M], str] = lambda m: ""


TARGETS: tuple[Target, ...] = (
    Target(
        "light",
        "at most 3 requests per delivered image at light load",
        lambda m: _num(m["requests_per_image"]),
        lambda m: m["requests_per_image"] is not None and m["requests_per_image"] <= 3,
    ),
    Target(
        "burst",
        "zero 429s in the 50-brief burst",
        lambda m: str(m["rate_limited"]),
        lambda m: m["rate_limited"] == 0 and m["delivered"] == m["expected"],
    ),
    Target(
        "light",
        "delivery overhead p50 at most 1 s at light load",
        lambda m: f"{_num(m['overhead_p50'])} s",
        lambda m: m["overhead_p50"] is not None and m["overhead_p50"] <= 1.0,
    ),
    Target(
        "burst",
        "a saturated key keeps at least 95% of its concurrency busy",
        lambda m: _pct(m["busy_occupancy"]),
        lambda m: m["busy_occupancy"] is not None and m["busy_occupancy"] >= 0.95,
    ),
    Target(
        "in-flight",
        "1,000 generations in flight in at most 200 MB RSS",
        lambda m: f"{_num(m['rss_peak_mb'], 1)} MB at {m['peak_at_provider']} running",
        lambda m: m["rss_peak_mb"] <= 200 and m["delivered"] == m["expected"],
    ),
    Target(
        "in-flight",
        "… with event-loop lag p99 at most 50 ms",
        lambda m: (
            f"{_num(m['lag_grid_p99_ms'], 1)} ms at any moment "
            f"({_num(m['lag_p99_ms'], 1)} ms per wake, longest stall "
            f"{_num(m['lag_max_ms'], 0)} ms)"
        ),
        lambda m: all(v is not None and v <= 50 for v in (m["lag_grid_p99_ms"], m["lag_p99_ms"])),
    ),
)


def _all_delivered(m: M) -> bool:
    return bool(m["delivered"] == m["expected"])


# --- the results ---------------------------------------------------------------------------


@dataclass
class Results:
    scenarios: list[Scenario]
    pairs: dict[str, dict[str, M]]  # scenario -> side -> metrics
    quick: bool
    seed: int
    elapsed: float
    command: str
    machine: dict[str, str] = field(default_factory=dict)
    verdicts: list[tuple[Target, M, bool]] = field(default_factory=list)
    extra_verdicts: list[tuple[str, str, bool]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        runs: Sequence[SideRun],
        *,
        quick: bool,
        seed: int,
        elapsed: float,
        argv: Sequence[str],
    ) -> Results:
        chosen: list[Scenario] = []
        pairs: dict[str, dict[str, M]] = {}
        for run in runs:
            if run.scenario.name not in pairs:
                chosen.append(run.scenario)
            pairs.setdefault(run.scenario.name, {})[run.side] = run.metrics
        command = "python -m " + " ".join(
            ["benchmarks.run", *argv[1:]] if argv and argv[0].endswith("run.py") else list(argv)
        )
        results = cls(chosen, pairs, quick, seed, elapsed, command, machine=machine_info())
        for target in TARGETS:
            ours = pairs.get(target.scenario, {}).get("ours")
            if ours is not None:
                results.verdicts.append((target, ours, target.passed(ours)))
        for scenario in chosen:
            ours = pairs[scenario.name].get("ours")
            if ours is None:
                continue
            if scenario.sim:
                # faults: every brief ends (delivered, or failed with a reason) and none hits 429
                ok = ours["delivered"] + ours["failed"] == ours["expected"]
                ok = ok and ours["rate_limited"] == 0 and not ours["timed_out"]
                shown = (
                    f"{ours['delivered']} delivered, {ours['failed']} failed, "
                    f"{ours['rate_limited']} 429s"
                )
                results.extra_verdicts.append(
                    (f"{scenario.name}: every brief ends, zero 429s", shown, ok)
                )
            else:
                results.extra_verdicts.append(
                    (
                        f"{scenario.name}: every brief delivered",
                        f"{ours['delivered']}/{ours['expected']}",
                        _all_delivered(ours),
                    )
                )
        return results

    @property
    def all_passed(self) -> bool:
        return all(ok for *_, ok in self.verdicts) and all(ok for *_, ok in self.extra_verdicts)

    # --- rendering -------------------------------------------------------------------------

    def _scenario_rows(self, scenario: Scenario) -> list[tuple[str, str, str, str]]:
        sides = self.pairs[scenario.name]
        ours, base = sides.get("ours"), sides.get("baseline")
        rows = []
        for row in ROWS:
            if not row.only(scenario):
                continue
            a = row.cell(ours) if ours else ""
            b = row.cell(base) if base else ""
            r = ""
            if row.ratio_of and ours and base:
                r = _ratio(ours[row.ratio_of], base[row.ratio_of])
            rows.append((row.label, a, b, r))
        return rows

    def _failures(self, scenario: Scenario) -> list[str]:
        lines = []
        for side, m in self.pairs[scenario.name].items():
            for reason, count in m["failure_reasons"].items():
                who = "ours" if side == "ours" else "naive"
                lines.append(f"failed ({who}) x{count}: {reason}")
        return lines

    def _scales(self) -> str:
        parts = []
        for s in self.scenarios:
            sides = self.pairs[s.name]
            scales = sorted({m["scale"] for m in sides.values()}, reverse=True)
            parts.append(f"{s.name} ×" + "/×".join(f"{x:g}" for x in scales))
        return ", ".join(parts)

    def _durations(self) -> str:
        lows = [
            m["duration_min"] for p in self.pairs.values() for m in p.values() if m["duration_min"]
        ]
        highs = [
            m["duration_max"] for p in self.pairs.values() for m in p.values() if m["duration_max"]
        ]
        seen = f"; observed {min(lows):.1f}–{max(highs):.1f} s" if lows and highs else ""
        return (
            f"{ESTIMATE_SECONDS:g} s ±{100 * DURATION_SPREAD:g}% uniform (nano-banana-pro 2k){seen}"
        )

    def _header_lines(self) -> list[str]:
        m = self.machine
        return [
            f"machine: {m['cpu']} ({m['cores']}), {m['memory']}, {m['os']}",
            f"python {m['python']}; run {m['date']}; commit {m['commit']}; seed {self.seed}"
            + ("; QUICK mode (smoke run, not a measurement)" if self.quick else ""),
            f"time scales (ours/naive): {self._scales()}",
            f"simulator task durations: {self._durations()}; limits {RPM} requests/min and "
            f"{CONCURRENCY} running per key",
            f"command: {self.command}  ({self.elapsed:.0f} s)",
            self._clock_check(),
        ]

    def _clock_check(self) -> str:
        runs = [m for p in self.pairs.values() for m in p.values()]
        bad = sum(m["clock_violations"] for m in runs)
        missing = sum(m["missing_completion"] for m in runs)
        polls = sum(m["delivered"] for m in runs)
        verdict = "OK" if bad == missing == 0 else "MISMATCH: figures below are suspect"
        return (
            f"clock check ({verdict}): of {polls} delivered tasks, {bad} completions fell "
            f"outside (last 'running' poll sent, 'done' poll answered) and {missing} had none"
        )

    def text(self) -> str:
        out = [*self._header_lines(), ""]
        width = max(len(r.label) for r in ROWS) + 2
        for scenario in self.scenarios:
            out.append(f"== {scenario.name}: {scenario.title} ==")
            out.append(f"{'':<{width}}{'ours':>28}{'naive':>28}{'ours/naive':>12}")
            for label, a, b, r in self._scenario_rows(scenario):
                out.append(f"{label:<{width}}{a:>28}{b:>28}{r:>12}")
            out.extend(f"  {line}" for line in self._failures(scenario))
            out.append("")
        out.append("targets (ours):")
        for target, metrics, ok in self.verdicts:
            out.append(
                f"  {'PASS' if ok else 'FAIL'}  {target.scenario:<10} {target.text}: "
                f"{target.shown(metrics)}"
            )
        for text, shown, ok in self.extra_verdicts:
            out.append(f"  {'PASS' if ok else 'FAIL'}  {text}: {shown}")
        out.append("")
        out.extend(NOTES)
        return "\n".join(out)

    def markdown(self) -> str:
        out = ["# Scheduler benchmark: our engine against the naive poller", ""]
        out.extend(f"- {line}" for line in self._header_lines())
        out.append("")
        out.append("## Targets (our engine)")
        out.append("")
        out.append("| | scenario | target | measured |")
        out.append("|---|---|---|---|")
        for target, metrics, ok in self.verdicts:
            out.append(
                f"| {'PASS' if ok else '**FAIL**'} | {target.scenario} | {target.text} | "
                f"{target.shown(metrics)} |"
            )
        for text, shown, ok in self.extra_verdicts:
            name, _, what = text.partition(": ")
            out.append(f"| {'PASS' if ok else '**FAIL**'} | {name} | {what} | {shown} |")
        out.append("")
        for scenario in self.scenarios:
            out.append(f"## {scenario.name}: {scenario.title}")
            out.append("")
            out.append("| | ours | naive | ours/naive |")
            out.append("|---|---:|---:|---:|")
            for label, a, b, r in self._scenario_rows(scenario):
                out.append(f"| {label.strip()} | {a} | {b} | {r} |")
            out.append("")
            failures = self._failures(scenario)
            if failures:
                out.extend(f"- {line}" for line in failures)
                out.append("")
        out.append("## How to read this")
        out.append("")
        out.extend(f"- {line.removeprefix('- ')}" for line in NOTES[1:])
        out.append("")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "command": self.command,
            "quick": self.quick,
            "seed": self.seed,
            "scenarios": self.pairs,
            "targets": [
                {"scenario": t.scenario, "target": t.text, "measured": t.shown(m), "passed": ok}
                for t, m, ok in self.verdicts
            ]
            + [
                {"target": text, "measured": shown, "passed": ok}
                for text, shown, ok in self.extra_verdicts
            ],
        }


NOTES = (
    "notes:",
    "- All times are provider seconds (what a user would feel at time scale 1) unless marked "
    "real. Requests and 429s come from the simulator's per-key counters (a 429 counts as a "
    "request).",
    "- Delivery overhead = simulator completion -> image handed to the notifier. 'Felt' = poll "
    "lag (completion -> the poll that saw it was sent; scheduler waiting, provider time) + "
    "fetch (that poll -> delivered: HTTP, SQLite, download, decode; real time, which a faster "
    "clock does not shrink). 'Raw' multiplies the real part by the run's time scale too.",
    "- Throughput bound per key = min(parallel / mean duration, rpm / 2 requests) images per "
    "provider-minute, parallel = the scenario's briefs a key can run at once (1 for light, 5 "
    "for many-keys, 10 otherwise); a finite batch cannot reach it (its makespan is at least "
    "its slowest task, up to +10%).",
    "- Busy slots: time-weighted share of the key's 10 slots holding a task at the provider, "
    "from the first brief to the last create (tasks start at their create, end at the "
    "simulator's completion); 'all 10' is the share of that time with every slot busy. "
    "Slot handover: mean idle time from a task ending at the provider to the next create "
    "on its slot; for ours split into poll lag (until the poll that saw it end), wait (that "
    "answer -> the next create sent: the key's request budget, the store) and HTTP (both "
    "round trips, real time x scale). The naive poller's next create does not wait for its "
    "own poll: it retries its 429s.",
    "- RSS and loop lag are the bot process's own: the simulator runs in another process "
    "(its loop lag and CPU are shown so a saturated simulator is visible).",
)


# --- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        head = subprocess.run(  # noqa: S603 (fixed arguments)
            [git, "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, str]:
    logical = os.cpu_count() or 0
    physical = psutil.cpu_count(logical=False) or logical
    return {
        "cpu": _cpu_model(),
        "cores": f"{logical} logical / {physical} physical cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
    }


class Publishable(Protocol):
    @property
    def all_passed(self) -> bool: ...

    def text(self) -> str: ...

    def markdown(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


def publish(results: Publishable, *, out: Path | None, json_out: Path | None, check: bool) -> int:
    """Print the results, write them where asked; the exit code (1: ``check`` and a target
    missed)."""
    print(results.text())
    if out is not None:
        out.write_text(results.markdown())
        print(f"wrote {out}", file=sys.stderr)
    if json_out is not None:
        json_out.write_text(json.dumps(results.to_json(), indent=2))
    return 1 if check and not results.all_passed else 0
