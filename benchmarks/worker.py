"""One side of one scenario in a process of its own (so its RSS and loop lag are its own).

``python -m benchmarks.worker --side ours|baseline --scenario NAME [--quick] --url URL
--scale N --result PATH`` writes the run's traces and probes as JSON to PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import baseline, ours
from benchmarks.scenarios import Scenario, scenarios
from tmbot import heap


async def run_side(side: str, scenario: Scenario, url: str, scale: float) -> dict[str, Any]:
    if side == "ours":
        heap.settle()  # as ``tmbot run`` does for the bot's process
        with tempfile.TemporaryDirectory(prefix="tmbot-bench-") as tmp:
            return await ours.run(scenario, url, scale, Path(tmp))
    return await baseline.run(scenario, url, scale)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--side", choices=("ours", "baseline"), required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--url", required=True)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    scenario = scenarios(quick=args.quick)[args.scenario]
    result = asyncio.run(run_side(args.side, scenario, args.url, args.scale))
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
