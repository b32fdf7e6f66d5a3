"""Gateway shards spread across processes: each shard is held by one live process at a time.

Discord sends a guild's events only to the session identified for its shard,
``(guild_id >> 22) % shard_count``; any process may call the REST API. So with several
processes on one store each shard is a named lease (:class:`tmbot.ports.Leases`,
``<group>-shard:<n>/<count>``) and the process holding it keeps that shard's gateway
connection; processes that run the gateway say so with a lease of their own
(``<group>-member:<member>``), which is how they find each other.

**Placement** (:func:`place`) is a pure function of the shard count, the live candidates
and who holds what now: holders keep their shards, free shards go to the least loaded
candidate, and a candidate holding two or more shards more than another gives one up. Ties
are broken by rendezvous hashing (``sha256(shard, member)``), so every process computes the
same answer from the same view. :class:`ShardKeeper` looks every ``interval`` seconds: it
takes the free shards placed on it (connecting each before the next look), gives up those
placed elsewhere (disconnecting first, then releasing, so two sessions never hold one shard),
and disconnects a shard whose lease it no longer holds. A shard left free longer than
``stale`` seconds (the process it was placed on does not take it) is taken by whoever looks.

With one process (a ``sole`` coordinator) it is the only candidate and holds every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping

from tmbot.ports import Leases

log = logging.getLogger(__name__)

#: seconds between looks (the lanes' heartbeat)
INTERVAL = 1.5
#: seconds a shard may stay free before any candidate takes it (a lease's time, twice)
STALE = 10.0


def _score(shard: int, member: str) -> bytes:
    return hashlib.sha256(f"shard:{shard}\0{member}".encode()).digest()


def place(count: int, candidates: Collection[str], holders: Mapping[int, str]) -> dict[int, str]:
    """Which candidate should hold each of ``count`` shards: current holders that are
    candidates keep their shards unless they hold two or more than another candidate; free
    shards go to the least loaded candidate. Empty when there is no candidate."""
    members = sorted(set(candidates))
    if not members:
        return {}
    placed = {s: m for s, m in holders.items() if 0 <= s < count and m in members}
    load = {m: 0 for m in members}
    for m in placed.values():
        load[m] += 1

    def least(shard: int) -> str:
        return min(members, key=lambda m: (load[m], _neg(_score(shard, m))))

    for shard in range(count):
        if shard not in placed:
            chosen = least(shard)
            placed[shard] = chosen
            load[chosen] += 1
    while True:
        most = max(members, key=lambda m: (load[m], m))
        fewest = min(members, key=lambda m: (load[m], m))
        if load[most] - load[fewest] <= 1:
            return placed
        # the most loaded gives up the shard that scores best for the least loaded
        shard = max((s for s, m in placed.items() if m == most), key=lambda s: _score(s, fewest))
        placed[shard] = fewest
        load[most] -= 1
        load[fewest] += 1


def _neg(digest: bytes) -> bytes:
    """Sorts the highest score first under ``min``."""
    return bytes(255 - b for b in digest)


def shard_lease(group: str, shard: int, count: int) -> str:
    return f"{group}-shard:{shard}/{count}"


def member_lease(group: str, member: str) -> str:
    return f"{group}-member:{member}"


Connect = Callable[[int], Awaitable[None]]


class ShardKeeper:
    """Holds this process's share of ``count`` shards through ``leases``; ``connect(n)``
    returns once shard ``n`` is connected (raising when it cannot be), ``disconnect(n)``
    once it is closed."""

    def __init__(
        self,
        leases: Leases,
        *,
        group: str,
        count: int,
        connect: Connect,
        disconnect: Connect,
        interval: float = INTERVAL,
        stale: float = STALE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if count < 1:
            raise ValueError("a shard count is at least 1")
        self.leases = leases
        self.group = group
        self.count = count
        self._connect = connect
        self._disconnect = disconnect
        self.interval = interval
        self.stale = stale
        self.clock = clock
        self.held: set[int] = set()  # connected here, under a lease held here
        self._free_since: dict[int, float] = {}
        self._other_counts: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def member(self) -> str:
        return self.leases.member

    def _name(self, shard: int) -> str:
        return shard_lease(self.group, shard, self.count)

    async def step(self) -> None:
        """One look: join, read who holds what, give up and take what the placement says."""
        me = self.member
        if not self.leases.holds(member_lease(self.group, me)):  # else the heartbeat renews it
            await self.leases.acquire(member_lease(self.group, me))
        seen = await self.leases.leases(f"{self.group}-")
        candidates = {
            name.removeprefix(f"{self.group}-member:")
            for name in seen
            if name.startswith(f"{self.group}-member:")
        }
        candidates.add(me)
        holders: dict[int, str] = {}
        for name, owner in seen.items():
            shard = self._shard_of(name)
            if shard is not None:
                holders[shard] = owner
        wanted = place(self.count, candidates, holders)
        now = self.clock()
        for shard in sorted(self.held):
            if not self.leases.holds(self._name(shard)):
                log.warning("lost the lease of Discord shard %d; disconnecting it", shard)
                await self._drop(shard, release=False)
            elif wanted.get(shard) != me:
                log.info("handing Discord shard %d to %s", shard, wanted.get(shard))
                await self._drop(shard, release=True)
        for shard in range(self.count):
            holder = holders.get(shard)
            if holder is not None and holder != me:
                self._free_since.pop(shard, None)
                continue
            if shard in self.held:
                continue
            since = self._free_since.setdefault(shard, now)
            if wanted.get(shard) != me and now - since < self.stale:
                continue
            if not await self.leases.acquire(self._name(shard)):
                continue
            self._free_since.pop(shard, None)
            try:
                await self._connect(shard)
            except BaseException:
                await self.leases.release(self._name(shard))
                raise
            log.info("holding Discord shard %d of %d", shard, self.count)
            async with self._changed:
                self.held.add(shard)
                self._changed.notify_all()

    def _shard_of(self, name: str) -> int | None:
        prefix = f"{self.group}-shard:"
        if not name.startswith(prefix):
            return None
        number, _, count = name.removeprefix(prefix).partition("/")
        if not (number.isdigit() and count.isdigit()):
            return None
        if int(count) != self.count:
            if int(count) not in self._other_counts:
                self._other_counts.add(int(count))
                log.error(
                    "another process holds Discord shards of a count of %s, this one %d: "
                    "give every process the same TMBOT_DISCORD_SHARDS",
                    count,
                    self.count,
                )
            return None
        return int(number)

    async def _drop(self, shard: int, *, release: bool) -> None:
        async with self._changed:
            self.held.discard(shard)
            self._changed.notify_all()
        try:
            await self._disconnect(shard)
        finally:
            if release:
                await self.leases.release(self._name(shard))

    async def run(self) -> None:
        """Look every ``interval`` seconds until cancelled; a failed look is logged and the
        next one tries again."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not look at Discord's shards", exc_info=True)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self.group}-shards")

    async def until(self, predicate: Callable[[set[int]], bool]) -> None:
        """Return once ``predicate(held)`` is true (the caller bounds the wait)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.held))

    async def close(self) -> None:
        """Stop looking; disconnect and give up every shard held here."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for shard in sorted(self.held):
            with contextlib.suppress(Exception):
                await self._drop(shard, release=True)
        with contextlib.suppress(Exception):
            await self.leases.release(member_lease(self.group, self.member))
