"""One side of one scenario in a process of its own (so its RSS and loop lag are its own).

``python -m benchmarks.worker --side ours|baseline --scenario NAME [--quick] --url URL
--scale N --result PATH`` writes the run's traces and probes as JSON to PATH.

``--database-url URL --keys PATH --share I/N`` (ours only; :mod:`benchmarks.stores`) makes it
worker I of N on one database: the keys come from PATH (a JSON list), the vault's secret from
``TMBOT_SECRET_KEY``, and it steps with the others over stdin/stdout — it prints ``ready``,
``sent N`` and ``settled`` and waits for a line on stdin after each; ``accepted ID``,
``delivered ID`` and ``failed ID`` are printed as they happen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import baseline, ours
from benchmarks.scenarios import Scenario, scenario
from tmbot import heap


class StdioControl:
    """:class:`benchmarks.ours.Control` over this process's stdin and stdout."""

    def say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def step(self, said: str) -> None:
        self.say(said)
        answer = await asyncio.to_thread(sys.stdin.readline)
        if not answer:  # the orchestrator is gone
            raise SystemExit(f"worker: stdin closed after {said!r}")


async def run_side(
    side: str, scenario: Scenario, url: str, scale: float, shared: ours.Shared | None = None
) -> dict[str, Any]:
    if side == "ours":
        heap.settle()  # as ``tmbot run`` does for the bot's process
        with tempfile.TemporaryDirectory(prefix="tmbot-bench-") as tmp:
            return await ours.run(scenario, url, scale, Path(tmp), shared)
    return await baseline.run(scenario, url, scale)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--side", choices=("ours", "baseline"), required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--database-url", help="ours, shared: the database (all workers')")
    parser.add_argument("--keys", type=Path, help="ours, shared: the scenario's keys (JSON)")
    parser.add_argument("--share", metavar="I/N", help="ours, shared: worker I of N")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    chosen = scenario(args.scenario, quick=args.quick)
    shared = None
    if args.share:
        index, _, count = args.share.partition("/")
        keys = json.loads(args.keys.read_text())
        chosen = replace(chosen, keys=len(keys))  # as many keys as the orchestrator made
        shared = ours.Shared(
            database_url=args.database_url,
            secret=os.environ["TMBOT_SECRET_KEY"].encode(),
            keys=keys,
            index=int(index),
            count=int(count),
            control=StdioControl(),
        )
    result = asyncio.run(run_side(args.side, chosen, args.url, args.scale, shared))
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
