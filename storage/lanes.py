""":class:`tmbot.ports.Coordinator` on PostgreSQL: several tmbot processes sharing one database.

**Members.** Each engine process is a row of ``members`` (``pid@host:random``) whose expiry it
renews every :data:`HEARTBEAT` seconds (lasting :data:`LEASE` seconds). Expiries are the
server's clock, so hosts whose clocks disagree still agree on when something lapsed.

**Lanes** are owned through lease rows (``lane_leases``: lane, owner, expiry), renewed with the
member row. Why a lease row and not a session advisory lock: a lock lives as long as the
owner's *connection*, which outlives a hung process and, when the host dies, lasts until TCP
keepalive gives up (about half a minute); a lease lapses :data:`LEASE` seconds after the
last renewal however the owner died or stalled, it is a row anyone can read (``tmbot
status``, the tests), and the owner learns at its next renewal that it lost a lane (it then
stops that lane's work). A free lane goes to the live member that rendezvous hashing picks
(``sha256(lane, member)``, highest wins), so lanes spread across the live processes and a
process that joins or leaves moves only its share; any member takes a lane whose work has
waited longer than a lease (the picked one may be stuck). A lane idle here for
:data:`IDLE_RELEASE` seconds is given back, so the spread follows the processes alive now.
Taking is one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` the lease lapsed: two takers of
one lane serialise on its row and one wins.

**Waking.** A process that stores a brief for a lane it does not own sends ``NOTIFY
tmbot_work``; every process ``LISTEN``s on its control connection (asyncpg's
``add_listener``) and looks for work it owns or should take (the owner claims the brief by
owning its lane; the lifecycle's status guard keeps two writers from both moving one
generation). Each heartbeat looks too, which is how a lane whose owner died is taken over.

**Outbox claims** (``outbox_claims``: platform, generation, owner, expiry): a generation's
events on a platform are handed over by the holder of its claim. Claiming inserts the free
ones and takes over lapsed ones (``FOR UPDATE SKIP LOCKED``: a claim being taken by another
process right now is skipped, not waited for); claims are renewed by the heartbeat and
released once their events are recorded as handed over. ``NOTIFY tmbot_outbox`` (payload:
the platform) makes the holders look at the outbox again.

**The guard** around a key's funds check and reservation is a transaction advisory lock
(``pg_advisory_xact_lock`` on a hash of the key) held on a connection of a small pool of its
own, so two processes cannot both pass a check for the last credits, and guards waiting for
each other never hold the store's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from tmbot.coordination import member_name
from tmbot.ports import inherit_nothing, none_sent

if TYPE_CHECKING:
    from tmbot.ports import Coordinator

log = logging.getLogger(__name__)

#: seconds a lease (and a member's liveness, and an outbox claim) lasts after its renewal
LEASE = 5.0
#: seconds between renewals
HEARTBEAT = 1.5
#: a lane idle in this process this many seconds is given back (others may take it). Longer
#: than the providers' request window (a minute), so whoever takes it next starts with an
#: empty window, as its scheduler assumes.
IDLE_RELEASE = 65.0
#: connections kept for guards (transaction advisory locks)
GUARD_POOL = 4

WORK_CHANNEL = "tmbot_work"
OUTBOX_CHANNEL = "tmbot_outbox"
#: told ``<lane> <member>`` whenever a member takes a lane (for operators and tests)
LANES_CHANNEL = "tmbot_lanes"

_NOW = "extract(epoch from clock_timestamp())::float8"
#: take the lease ($1) for a member ($2) for $3 seconds when it is free, lapsed or its own;
#: returns the owner (none when another holds it)
_TAKE_LEASE = f"""
    INSERT INTO lane_leases (lane, owner, taken_at, expires_at)
    VALUES ($1, $2, {_NOW}, {_NOW} + $3)
    ON CONFLICT (lane) DO UPDATE SET
        owner = excluded.owner, taken_at = excluded.taken_at,
        expires_at = excluded.expires_at
    WHERE lane_leases.expires_at < excluded.taken_at
       OR lane_leases.owner = excluded.owner
    RETURNING owner
"""  # noqa: S608


def _guard_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(
        hashlib.sha256(b"tmbot-guard:" + name.encode()).digest()[:8], "big", signed=True
    )


def preferred(lane: str, members: Collection[str]) -> str | None:
    """The member a free lane goes to: rendezvous hashing (highest ``sha256(lane, member)``)."""
    if not members:
        return None
    return max(members, key=lambda m: hashlib.sha256(f"{lane}\0{m}".encode()).digest())


class PostgresCoordinator:
    """Lanes, claims and guards for one process; built by :meth:`PostgresStore.coordinator`."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        control: asyncpg.Connection[Any],
        control_lock: asyncio.Lock,
        dsn: str,
        server_settings: dict[str, str],
    ) -> None:
        self._pool = pool
        self._control = control
        self._control_lock = control_lock
        self._dsn = dsn
        self._server_settings = server_settings
        self._member = f"{member_name()}:{secrets.token_hex(3)}"
        self._held: set[str] = set()
        self._named: set[str] = set()  # named leases (Leases): renewed, never idle-released
        self._idle_since: dict[str, float] = {}
        self._valid_until = 0.0  # monotonic: leases held are trusted until then
        self._members: set[str] = {self._member}
        self._guard_pool: asyncpg.Pool[Any] | None = None
        self._guard_locks: dict[str, asyncio.Lock] = {}
        self._heart: asyncio.Task[None] | None = None
        self._work: Callable[[], None] = _nothing
        self._events: Callable[[str], None] = _nothing_for
        self._lost: Callable[[str], None] = _nothing_for
        self._busy: Callable[[], Collection[str]] = frozenset
        self._sent: Callable[[str], Sequence[float]] = none_sent
        self._inherit: Callable[[str, Sequence[float]], None] = inherit_nothing
        self._listening = False

    @property
    def sole(self) -> bool:
        return False

    @property
    def member(self) -> str:
        return self._member

    # --- start and stop ----------------------------------------------------------------

    async def start(
        self,
        *,
        work: Callable[[], None],
        events: Callable[[str], None],
        lost: Callable[[str], None],
        busy: Callable[[], Collection[str]],
        sent: Callable[[str], Sequence[float]] = none_sent,
        inherit: Callable[[str, Sequence[float]], None] = inherit_nothing,
    ) -> None:
        self._work, self._events, self._lost, self._busy = work, events, lost, busy
        self._sent, self._inherit = sent, inherit
        self._guard_pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=GUARD_POOL, server_settings=self._server_settings
        )
        async with self._control_lock:
            await self._control.add_listener(WORK_CHANNEL, self._on_work)
            await self._control.add_listener(OUTBOX_CHANNEL, self._on_events)
        self._listening = True
        await self._beat()
        self._heart = asyncio.create_task(self._heartbeat(), name="lanes-heartbeat")

    async def close(self) -> None:
        if self._heart is not None:
            self._heart.cancel()
            await asyncio.gather(self._heart, return_exceptions=True)
            self._heart = None
        if self._listening:
            self._listening = False
            with contextlib.suppress(Exception):
                async with self._control_lock:
                    await self._control.remove_listener(WORK_CHANNEL, self._on_work)
                    await self._control.remove_listener(OUTBOX_CHANNEL, self._on_events)
        try:  # what was ours is free at once: others take it without waiting for a lapse
            async with self._pool.acquire() as conn, conn.transaction():
                await self._note_windows(conn, closed=True)
                await conn.execute("DELETE FROM lane_leases WHERE owner = $1", self._member)
                await conn.execute("DELETE FROM outbox_claims WHERE owner = $1", self._member)
                await conn.execute("DELETE FROM members WHERE member = $1", self._member)
                await conn.execute("SELECT pg_notify($1, '')", WORK_CHANNEL)
        except Exception:
            log.warning("could not give up this process's lanes; they lapse", exc_info=True)
        self._held.clear()
        self._named.clear()
        if self._guard_pool is not None:
            await self._guard_pool.close()
            self._guard_pool = None

    @property
    def members(self) -> frozenset[str]:
        """The live members as of the last renewal (this one included)."""
        return frozenset(self._members)

    async def renew(self) -> None:
        """Renew now what the heartbeat renews every :data:`HEARTBEAT` seconds."""
        await self._beat()

    def _on_work(self, *_args: object) -> None:
        self._work()

    def _on_events(self, _conn: object, _pid: object, _channel: object, payload: object) -> None:
        self._events(str(payload))

    # --- the heartbeat -----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not renew this process's leases", exc_info=True)
                if time.monotonic() > self._valid_until:
                    for lane in sorted(self._held):
                        self._drop(lane)
            self._work()  # lanes whose owner died are taken over by whoever looks

    async def _beat(self) -> None:
        started = time.monotonic()
        # what was held before the renewal: a lane or lease taken while it runs is not in
        # what it renews, and must not be dropped for that
        held, named = set(self._held), set(self._named)
        busy = set(self._busy())
        idle = [
            lane
            for lane in self._held
            if lane not in busy
            and started - self._idle_since.setdefault(lane, started) > IDLE_RELEASE
        ]
        for lane in busy:
            self._idle_since.pop(lane, None)
        async with self._pool.acquire() as conn, conn.transaction():
            if idle:
                await conn.execute(
                    "DELETE FROM lane_leases WHERE owner = $1 AND lane = ANY($2::text[])",
                    self._member,
                    idle,
                )
                for lane in idle:
                    self._held.discard(lane)
                    self._idle_since.pop(lane, None)
            await conn.execute(
                f"INSERT INTO members (member, started_at, expires_at) VALUES ($1, {_NOW}, "  # noqa: S608
                f"{_NOW} + $2) ON CONFLICT (member) DO UPDATE SET expires_at = excluded.expires_at",
                self._member,
                LEASE,
            )
            renewed = await conn.fetch(
                f"UPDATE lane_leases SET expires_at = {_NOW} + $2 WHERE owner = $1 RETURNING lane",  # noqa: S608
                self._member,
                LEASE,
            )
            await conn.execute(
                f"UPDATE outbox_claims SET expires_at = {_NOW} + $2 WHERE owner = $1",  # noqa: S608
                self._member,
                LEASE,
            )
            await self._note_windows(conn, closed=False)
            live = await conn.fetch(
                f"SELECT member FROM members WHERE expires_at > {_NOW}"  # noqa: S608
            )
            await conn.execute(
                f"DELETE FROM members WHERE expires_at < {_NOW} - 3600"  # noqa: S608
            )
            await conn.execute(
                f"DELETE FROM lane_windows WHERE noted_at < {_NOW} - 3600"  # noqa: S608
            )
        self._valid_until = started + LEASE - HEARTBEAT
        self._members = {str(r["member"]) for r in live} | {self._member}
        kept = {str(r["lane"]) for r in renewed}
        for lane in sorted((held & self._held) - kept):
            self._drop(lane)
        for name in sorted((named & self._named) - kept):
            self._named.discard(name)
            log.warning("the lease %s lapsed; another process may take it", name)

    async def _note_windows(
        self, conn: asyncpg.pool.PoolConnectionProxy[Any], *, closed: bool
    ) -> None:
        """Write, for each lane held here, how long ago its window's requests went out."""
        lanes, sent = [], []
        for lane in sorted(self._held):
            ages = self._sent(lane)
            if ages:
                lanes.append(lane)
                sent.append(json.dumps([round(age, 3) for age in ages]))
        if lanes:
            await conn.execute(
                f"""
                INSERT INTO lane_windows (lane, member, sent, noted_at, closed)
                SELECT lane, $1, sent, {_NOW}, $4
                FROM unnest($2::text[], $3::text[]) AS noted (lane, sent)
                ON CONFLICT (lane) DO UPDATE SET member = excluded.member,
                    sent = excluded.sent, noted_at = excluded.noted_at, closed = excluded.closed
                """,  # noqa: S608
                self._member,
                lanes,
                sent,
                closed,
            )

    def _drop(self, lane: str) -> None:
        self._held.discard(lane)
        self._idle_since.pop(lane, None)
        log.warning("the lease of lane %s lapsed; another process takes it over", lane)
        self._lost(lane)

    # --- lanes -------------------------------------------------------------------------

    def owns(self, lane: str) -> bool:
        return lane in self._held and time.monotonic() < self._valid_until

    async def take(self, lane: str, *, waiting: float = 0.0) -> bool:
        if self.owns(lane):
            self._idle_since.pop(lane, None)
            return True
        if preferred(lane, self._members) != self._member and waiting <= LEASE:
            return False
        started = time.monotonic()
        async with self._pool.acquire() as conn, conn.transaction():
            owner = await conn.fetchval(
                _TAKE_LEASE,
                lane,
                self._member,
                LEASE,
            )
            if owner is None:
                return False
            await conn.execute("SELECT pg_notify($1, $2)", LANES_CHANNEL, f"{lane} {self._member}")
            window = None
            if lane not in self._held:
                window = await conn.fetchrow(
                    f"SELECT member, sent, noted_at, closed, {_NOW} AS now"  # noqa: S608
                    " FROM lane_windows WHERE lane = $1",
                    lane,
                )
        if window is not None and window["member"] != self._member:
            self._inherit(lane, inherited_ages(window))
        if lane not in self._held:
            log.info("this process now runs lane %s", lane)
        self._held.add(lane)
        self._valid_until = max(self._valid_until, started + LEASE - HEARTBEAT)
        return True

    async def hand_off(self, lane: str) -> None:
        await self._pool.execute("SELECT pg_notify($1, $2)", WORK_CHANNEL, lane)

    @contextlib.asynccontextmanager
    async def guard(self, name: str) -> AsyncIterator[None]:
        lock = self._guard_locks.get(name)
        if lock is None:
            lock = self._guard_locks[name] = asyncio.Lock()
        async with lock:  # one waiter per key per process on the guard pool
            pool = self._guard_pool
            if pool is None:  # not started (or closed): this process's lock only
                yield
                return
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _guard_key(name))
                yield

    # --- named leases (Discord's shards) ----------------------------------------------

    async def leases(self, prefix: str) -> dict[str, str]:
        rows = await self._pool.fetch(
            f"SELECT lane, owner FROM lane_leases WHERE starts_with(lane, $1)"  # noqa: S608
            f" AND expires_at > {_NOW}",
            prefix,
        )
        return {str(r["lane"]): str(r["owner"]) for r in rows}

    async def acquire(self, name: str) -> bool:
        started = time.monotonic()
        owner = await self._pool.fetchval(
            _TAKE_LEASE,
            name,
            self._member,
            LEASE,
        )
        if owner is None:
            return False
        self._named.add(name)
        self._valid_until = max(self._valid_until, started + LEASE - HEARTBEAT)
        return True

    async def release(self, name: str) -> None:
        self._named.discard(name)
        await self._pool.execute(
            "DELETE FROM lane_leases WHERE lane = $1 AND owner = $2", name, self._member
        )

    def holds(self, name: str) -> bool:
        return name in self._named and time.monotonic() < self._valid_until

    # --- outbox claims -------------------------------------------------------------------

    async def claim(self, platform: str, generation_ids: Sequence[str]) -> set[str]:
        if not generation_ids:
            return set()
        ids = list(generation_ids)
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetch(
                f"""
                INSERT INTO outbox_claims (platform, generation_id, owner, expires_at)
                SELECT $1, g, $3, {_NOW} + $4 FROM unnest($2::text[]) AS g
                ON CONFLICT (platform, generation_id) DO NOTHING
                RETURNING generation_id
                """,  # noqa: S608
                platform,
                ids,
                self._member,
                LEASE,
            )
            taken = await conn.fetch(
                f"""
                UPDATE outbox_claims SET owner = $3, expires_at = {_NOW} + $4
                WHERE (platform, generation_id) IN (
                    SELECT platform, generation_id FROM outbox_claims
                    WHERE platform = $1 AND generation_id = ANY($2::text[])
                      AND (owner = $3 OR expires_at < {_NOW})
                    FOR UPDATE SKIP LOCKED)
                RETURNING generation_id
                """,  # noqa: S608
                platform,
                ids,
                self._member,
                LEASE,
            )
        return {str(r["generation_id"]) for r in (*fresh, *taken)}

    async def unclaim(self, platform: str, generation_ids: Sequence[str]) -> None:
        await self._pool.execute(
            "DELETE FROM outbox_claims"
            " WHERE platform = $1 AND generation_id = ANY($2::text[]) AND owner = $3",
            platform,
            list(generation_ids),
            self._member,
        )

    async def poke(self, platform: str) -> None:
        await self._pool.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, platform)


def inherited_ages(window: Mapping[str, Any]) -> list[float]:
    """How long ago (real seconds, now) the requests a lane's previous owner noted went out.
    It may have sent more in the heartbeat after its last note and before it died: those
    are assumed to have gone out as in the heartbeat before, as late as they could (not
    when it closed: it noted its window as it gave the lane up)."""
    since = max(0.0, float(window["now"]) - float(window["noted_at"]))
    ages = [float(age) for age in json.loads(str(window["sent"]))]
    noted = [since + age for age in ages]
    if not window["closed"]:
        noted += [max(0.0, since - HEARTBEAT + age) for age in ages if age < HEARTBEAT]
    return noted


def _nothing() -> None:
    return None


def _nothing_for(_what: str) -> None:
    return None


if TYPE_CHECKING:

    def _is_a_coordinator(coordinator: PostgresCoordinator) -> Coordinator:
        """mypy proves PostgresCoordinator satisfies the Protocol."""
        return coordinator
