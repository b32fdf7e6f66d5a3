"""Discord's gateway shards across processes (:mod:`tmbot.shards`): the placement as a pure
function, and :class:`~tmbot.shards.ShardKeeper` on the one-process coordinator and on real
PostgreSQL coordinators (as separate processes would hold them) sharing one database."""

from __future__ import annotations

import itertools
from collections import Counter

import asyncpg

from tests.test_lanes import coordinators
from tmbot.coordination import SoleCoordinator
from tmbot.ports import Leases
from tmbot.shards import ShardKeeper, place


def loads(placed: dict[int, str]) -> Counter[str]:
    return Counter(placed.values())


def test_free_shards_are_spread_evenly_over_the_candidates() -> None:
    for count, members in itertools.product((1, 2, 3, 7, 16), (1, 2, 3, 5)):
        names = [f"m{n}" for n in range(members)]
        placed = place(count, names, {})
        assert sorted(placed) == list(range(count))
        spread = [loads(placed)[m] for m in names]
        assert max(spread) - min(spread) <= 1, (count, members, placed)


def test_holders_keep_their_shards_and_a_dead_holders_shard_goes_to_the_least_loaded() -> None:
    holders = {0: "a", 1: "b"}
    assert place(2, ["a", "b", "c"], holders) == holders  # balanced: nothing moves
    # a died (no longer a candidate): its shard goes to c, which held none; b keeps its own
    assert place(2, ["b", "c"], holders) == {0: "c", 1: "b"}
    # holders of a lease that is not a candidate, or shards out of range, are ignored
    assert place(2, ["b"], {0: "gone", 5: "b"}) == {0: "b", 1: "b"}
    assert place(3, [], {0: "a"}) == {}


def test_a_joining_candidate_takes_only_the_excess_of_the_most_loaded() -> None:
    everything = {s: "a" for s in range(4)}
    placed = place(4, ["a", "b"], everything)
    assert loads(placed) == Counter({"a": 2, "b": 2})
    assert all(placed[s] == "a" for s in placed if placed[s] != "b")
    # three holders, one newcomer: 2/2/2 + 0 becomes 2/2/1/1 (one shard moves)
    held = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    after = place(6, ["a", "b", "c", "d"], held)
    assert sum(1 for s in held if after[s] != held[s]) == 1
    assert loads(after)["d"] == 1


def test_the_placement_is_the_same_whatever_order_the_view_comes_in() -> None:
    names = ["p1@h:aa", "p2@h:bb", "p3@h:cc"]
    first = place(5, names, {2: "p2@h:bb"})
    for order in itertools.permutations(names):
        assert place(5, list(order), {2: "p2@h:bb"}) == first


class Gateway:
    """The connections the keepers make, shared like Discord's gateway: a shard connected
    twice at once is an error, as the fake gateway's 4005 would be."""

    def __init__(self) -> None:
        self.connected: dict[int, str] = {}
        self.connects: list[tuple[int, str]] = []

    def for_(self, who: str) -> tuple[object, object]:
        async def connect(shard: int) -> None:
            assert shard not in self.connected, f"shard {shard} connected twice"
            self.connected[shard] = who
            self.connects.append((shard, who))

        async def disconnect(shard: int) -> None:
            assert self.connected.pop(shard) == who

        return connect, disconnect


def keeper(leases: Leases, gateway: Gateway, who: str, count: int) -> ShardKeeper:
    connect, disconnect = gateway.for_(who)
    return ShardKeeper(
        leases,
        group="discord",
        count=count,
        connect=connect,  # type: ignore[arg-type]
        disconnect=disconnect,  # type: ignore[arg-type]
    )


async def test_one_process_holds_every_shard_and_connects_each_once() -> None:
    gateway = Gateway()
    alone = keeper(SoleCoordinator(), gateway, "a", 3)
    await alone.step()
    await alone.step()
    assert alone.held == {0, 1, 2}
    assert sorted(gateway.connects) == [(0, "a"), (1, "a"), (2, "a")]
    await alone.close()
    assert gateway.connected == {}


async def test_processes_on_postgresql_split_the_shards_hand_over_one_and_take_a_leavers(
    pg_url: str,
) -> None:
    gateway = Gateway()
    async with coordinators(pg_url, 2) as (one, two):
        a = keeper(one, gateway, "a", 3)
        b = keeper(two, gateway, "b", 3)
        await a.step()  # alone so far: a takes all three
        assert a.held == {0, 1, 2}
        await b.step()  # b joins; every shard is a's: b waits for a to give one up
        assert b.held == set()
        await a.step()  # a gives up the one the placement moves (disconnect, then release)
        assert len(a.held) == 2
        await b.step()
        assert len(b.held) == 1 and a.held | b.held == {0, 1, 2}
        assert gateway.connected == {**dict.fromkeys(a.held, "a"), **dict.fromkeys(b.held, "b")}
        conn = await asyncpg.connect(pg_url)
        try:
            rows = await conn.fetch(
                "SELECT lane, owner FROM lane_leases WHERE lane LIKE 'discord-shard:%'"
            )
        finally:
            await conn.close()
        owners = {str(r["lane"]): str(r["owner"]) for r in rows}
        assert owners == {
            f"discord-shard:{s}/3": (one.member if s in a.held else two.member) for s in range(3)
        }
        moved = set(b.held)
        await a.close()  # a leaves (gives its shards up at once): b takes them
        await b.step()
        assert b.held == {0, 1, 2}
        assert gateway.connected == dict.fromkeys(range(3), "b")
        # each shard was connected twice (by a, then by b), one keeper at a time: the one
        # handed over while both ran stayed connected at b when a left
        assert Counter(s for s, _ in gateway.connects) == Counter(dict.fromkeys(range(3), 2))
        assert next(s for s, who in gateway.connects[3:] if who == "b") in moved
        await b.close()


async def test_a_keeper_that_lost_a_shards_lease_disconnects_it_and_never_frees_the_new_one(
    pg_url: str,
) -> None:
    gateway = Gateway()
    async with coordinators(pg_url, 2) as (one, two):
        a = keeper(one, gateway, "a", 1)
        await a.step()
        assert a.held == {0} and one.holds("discord-shard:0/1")
        conn = await asyncpg.connect(pg_url)
        try:  # the lease lapsed and another process took it (as if a's renewals had stalled)
            await conn.execute(
                "UPDATE lane_leases SET owner = $1 WHERE lane = 'discord-shard:0/1'", two.member
            )
            await one.renew()  # a's next renewal finds the lease no longer its own
            assert not one.holds("discord-shard:0/1")
            await a.step()
            assert a.held == set() and gateway.connected == {}
            owner = await conn.fetchval(
                "SELECT owner FROM lane_leases WHERE lane = 'discord-shard:0/1'"
            )
        finally:
            await conn.close()
        assert owner == two.member  # disconnecting did not release the new holder's lease
        await a.close()
