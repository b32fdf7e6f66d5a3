"""The stores benchmark (``python -m benchmarks.stores``) in its quick mode: one process on
SQLite, one on PostgreSQL and three on PostgreSQL, then a takeover after kill -9; its figures
are present and hang together (no timing asserts)."""

from __future__ import annotations

import pytest

from benchmarks.scenarios import CONCURRENCY, MIN_REQUESTS_PER_IMAGE
from benchmarks.stores import SCENARIOS, SETUPS, Results, loads, run_all
from tests.pg import Cluster

pytestmark = pytest.mark.slow


async def test_quick_stores_run_gives_every_figure_for_every_configuration(
    pg_cluster: Cluster,
) -> None:
    chosen = loads(SCENARIOS, quick=True)
    runs, takeovers = await run_all(
        chosen, SETUPS, takeovers=1, quick=True, seed=11, cluster=pg_cluster, progress=False
    )
    assert set(runs) == set(SCENARIOS)
    for name, by_setup in runs.items():
        assert list(by_setup) == [s.name for s in SETUPS], name
        for setup, m in by_setup.items():
            where = f"{name}/{setup}"
            assert not m["timed_out"], where
            assert m["delivered"] == m["expected"] == m["briefs"] == m["accepted"], where
            assert m["failed"] == 0, where
            assert m["delivered_once"] == m["expected"] and m["delivered_twice"] == 0, where
            assert m["tasks_created"] == m["expected"], where  # nothing created twice
            assert m["rate_limited"] == 0, where
            assert 1 <= m["peak_per_key"] <= CONCURRENCY, where
            assert m["requests_per_image"] >= MIN_REQUESTS_PER_IMAGE, where
            assert m["requests"] == m["creates"] + m["polls"], where
            # the merged traces map every completion between the last "running" and "done"
            assert m["missing_completion"] == 0 and m["clock_violations"] == 0, where
            assert m["overhead_p95"] >= m["overhead_p50"] >= 0, where
            assert m["fetch_p50_ms"] is not None and m["fetch_p50_ms"] > 0, where
    for burst in runs["burst"].values():
        # more than one at once on the shared key (at x60 the first end before all start)
        assert 1 < burst["peak_per_key"] <= CONCURRENCY
        assert 0 < burst["busy_occupancy"] <= 1

    (takeover,) = takeovers
    assert 0 < takeover["owned_after"] <= takeover["first_request_after"]
    assert takeover["accepted"] == takeover["briefs"]
    assert takeover["delivered_once"] + takeover["failed"] == takeover["briefs"]
    assert takeover["tasks_created"] <= takeover["briefs"]  # nothing re-submitted
    assert takeover["rate_limited"] == 0
    assert takeover["peak_per_key"] <= CONCURRENCY

    results = Results(chosen, runs, takeovers, True, 11, 1.0, "python -m benchmarks.stores")
    text, markdown = results.text(), results.markdown()
    assert "QUICK mode" in markdown
    assert "| requests per delivered image |" in markdown
    assert "| delivery overhead p50 (s, felt) |" in markdown
    assert "| delivered exactly once |" in markdown
    assert "kill → its first request (s)" in markdown
    for s in SETUPS:
        assert s.label in text
    assert text.count("PASS") + text.count("FAIL") == len(results.verdicts())
