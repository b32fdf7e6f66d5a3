"""The Discord benchmark line, small: its figures hang together (no timing asserts)."""

from __future__ import annotations

import re

from benchmarks.discord_bench import measure


async def test_the_discord_benchmark_line_reports_latency_and_calls_per_image() -> None:
    line = await measure(interactions=5, burst=3)
    match = re.search(r"p50 ([\d.]+) ms, p99 ([\d.]+) ms .* ([\d.]+) REST calls", line)
    assert match, line
    p50, p99, per_image = (float(g) for g in match.groups())
    assert 0 < p50 <= p99
    assert per_image >= 4  # defer, card, thread, file at the least
    assert "(3 images;" in line
