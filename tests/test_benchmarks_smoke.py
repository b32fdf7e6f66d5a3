"""The benchmark harness, in its quick mode: its figures hang together (no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks import report
from benchmarks.run import run_all
from benchmarks.scenarios import CONCURRENCY, MIN_REQUESTS_PER_IMAGE, scenarios

pytestmark = pytest.mark.slow


async def test_quick_light_and_burst_give_consistent_figures() -> None:
    table = scenarios(quick=True)
    chosen = [table["light"], table["burst"]]
    runs = await run_all(chosen, quick=True, seed=11, progress=False)
    assert [(r.scenario.name, r.side) for r in runs] == [
        ("light", "ours"),
        ("light", "baseline"),
        ("burst", "ours"),
        ("burst", "baseline"),
    ]
    by = {(r.scenario.name, r.side): r.metrics for r in runs}
    for (name, side), m in by.items():
        where = f"{name}/{side}"
        assert not m["timed_out"], where
        assert m["delivered"] == m["expected"] == m["briefs"], where  # every brief delivered
        assert m["failed"] == 0, where
        assert m["requests"] == m["creates"] + m["polls"], where
        assert m["creates"] >= m["delivered"], where
        assert m["tasks_created"] == m["delivered"], where
        assert m["requests_per_image"] >= MIN_REQUESTS_PER_IMAGE, where
        # the shared clock maps every completion between the last "running" and the "done"
        assert m["missing_completion"] == 0, where
        assert m["clock_violations"] == 0, where
        assert m["poll_lag_p50"] is not None and m["poll_lag_p50"] >= 0, where
        assert m["fetch_p50_ms"] is not None and m["fetch_p50_ms"] > 0, where
        assert m["overhead_p95"] >= m["overhead_p50"] >= 0, where
        assert 1 <= m["peak_at_provider"] <= CONCURRENCY, where
        assert 0 < m["throughput_ratio_median"] <= 1.05, where
        assert m["rss_peak_mb"] > 0 and m["lag_p99_ms"] is not None, where
    for name in ("light", "burst"):
        ours, naive = by[(name, "ours")], by[(name, "baseline")]
        assert naive["requests_per_image"] > ours["requests_per_image"], name
    assert by[("light", "ours")]["peak_at_provider"] == 1  # one image at a time
    assert by[("burst", "ours")]["peak_at_provider"] == CONCURRENCY  # the key saturates
    for side in ("ours", "baseline"):
        occupancy = by[("burst", side)]["busy_occupancy"]
        assert occupancy is not None and 0 < occupancy <= 1
    assert by[("light", "ours")]["busy_occupancy"] is None  # never saturated

    results = report.Results.build(
        runs, quick=True, seed=11, elapsed=1.0, argv=["benchmarks.run", "--quick"]
    )
    text, markdown = results.text(), results.markdown()
    names = {t.text for t, _, _ in results.verdicts}
    assert "zero 429s in the 50-brief burst" in names
    assert "at most 3 requests per delivered image at light load" in names
    assert text.count("PASS") + text.count("FAIL") >= len(results.verdicts)
    assert "| requests per delivered image |" in markdown
    assert "QUICK mode" in markdown
