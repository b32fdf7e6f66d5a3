"""``python -m benchmarks.discord_bench``: the Discord adapter's benchmark line.

The real bot (SQLite in a temp dir, simulator over HTTP) with the real discord.py client
against the local fake Discord. Reports the interaction response latency (injected
INTERACTION_CREATE -> the bot's defer callback recorded by the fake) p50/p99 over 200
interactions, and the Discord REST calls per delivered image in a 50-brief ``/taste`` burst.
Not a timed test: figures for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.discord_helpers import CALLBACK, FOLLOWUP, MESSAGES, running
from tests.fakes.discord import FakeDiscord
from tmbot.simulator import SimConfig, Simulator

KEY = "tm_test_benchmarkAAAA0001"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(interactions: int, burst: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            Simulator(SimConfig(time_scale=60.0, estimate_seconds=5.0, seed=3)) as sim,
            FakeDiscord() as fake,
            running(Path(tmp), sim, fake) as bot,
        ):
            await bot.bind(fake.owner, KEY)
            latencies: list[float] = []
            for _ in range(interactions):
                event = fake.slash_command("taste-history")
                start = time.perf_counter()
                await fake.dispatch("INTERACTION_CREATE", event)
                await fake.wait_for(
                    lambda c, i=event["id"]: c.route == CALLBACK and c.params["interaction_id"] == i
                )
                latencies.append((time.perf_counter() - start) * 1000)
            # every answer (the followups after the defers) is in before the burst starts
            await fake.wait_for(
                lambda _c: len(fake.calls_to("POST", FOLLOWUP)) >= interactions, timeout=60
            )
            before = len(fake.calls)
            for n in range(burst):
                brief = {"brief": f"poster number {n} for a coffee shop"}
                await fake.dispatch("INTERACTION_CREATE", fake.slash_command("taste", brief))
            await bot.upload(burst)
            await bot.settled()
            calls = fake.calls[before:]
            uploads = [c for c in calls if c.route == MESSAGES and c.files and c.status == 200]
            by_route: dict[str, int] = {}
            for c in calls:
                by_route[f"{c.method} {c.route}"] = by_route.get(f"{c.method} {c.route}", 0) + 1
    per_image = len(calls) / len(uploads)
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(by_route.items()))
    return (
        f"discord: interaction response p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {_pct(latencies, 0.99):.1f} ms over {interactions} interactions; "
        f"{per_image:.2f} REST calls per delivered image in a {burst}-brief burst "
        f"({len(uploads)} images; {detail})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.discord_bench")
    parser.add_argument("--interactions", type=int, default=200)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args(argv)
    print(asyncio.run(measure(args.interactions, args.burst)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
