"""``python -m benchmarks.run``: the scheduler benchmark (``make bench``).

For every scenario, our engine and then the naive poller each run against a fresh simulator
process, in a process of their own; the table compares them and checks the issue's targets.

    python -m benchmarks.run                      # every scenario (~5 minutes)
    python -m benchmarks.run --quick              # a fast smoke run (~30 s)
    python -m benchmarks.run --scenario burst     # one scenario (repeatable)
    python -m benchmarks.run --out benchmarks/RESULTS.md
    python -m benchmarks.run --check              # exit 1 when a target is missed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks import report
from benchmarks.metrics import SimClock, compute
from benchmarks.scenarios import NAMES, Scenario, scenarios

REPO = Path(__file__).resolve().parent.parent
SIDES = ("ours", "baseline")


@dataclass
class SideRun:
    scenario: Scenario
    side: str
    metrics: dict[str, Any]


class RunFailed(RuntimeError):
    pass


async def _spawn(
    args: list[str],
    *,
    stderr: Path,
    stdin: bool = False,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    with stderr.open("wb") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *args,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Sim:
    """A simulator process (:mod:`benchmarks.simhost`): its URL and clock; once it has
    stopped, its own summary (loop lag, CPU, RSS)."""

    url: str
    clock: SimClock
    host: dict[str, Any]

    async def stats(self) -> tuple[dict[str, Any], str]:
        """The simulator's stats (parsed, and as sent)."""
        async with httpx.AsyncClient(timeout=60) as client:
            answer = await client.get(f"{self.url}/_sim/stats")
            answer.raise_for_status()
            return answer.json(), answer.text


@contextlib.asynccontextmanager
async def simulator(config: dict[str, object], tag: str, tmp: Path) -> AsyncIterator[Sim]:
    """A fresh simulator in a process of its own, stopped on leaving (``Sim.host`` is then
    filled in)."""
    sim_err, sim_out = tmp / f"{tag}-sim.err", tmp / f"{tag}-sim.json"
    proc = await _spawn(
        ["benchmarks.simhost", "--config", json.dumps(config), "--result", str(sim_out)],
        stderr=sim_err,
        stdin=True,
    )
    try:
        assert proc.stdout is not None
        try:
            first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            second = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        except TimeoutError:
            raise RunFailed(f"{tag}: the simulator did not start\n{_tail(sim_err)}") from None
        if "listening on " not in first or not second.startswith("clock "):
            raise RunFailed(f"{tag}: the simulator said {first!r}\n{_tail(sim_err)}")
        url = first.split("listening on ", 1)[1].split()[0]
        (tmp / f"{tag}-clock.json").write_text(second[len("clock ") :])
        sim = Sim(url, SimClock(**json.loads(second[len("clock ") :])), {})
        yield sim
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    with contextlib.suppress(OSError, ValueError):
        sim.host.update(json.loads(sim_out.read_text()))


async def run_side(
    scenario: Scenario, side: str, *, quick: bool, seed: int, tmp: Path, images: str = "stock"
) -> SideRun:
    tag = f"{scenario.name}-{side}"
    scale = scenario.scale_for(side)
    async with simulator(scenario.sim_config(side, seed, images=images), tag, tmp) as sim:
        worker_err, worker_out = tmp / f"{tag}-worker.err", tmp / f"{tag}-worker.json"
        args = ["benchmarks.worker", "--side", side, "--scenario", scenario.name]
        args += ["--url", sim.url, "--scale", repr(scale), "--result", str(worker_out)]
        if quick:
            args.append("--quick")
        worker = await _spawn(args, stderr=worker_err)
        try:
            code = await asyncio.wait_for(worker.wait(), scenario.timeout + 60)
        except TimeoutError:
            worker.kill()
            await worker.wait()
            raise RunFailed(f"{tag}: the worker hung\n{_tail(worker_err)}") from None
        if code != 0:
            raise RunFailed(f"{tag}: the worker exited {code}\n{_tail(worker_err)}")
        result = json.loads(worker_out.read_text())
        stats, raw = await sim.stats()
        (tmp / f"{tag}-stats.json").write_text(raw)
    return SideRun(scenario, side, compute(scenario, result, stats, sim.clock, sim.host))


async def run_all(
    chosen: list[Scenario],
    sides: tuple[str, ...] = SIDES,
    *,
    quick: bool,
    seed: int,
    progress: bool = True,
    keep: Path | None = None,
    images: str = "stock",
) -> list[SideRun]:
    runs: list[SideRun] = []
    with tempfile.TemporaryDirectory(prefix="tmbot-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the runs)
            tmp = keep
        for scenario in chosen:
            for side in sides:
                began = time.monotonic()
                if progress:
                    print(
                        f"… {scenario.name:<10} {side:<8} ×{scenario.scale_for(side):g}",
                        end="",
                        flush=True,
                        file=sys.stderr,
                    )
                run = await run_side(scenario, side, quick=quick, seed=seed, tmp=tmp, images=images)
                runs.append(run)
                if progress:
                    print(f"  {time.monotonic() - began:5.1f} s", file=sys.stderr)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small, fast smoke run")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--side", choices=(*SIDES, "both"), default="both", help="run only one side"
    )
    parser.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="NAME=N[/M]",
        help="override a scenario's time scale (ours N, naive M; default: the table's)",
    )
    parser.add_argument("--out", type=Path, help="also write the results as markdown here")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    parser.add_argument(
        "--keep", type=Path, help="keep every raw trace and simulator output in this folder"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--seed", type=int, default=7, help="the simulator's seed")
    parser.add_argument(
        "--images",
        choices=("stock", "drawn"),
        default="stock",
        help="stock: the simulator serves one picture per size, drawn once (a real provider "
        "renders on its own machines); drawn: it draws every brief on this machine's CPU",
    )
    args = parser.parse_args(argv)

    table = scenarios(quick=args.quick)
    for spec in args.scale:
        name, _, value = spec.partition("=")
        ours_scale, _, naive_scale = value.partition("/")
        if name not in table or not ours_scale:
            parser.error(f"--scale wants NAME=N[/M] with NAME one of {', '.join(NAMES)}")
        table[name] = replace(
            table[name],
            time_scale=float(ours_scale),
            baseline_scale=float(naive_scale or ours_scale),
        )
    chosen = [table[n] for n in (args.scenario or NAMES)]
    sides = SIDES if args.side == "both" else (args.side,)
    started = time.monotonic()
    try:
        runs = asyncio.run(
            run_all(
                chosen, sides, quick=args.quick, seed=args.seed, keep=args.keep, images=args.images
            )
        )
    except RunFailed as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    results = report.Results.build(
        runs,
        quick=args.quick,
        seed=args.seed,
        elapsed=elapsed,
        argv=sys.argv if argv is None else ["benchmarks.run", *argv],
    )
    return report.publish(results, out=args.out, json_out=args.json, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
