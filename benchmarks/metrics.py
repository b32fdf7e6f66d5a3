"""Numbers from one run: a side's traces, the simulator's stats and the shared clock.

Time bases: traces are real ``time.monotonic()`` seconds; the simulator's completions are
provider-time epochs on its own clock. :class:`SimClock` maps one onto the other (see
:mod:`benchmarks.simhost`), so every figure below is exact up to float rounding.

Delivery overhead, what a user would feel at time scale 1 (provider seconds):
``poll lag`` (completion -> the poll that saw it was *sent*: waiting the scheduler chose,
which runs in provider time) + ``fetch`` (that poll's send -> the image handed over: HTTP,
SQLite, download, decode; real work that does not speed up with the time scale). The raw
figure measured at the run's time scale, ``(delivered - completed) x scale``, inflates the
real work by the scale factor; it is reported too.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from benchmarks.probes import percentile
from benchmarks.scenarios import (
    CONCURRENCY,
    ESTIMATE_SECONDS,
    MIN_REQUESTS_PER_IMAGE,
    RPM,
    Scenario,
)

#: a poll seen running after the completion, or done before it, by more than this (real s)
#: means the clock mapping is wrong
CLOCK_TOLERANCE = 0.002

MB = 1_000_000


@dataclass(frozen=True)
class SimClock:
    wall: float  # simulator provider-time epoch …
    mono: float  # … at this time.monotonic()
    scale: float

    def to_real(self, sim_wall: float) -> float:
        return self.mono + (sim_wall - self.wall) / self.scale


def _sweep(intervals: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(time, running count from then on) at every change."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    out: list[tuple[float, int]] = []
    running = 0
    for t, step in edges:
        running += step
        out.append((t, running))
    return out


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    return max((n for _, n in _sweep(intervals)), default=0)


def busy_slots(
    intervals: list[tuple[float, float]], start: float, end: float, capacity: int
) -> tuple[float, float]:
    """Over [start, end]: (mean share of ``capacity`` in use, share of time all in use)."""
    if end <= start:
        return 0.0, 0.0
    used = full = 0.0
    running = 0
    prev = start
    for t, n in _sweep(intervals):
        lo, hi = max(prev, start), min(t, end)
        if hi > lo:
            used += min(running, capacity) * (hi - lo)
            if running >= capacity:
                full += hi - lo
        prev, running = t, n
    if end > prev:
        lo = max(prev, start)
        used += min(running, capacity) * (end - lo)
        if running >= capacity:
            full += end - lo
    span = end - start
    return used / (capacity * span), full / span


def _stat(values: list[float], q: float) -> float | None:
    return percentile(values, q)


def compute(
    scenario: Scenario,
    result: dict[str, Any],
    stats: dict[str, Any],
    clock: SimClock,
    sim_host: dict[str, Any],
) -> dict[str, Any]:
    scale = float(result["scale"])
    traces: list[dict[str, Any]] = result["traces"]
    kids: dict[str, int] = result["keys"]
    completions: dict[str, float] = stats["completions"]
    per_key = stats["keys"]

    def total(field: str) -> int:
        return sum(int(per_key.get(kid, {}).get(field, 0)) for kid in kids)

    delivered = [t for t in traces if t["delivered"] is not None]
    failed = [t for t in traces if t["failed"] is not None]
    n_delivered = len(delivered)
    requests = total("requests")

    # --- delivery overhead -------------------------------------------------------------
    felt: list[float] = []
    poll_lag: list[float] = []
    fetch: list[float] = []
    raw: list[float] = []
    parts: dict[str, list[float]] = {"poll": [], "store": [], "download": [], "hand-over": []}
    missing_completion = 0
    clock_violations = 0
    for t in traces:
        c = completions.get(t["task_id"] or "")
        if c is None:
            if t["delivered"] is not None:
                missing_completion += 1
            continue
        done = clock.to_real(c)
        if t["done_recv"] is not None and t["done_recv"] < done - CLOCK_TOLERANCE:
            clock_violations += 1
        if t["last_running_sent"] is not None and t["last_running_sent"] > done + CLOCK_TOLERANCE:
            clock_violations += 1
        if t["delivered"] is None or t["done_sent"] is None:
            continue
        lag = max(0.0, (t["done_sent"] - done) * scale)
        real_work = t["delivered"] - t["done_sent"]
        poll_lag.append(lag)
        fetch.append(real_work)
        felt.append(lag + real_work)
        raw.append((t["delivered"] - done) * scale)
        if t["download_sent"] is not None and t["done_recv"] is not None:
            parts["poll"].append(t["done_recv"] - t["done_sent"])
            parts["store"].append(t["download_sent"] - t["done_recv"])
            parts["download"].append(t["download_done"] - t["download_sent"])
            parts["hand-over"].append(t["delivered"] - t["download_done"])

    # --- throughput per key against the bound --------------------------------------------
    bound = min(
        scenario.parallel_per_key / (ESTIMATE_SECONDS / 60), RPM / MIN_REQUESTS_PER_IMAGE
    )  # images per provider-minute
    achieved: list[float] = []
    by_key: dict[str, list[dict[str, Any]]] = {}
    for t in traces:
        by_key.setdefault(t["kid"], []).append(t)
    for rows in by_key.values():
        done_rows = [r for r in rows if r["delivered"] is not None]
        if not done_rows:
            achieved.append(0.0)
            continue
        first = min(r["requested"] for r in rows if r["requested"] is not None)
        last = max(r["delivered"] for r in done_rows)
        minutes = (last - first) * scale / 60
        achieved.append(len(done_rows) / minutes if minutes > 0 else 0.0)

    # --- slots at the provider ---------------------------------------------------------
    def at_provider(rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
        spans = []
        for r in rows:
            if r["submit_sent"] is None:
                continue
            begin = (r["submit_sent"] + r["submit_done"]) / 2
            c = completions.get(r["task_id"] or "")
            end = clock.to_real(c) if c is not None else r["done_recv"]
            if end is not None and end > begin:
                spans.append((begin, end))
        return spans

    all_spans = at_provider(traces)
    durations = []
    for r in traces:
        c = completions.get(r["task_id"] or "")
        if c is not None and r["submit_done"] is not None:
            durations.append((clock.to_real(c) - (r["submit_sent"] + r["submit_done"]) / 2) * scale)
    occupancy: list[float] = []
    all_busy: list[float] = []
    idle = {"total": 0.0, "poll lag": 0.0, "waiting": 0.0, "http": 0.0}
    handovers = 0
    ours = result["side"] == "ours"
    if scenario.saturating:
        for rows in by_key.values():
            # the k-th task to end at the provider frees the slot the k-th queued create takes
            ends = sorted(
                (
                    (clock.to_real(completions[r["task_id"]]), r)
                    for r in rows
                    if r["task_id"] in completions
                ),
                key=lambda pair: pair[0],
            )
            queued = sorted(
                (r for r in rows if r["submit_sent"] is not None), key=lambda r: r["submit_sent"]
            )[CONCURRENCY:]
            for (done, finished), create in zip(ends, queued, strict=False):
                arrived = (create["submit_sent"] + create["submit_done"]) / 2
                total_idle = max(0.0, arrived - done) * scale
                idle["total"] += total_idle
                if ours and finished["done_sent"] is not None and finished["done_recv"] is not None:
                    lag = max(0.0, finished["done_sent"] - done) * scale
                    http = (finished["done_recv"] - finished["done_sent"]) * scale
                    http += (arrived - create["submit_sent"]) * scale
                    idle["poll lag"] += lag
                    idle["http"] += http
                    idle["waiting"] += total_idle - lag - http
                handovers += 1
            submits = [r["submit_done"] for r in rows if r["submit_done"] is not None]
            if not submits:
                continue
            start = min(r["requested"] for r in rows if r["requested"] is not None)
            occ, full = busy_slots(at_provider(rows), start, max(submits), CONCURRENCY)
            occupancy.append(occ)
            all_busy.append(full)

    ended = [t["delivered"] for t in delivered]
    makespan = (max(ended) - result["t0"]) * scale if ended else None
    rss = result.get("rss", {})
    lag = result.get("lag", {})
    return {
        "side": result["side"],
        "scale": scale,
        "briefs": len(traces),
        "expected": scenario.total,
        "delivered": n_delivered,
        "failed": len(failed),
        "failure_reasons": dict(Counter(t["failed"] for t in failed).most_common(5)),
        "timed_out": bool(result.get("timed_out")),
        "requests": requests,
        "creates": total("creates"),
        "polls": total("polls"),
        "requests_per_image": requests / n_delivered if n_delivered else None,
        "rate_limited": total("rate_limited"),
        "server_errors": total("server_errors"),
        "tasks_created": total("tasks_created"),
        "overhead_p50": _stat(felt, 0.5),
        "overhead_p95": _stat(felt, 0.95),
        "poll_lag_p50": _stat(poll_lag, 0.5),
        "poll_lag_p95": _stat(poll_lag, 0.95),
        "fetch_p50_ms": _ms(_stat(fetch, 0.5)),
        "fetch_p95_ms": _ms(_stat(fetch, 0.95)),
        "fetch_parts_p50_ms": {k: _ms(_stat(v, 0.5)) for k, v in parts.items()},
        "raw_overhead_p50": _stat(raw, 0.5),
        "raw_overhead_p95": _stat(raw, 0.95),
        "missing_completion": missing_completion,
        "clock_violations": clock_violations,
        "throughput_bound": bound,
        "throughput_median": statistics.median(achieved) if achieved else None,
        "throughput_ratio_median": (statistics.median(achieved) / bound) if achieved else None,
        "throughput_ratio_min": (min(achieved) / bound) if achieved else None,
        "busy_occupancy": statistics.median(occupancy) if occupancy else None,
        "handover_idle": {k: v / handovers for k, v in idle.items()} if handovers else None,
        "busy_all_slots": statistics.median(all_busy) if all_busy else None,
        "peak_at_provider": peak_overlap(all_spans),
        "duration_min": min(durations) if durations else None,
        "duration_max": max(durations) if durations else None,
        "makespan": makespan,
        "wall_seconds": result["t_end"] - result["t0"],
        "rss_peak_mb": rss.get("peak", 0) / MB,
        "rss_setup_mb": rss.get("setup", 0) / MB,
        "rss_delta_mb": (rss.get("peak", 0) - rss.get("setup", 0)) / MB,
        "lag_p50_ms": lag.get("p50_ms"),
        "lag_p99_ms": lag.get("p99_ms"),
        "lag_max_ms": lag.get("max_ms"),
        "lag_grid_p99_ms": lag.get("grid_p99_ms"),
        "lag_over_50ms": lag.get("grid_over_50ms"),
        "sim_lag_p99_ms": (sim_host.get("lag") or {}).get("grid_p99_ms"),
        "sim_cpu_percent": sim_host.get("cpu_percent"),
        "cpu_ms_per_image": (
            1000 * float(result["cpu_seconds"]) / n_delivered
            if n_delivered and result.get("cpu_seconds") is not None
            else None
        ),
        "client_errors": result.get("client_errors", {}),
        "max_queue_position": result.get("max_queue_position"),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000
