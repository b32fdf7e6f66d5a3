"""The poll planner: first look near the estimate, steps bounded, learning moves the window."""

from __future__ import annotations

from itertools import pairwise

from tmbot.polling import PollPlanner, PollPolicy

PROFILE = ("tastemachine", "nano-banana-pro", "2k")


def schedule(planner: PollPlanner, estimate: float | None, horizon: float) -> list[float]:
    times, t, polls = [], 0.0, 0
    while t < horizon:
        t += planner.next_delay(PROFILE, estimate, elapsed=t, polls=polls)
        polls += 1
        times.append(t)
    return times


def test_first_poll_is_near_the_estimate_not_at_two_seconds() -> None:
    planner = PollPlanner()
    times = schedule(planner, 30.0, 40.0)
    assert 27.0 <= times[0] <= 31.0
    # inside the expected window, no gap is longer than the step
    early, late = planner.expected_window(PROFILE, 30.0)
    inside = [t for t in times if early <= t <= late]
    assert all(b - a <= planner.policy.step + 1e-9 for a, b in pairwise(inside))
    # a 30 s task costs a handful of polls, not 15
    assert len([t for t in times if t <= late + planner.policy.step]) <= 6


def test_overdue_tasks_back_off_geometrically_to_a_cap() -> None:
    planner = PollPlanner(PollPolicy(max_interval=20.0))
    times = schedule(planner, 30.0, 600.0)
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= 20.0 + 1e-9
    assert len(times) < 60  # ten minutes of a stuck task stays cheap


def test_learning_moves_the_window_towards_observed_durations() -> None:
    planner = PollPlanner()
    for _ in range(10):
        planner.observe(PROFILE, 30.0, seen_running_at=14.0, seen_done_at=16.0)
    early, late = planner.expected_window(PROFILE, 30.0)
    assert 14.0 <= early <= late <= 16.0
    assert schedule(planner, 30.0, 20.0)[0] < 17.0


def test_missing_estimate_uses_learned_durations() -> None:
    planner = PollPlanner()
    for _ in range(5):
        planner.observe(PROFILE, None, seen_running_at=8.0, seen_done_at=10.0)
    early, late = planner.expected_window(PROFILE, None)
    assert 8.0 <= early <= late <= 10.0
