"""The fair slot queue: round-robin across users, positions, cancellation."""

from __future__ import annotations

import asyncio

from tmbot.scheduling.fairqueue import FairSlots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_round_robin_across_users_fifo_within_user() -> None:
    slots = FairSlots(1)
    await slots.acquire("holder")
    served: list[str] = []

    async def want(user: str, label: str) -> None:
        await slots.acquire(user)
        served.append(label)

    tasks = [asyncio.create_task(want("alice", f"a{i}")) for i in range(4)]
    await _settle()
    tasks.append(asyncio.create_task(want("bob", "b0")))
    tasks.append(asyncio.create_task(want("carol", "c0")))
    await _settle()
    for _ in range(6):
        slots.release()
        await _settle()
    await asyncio.gather(*tasks)
    # alice queued a batch first, yet bob and carol are served before her second image
    assert served == ["a0", "b0", "c0", "a1", "a2", "a3"]


async def test_positions_are_announced_and_move_up() -> None:
    slots = FairSlots(2)
    await slots.acquire("x")
    await slots.acquire("x")
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    tasks = [asyncio.create_task(slots.acquire(u, seen[u].append)) for u in ("a", "b", "c")]
    await _settle()
    assert [seen[u][-1] for u in "abc"] == [1, 2, 3]
    slots.release()
    await _settle()
    assert tasks[0].done()
    assert seen["b"][-1] == 1 and seen["c"][-1] == 2
    slots.release()
    slots.release()
    await asyncio.gather(*tasks)
    assert slots.in_use == 2 and slots.waiting == 0


async def test_cancelled_waiter_leaves_the_queue_and_frees_nothing() -> None:
    slots = FairSlots(1)
    await slots.acquire("x")
    first = asyncio.create_task(slots.acquire("a"))
    second = asyncio.create_task(slots.acquire("b"))
    await _settle()
    first.cancel()
    await _settle()
    assert slots.waiting == 1
    slots.release()
    await second
    assert slots.in_use == 1


async def test_unlimited_capacity_never_waits() -> None:
    slots = FairSlots(None)
    for _ in range(100):
        await slots.acquire("u")
    assert slots.in_use == 100
