""":class:`tmbot.ports.Store` on PostgreSQL through asyncpg: the shared store.

asyncpg is asyncio-native (no thread per connection), speaks the binary protocol, caches
prepared statements per connection, and has ``add_listener`` for ``LISTEN/NOTIFY``, which the
work sharing across processes will use to wake a lane's owner.

Connections: a pool for the Store calls, and one **control connection** of the store's own,
outside the pool (a pool resets its connections on release, which drops session advisory
locks and listeners). The control connection applies the migrations and, for the engine
(``exclusive=True``), holds the engine lock for as long as the store is open: engines take it
*shared* (``shared=True``: several processes share the database, each key's lane owned by
one of them, see :mod:`storage.lanes`, whose ``LISTEN`` runs on this connection too), ``tmbot
migrate-db`` takes it alone. The server drops the lock when the session ends: at once when
the process dies, within about half a minute (TCP keepalive) when its host does.

Every Store call is one transaction with the same semantics as :mod:`storage.sqlite` (the
contract suite, ``tests/test_store_contract.py``, runs against both): writes take the
generation's row lock before numbering its outbox events, ``transition`` writes only while
the stored status is still the expected one, ``remember`` keeps a live record and replaces an
expired one. Every value is a bound parameter; SQL text is built from constant identifiers
only.

The schema lives in ``storage/migrations/postgres/NNN_name.sql``, the same numbered versions
as SQLite's in PostgreSQL's dialect, recorded in the same ``schema_version`` table; at open
each missing one is applied in its own transaction (under a transaction advisory lock, so two
processes opening a new database do not both apply it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage import rows
from storage.lanes import PostgresCoordinator
from tmbot.domain import Home, ProviderName
from tmbot.errors import ConfigError, DatabaseInUse, NotFound
from tmbot.records import (
    Budget,
    EventOutcome,
    Generation,
    GenStatus,
    KeyBinding,
    KeyLoad,
    KeyRef,
    KeyScope,
    LinkCode,
    LinkKind,
    MessageLink,
    NewEvent,
    OutboxEntry,
    Overview,
    PersonLink,
    Spend,
    TeamLink,
    UserSettings,
)

if TYPE_CHECKING:
    from tmbot.ports import Store

log = logging.getLogger(__name__)

#: URL schemes this store serves (``postgres://`` is libpq's alias).
SCHEMES = ("postgresql", "postgres")

#: The first key of every advisory lock tmbot takes (``pg_try_advisory_lock(int, int)``);
#: the second says which lock. Lanes and Discord's shards are lease rows (``lane_leases``,
#: :mod:`storage.lanes`), not advisory locks, so they need no key here.
LOCK_CLASS = 0x746D6274  # "tmbt"
ENGINE_LOCK = 1  # engines share it; migrate-db takes it alone
MIGRATION_LOCK = 2  # held (per transaction) while a migration is applied
LINKS_LOCK = 3  # held (per transaction) while team or person links change

#: Seconds a starting engine waits for the engine lock before it is refused: a process that
#: was just killed may still hold it for the moment its server session takes to end.
ENGINE_LOCK_WAIT = 2.0
#: The control connection asks the server to probe it (TCP keepalive) so that, when the host
#: of an engine dies without closing its connection, its session and lock end within about
#: half a minute instead of the operating system's two hours. (Unix sockets ignore them.)
CONTROL_KEEPALIVE = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

#: Connections in the pool; one Store call holds one for its transaction.
POOL_SIZE = 10
#: Seconds to wait for the server to accept a connection.
CONNECT_TIMEOUT = 10.0
#: Seconds :meth:`PostgresStore.close` waits for store calls still running.
CLOSE_TIMEOUT = 10.0

_MIGRATION_NAME = re.compile(r"(?P<version>\d+)_(?P<name>[A-Za-z0-9_]+)\.sql")
_FINAL = [GenStatus.DELIVERED.value, GenStatus.FAILED.value]


# --- the URL -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresUrl:
    """A ``postgresql://`` URL and how to name its database in a sentence: host, port and
    database name, never the user's password (the URL itself is never shown)."""

    dsn: str = field(repr=False)
    host: str
    port: int
    database: str

    @property
    def where(self) -> str:
        """``127.0.0.1:5432``, or ``the socket in /run/postgresql``."""
        if self.host.startswith("/"):
            return f"the socket in {self.host}"
        return f"{self.host}:{self.port}"

    @property
    def shown(self) -> str:
        """``the PostgreSQL database tmbot at 127.0.0.1:5432``."""
        return f"the PostgreSQL database {self.database} at {self.where}"


def parse_url(url: str) -> PostgresUrl:
    """Check a ``postgresql://user:password@host:port/database`` URL; a bad one is a
    :class:`ConfigError` that does not repeat it."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(
            "TMBOT_DATABASE_URL is not a valid PostgreSQL URL (its host or port cannot be "
            "read); use postgresql://user:password@host:5432/database."
        ) from None
    if parts.scheme not in SCHEMES:
        raise ConfigError("TMBOT_DATABASE_URL must start with postgresql:// for PostgreSQL.")
    query = parse_qs(parts.query)
    host = (query.get("host") or [""])[0] or unquote(parts.hostname or "") or "localhost"
    if not port and query.get("port"):
        raw = query["port"][0]
        if not raw.isdigit():
            raise ConfigError("TMBOT_DATABASE_URL has a port that is not a number.")
        port = int(raw)
    user = unquote(parts.username or "") or os.environ.get("PGUSER", "")
    database = unquote(parts.path.lstrip("/")) or (query.get("dbname") or [""])[0] or user
    return PostgresUrl(dsn=url, host=host, port=port or 5432, database=database or "(default)")


def _unreachable(exc: BaseException, target: PostgresUrl) -> ConfigError:
    """One sentence for a connection that failed, naming host and port, never the URL."""
    where = target.where
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return ConfigError(
            f"PostgreSQL at {where} refused the login; check the user and password in "
            "TMBOT_DATABASE_URL."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ConfigError(
            f"PostgreSQL at {where} has no database {target.database}; create it "
            f"(createdb {target.database}) or name another in TMBOT_DATABASE_URL."
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConfigError(
            f"PostgreSQL at {where} refused the connection; check that the server runs there "
            "and that TMBOT_DATABASE_URL names its port."
        )
    if isinstance(exc, socket.gaierror):
        return ConfigError(f"PostgreSQL's host {target.host} cannot be found.")
    if isinstance(exc, TimeoutError):
        return ConfigError(f"PostgreSQL at {where} did not answer within {CONNECT_TIMEOUT:g} s.")
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return ConfigError(f"PostgreSQL at {where} cannot be reached ({reason}).")
    if isinstance(exc, asyncpg.PostgresError):
        said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ConfigError(f"PostgreSQL at {where} refused tmbot ({said}).")
    return ConfigError(
        f"PostgreSQL at {where} cannot be used ({type(exc).__name__}); check TMBOT_DATABASE_URL."
    )


#: What a failed connection attempt raises (mapped to one sentence by :func:`_unreachable`).
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _keep_session(_conn: asyncpg.Connection[Any]) -> None:
    """The pool's reset: nothing. Its connections never ``LISTEN``, hold a session advisory
    lock, open a cursor or ``SET`` anything (the lanes' ``LISTEN`` and the engine lock live
    on the control connection, guards on a pool of their own), so asyncpg's default reset
    query (unlock all, ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``) only cost one more round
    trip on every release: 11 % of a process's samples in the stores benchmark. asyncpg
    still rolls back a transaction left open before calling this."""


def _application_name() -> str:
    """Who holds a connection, as ``pg_stat_activity`` shows it: ``tmbot:<pid>@<host>``."""
    return f"tmbot:{os.getpid()}@{socket.gethostname()}"[:63]


def _server_settings(*, read_only: bool) -> dict[str, str]:
    settings = {"application_name": _application_name()}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    return settings


# --- migrations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every ``storage/migrations/postgres/NNN_name.sql``, in version order (1..n, no gaps)."""
    folder = resources.files("storage").joinpath("migrations").joinpath("postgres")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            raise ValueError(f"migration file name {entry.name!r} is not NNN_name.sql")
        found.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migration versions must be 1..n without gaps or repeats: {versions}")
    return found


_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""


async def _migrate(
    conn: asyncpg.Connection[Any], migrations: Sequence[Migration], *, now: float
) -> list[int]:
    """Apply the migrations not yet recorded, each in its own transaction; returns the
    versions applied now."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, MIGRATION_LOCK)
        await conn.execute(_SCHEMA_VERSION_TABLE)
        newest = await conn.fetchval("SELECT MAX(version) FROM schema_version")
    known = migrations[-1].version if migrations else 0
    if newest is not None and newest > known:
        raise ConfigError(
            f"This database was written by a newer tmbot (schema version {newest}; this one "
            f"knows up to {known}); upgrade tmbot before using it."
        )
    applied: list[int] = []
    for migration in migrations:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, MIGRATION_LOCK)
            done = await conn.fetchval(
                "SELECT 1 FROM schema_version WHERE version = $1", migration.version
            )
            if done is None:
                await conn.execute(migration.sql)  # one file, several statements
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    now,
                )
                applied.append(migration.version)
    if applied:
        log.info("database schema migrated to version %d", applied[-1])
    return applied


async def _schema_version(conn: asyncpg.Connection[Any]) -> int:
    """The newest applied migration (0: not a tmbot database yet)."""
    try:
        newest = await conn.fetchval("SELECT MAX(version) FROM schema_version")
    except asyncpg.UndefinedTableError:
        return 0
    return int(newest or 0)


def latest_schema() -> int:
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


# --- the engine lock ---------------------------------------------------------------------


async def _take_engine_lock(
    conn: asyncpg.Connection[Any], target: PostgresUrl, *, shared: bool = False
) -> None:
    """A session advisory lock held on the control connection until it closes. Engines
    take it shared (several processes share a PostgreSQL database, each key's lane owned by
    one of them: :mod:`storage.lanes`); ``tmbot migrate-db`` takes it exclusive, so it is
    refused while any engine runs, and an engine is refused while it copies. Refusals are
    one sentence naming the holder."""
    take = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
    try:
        async with conn.transaction():  # lock_timeout for this wait only
            await conn.execute(
                "SELECT set_config('lock_timeout', $1, true)", f"{ENGINE_LOCK_WAIT * 1000:.0f}"
            )
            await conn.execute(f"SELECT {take}($1, $2)", LOCK_CLASS, ENGINE_LOCK)
        return  # a session lock: it outlives the transaction, until the connection ends
    except asyncpg.LockNotAvailableError:
        pass
    holder = await conn.fetchval(
        """
        SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                  SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2
        LIMIT 1
        """,
        LOCK_CLASS,
        ENGINE_LOCK,
    )
    match = re.fullmatch(r"tmbot:(\d+)@(.*)", holder or "")
    who = f"process {match[1]} on {match[2]}" if match else "another process"
    if shared:
        raise DatabaseInUse(
            f"Another tmbot ({who}) holds {target.shown} for itself (tmbot migrate-db copies "
            "into it); wait until it has finished."
        )
    raise DatabaseInUse(
        f"Another tmbot ({who}) is already running on {target.shown}; stop it first (every "
        "bot process on the database must be stopped for this)."
    )


# --- SQL ---------------------------------------------------------------------------------

_COLUMNS = rows.GENERATION_COLUMNS
# Built once from the constant column names (identifiers, never values: every value is a
# bound parameter, $1 … in the order of rows.GENERATION_COLUMNS).
#: The insert takes the links lock shared (link changes take it alone, inserts do not wait
#: for each other): a link change committed before it is seen by the statement after it,
#: which recomputes the new row's home; one committed after it sees the new row.
_INSERT_GENERATION = (
    "INSERT INTO generations ("  # noqa: S608
    + ", ".join(_COLUMNS)
    + ") SELECT "
    + ", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1))
    + f" FROM (SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, {LINKS_LOCK})) AS links_lock"
)
#: What an update writes: every column but the id and the home (set when the generation is
#: stored, then recomputed only by link changes, as in storage.sqlite).
_UPDATE_COLUMNS = [c for c in _COLUMNS if c not in ("id", *rows.HOME_COLUMNS)]
_UPDATE_GENERATION = (
    "UPDATE generations SET "  # noqa: S608
    + ", ".join(f"{c} = ${n}" for n, c in enumerate(_UPDATE_COLUMNS, start=2))
    + " WHERE id = $1"
)
_TRANSITION_GENERATION = _UPDATE_GENERATION + f" AND status = ${len(_UPDATE_COLUMNS) + 2}"
_SELECT_GENERATION = "SELECT " + ", ".join(_COLUMNS) + " FROM generations"  # noqa: S608
_OUTBOX_COLUMNS = (
    "id, generation_id, platform, seq, kind, payload, attempts, next_attempt_at,"
    " blob IS NOT NULL AS has_blob"
)
_KEY_COLUMNS = (
    "scope, tenant, owner, provider, ciphertext, fingerprint, created_at, balance, balance_seen_at"
)
_BUDGET_COLUMNS = "tenant, target, amount, period, updated_at"

_UPSERT_LINK = """
INSERT INTO message_links (platform, channel, message_id, generation_id, kind)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (platform, channel, message_id) DO UPDATE SET
    generation_id = excluded.generation_id,
    kind = excluded.kind
"""

# The ledger rule of tmbot.records, per generation row (as storage.sqlite counts it).
_SPENT = (
    "COALESCE(SUM(CASE WHEN status = 'failed' THEN COALESCE(credits_consumed, 0)"
    " ELSE COALESCE(credits_consumed, cost, 0) END), 0) AS credits,"
    " COALESCE(SUM(CASE WHEN status = 'failed' AND credits_consumed IS NULL THEN 0 ELSE 1 END),"
    " 0) AS images"
)
_SPEND_FROM = (
    " FROM generations WHERE key_tenant = $1 AND key_scope = $2 AND key_provider = $3"
    " AND created_at >= $4"
)
# members are counted by their home account (a linked account counts as its home's member)
_SPEND = f"SELECT {_SPENT}{_SPEND_FROM} AND home_user_id = $5"
_SPEND_BY_MEMBER = (
    f"SELECT home_user_id, {_SPENT}{_SPEND_FROM} GROUP BY home_user_id ORDER BY home_user_id"
)

_OVERVIEW_KEYS = """
SELECT g.key_provider AS provider, g.key_scope AS scope,
       COALESCE(k.fingerprint, '(unbound)') AS fingerprint,
       COUNT(*) FILTER (WHERE g.status = 'accepted') AS waiting,
       COUNT(*) FILTER (WHERE g.status IN ('submitting', 'submitted', 'completed')) AS running
FROM generations g
LEFT JOIN key_bindings k
  ON k.scope = g.key_scope AND k.tenant = g.key_tenant AND k.owner = g.key_owner
 AND k.provider = g.key_provider
WHERE g.status NOT IN ('delivered', 'failed')
GROUP BY g.key_scope, g.key_tenant, g.key_owner, g.key_provider, k.fingerprint
ORDER BY running DESC, waiting DESC
"""


# Linked teams and accounts (as storage.sqlite). A code is used at most once: only while
# unused and unexpired, of the kind asked for, made where it claims; the row lock makes a
# second use wait and then find it used.
_USE_CODE = (
    "UPDATE link_codes SET used_at = $1 WHERE code_hash = $2 AND kind = $3 AND tenant = $4"
    " AND used_at IS NULL AND expires_at > $1"
)
#: how long past their expiry used and expired codes are kept (to say "expired", not "unknown")
_CODE_MEMORY = 24 * 3600.0
# Where a generation is kept now: its tenant's team and its requester's linked account,
# else their own. Only rows whose home changes are written (``IS DISTINCT FROM``): a link
# change locks no other row.
_HOME = (
    "COALESCE((SELECT t.home FROM team_links t WHERE t.joined = generations.actor_tenant),"
    " generations.actor_tenant),"
    " COALESCE((SELECT p.home_tenant FROM person_links p WHERE p.tenant ="
    " generations.actor_tenant AND p.user_id = generations.actor_user_id),"
    " generations.actor_tenant),"
    " COALESCE((SELECT p.home_user_id FROM person_links p WHERE p.tenant ="
    " generations.actor_tenant AND p.user_id = generations.actor_user_id),"
    " generations.actor_user_id)"
)


def _rehome(where: str) -> str:
    """The home of the generations ``where`` selects, recomputed from the links tables."""
    return (
        f"UPDATE generations SET (home_team, home_tenant, home_user_id) = ROW({_HOME})"  # noqa: S608
        f" WHERE ({where}) AND (home_team, home_tenant, home_user_id) IS DISTINCT FROM"
        f" ({_HOME})"
    )


#: a team link made or removed: the two tenants' generations ($1, $2: the tenants)
_REHOME_TENANTS = _rehome("actor_tenant IN ($1, $2)")
#: a person link made or removed: the two accounts' generations ($1-$4: tenant, user twice)
_REHOME_ACCOUNTS = _rehome(
    "(actor_tenant = $1 AND actor_user_id = $2) OR (actor_tenant = $3 AND actor_user_id = $4)"
)
#: a generation just stored, whatever home it was resolved to before a link changed
_REHOME_ONE = _rehome("id = $1")
_PERSON_LINK_COLUMNS = "home_tenant, home_user_id, tenant, user_id, linked_at"
_OF_ACCOUNT = " WHERE (tenant = $1 AND user_id = $2) OR (home_tenant = $1 AND home_user_id = $2)"


class _NotLinked(Exception):
    """A link's conditions did not hold inside its transaction: roll it back."""


def _generation_values(generation: Generation) -> list[object]:
    row = rows.generation_to_row(generation)
    return [row[c] for c in _COLUMNS]


def _update_values(generation: Generation) -> list[object]:
    """``$1`` the id, then :data:`_UPDATE_COLUMNS`."""
    row = rows.generation_to_row(generation)
    return [row["id"], *(row[c] for c in _UPDATE_COLUMNS)]


def _count(status: str) -> int:
    """The row count of a command status (``UPDATE 3`` -> 3)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# --- the store ---------------------------------------------------------------------------


class PostgresStore:
    """:class:`tmbot.ports.Store` on an asyncpg pool. Build it with :meth:`open`."""

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        control: asyncpg.Connection[Any],
        *,
        target: PostgresUrl,
        now: Callable[[], float] = time.time,
        exclusive: bool = False,
    ) -> None:
        self._pool = pool
        self._control = control
        self._target = target
        self._now = now
        self._exclusive = exclusive
        self._control_lock = asyncio.Lock()
        self._closed = False
        self._settings: dict[str, str] = {}
        self._lost = asyncio.Event()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        now: Callable[[], float] = time.time,
        exclusive: bool = False,
        shared: bool = False,
        read_only: bool = False,
        pool_size: int = POOL_SIZE,
    ) -> PostgresStore:
        """Connect to the database a ``postgresql://`` URL names and migrate it.

        ``exclusive`` holds the database's engine lock until :meth:`close`: alone (``tmbot
        migrate-db``: refused, :class:`DatabaseInUse`, while anything else holds it) or
        ``shared`` (engines: any number of them). ``read_only`` is for looking beside a
        running bot (``tmbot status``): nothing locked or migrated, every transaction
        read-only, and a schema this tmbot does not read is refused. Failures are one
        :class:`ConfigError` sentence that names host and port, never the URL."""
        target = parse_url(url)
        settings = _server_settings(read_only=read_only)
        try:
            control: asyncpg.Connection[Any] = await asyncpg.connect(
                target.dsn,
                timeout=CONNECT_TIMEOUT,
                server_settings={**settings, **CONTROL_KEEPALIVE},
            )
        except _CONNECT_ERRORS as exc:
            raise _unreachable(exc, target) from None
        except ValueError:
            raise ConfigError(
                "TMBOT_DATABASE_URL is not a valid PostgreSQL URL (an option in it is not "
                "understood); use postgresql://user:password@host:5432/database."
            ) from None
        try:
            if read_only:
                schema, latest = await _schema_version(control), latest_schema()
                if schema != latest:
                    raise ConfigError(
                        f"{target.shown[0].upper()}{target.shown[1:]} is at schema {schema} "
                        f"and this tmbot reads {latest}; start the bot once (it migrates the "
                        "database) or use the matching tmbot."
                    )
            else:
                if exclusive:
                    await _take_engine_lock(control, target, shared=shared)
                await _migrate(control, load_migrations(), now=now())
            pool = await asyncpg.create_pool(
                target.dsn,
                min_size=1,
                max_size=pool_size,
                timeout=CONNECT_TIMEOUT,
                server_settings=settings,
                reset=_keep_session,
            )
        except _CONNECT_ERRORS as exc:
            await control.close()
            raise _unreachable(exc, target) from None
        except BaseException:
            await control.close()
            raise
        store = cls(pool, control, target=target, now=now, exclusive=exclusive and not read_only)
        store._settings = settings
        if store._exclusive:
            control.add_termination_listener(store._control_ended)
            if control.is_closed():  # it ended before the listener was there
                store._lost.set()
        return store

    @property
    def target(self) -> PostgresUrl:
        return self._target

    def coordinator(self) -> PostgresCoordinator:
        """Work sharing with the other processes on this database (:mod:`storage.lanes`):
        it listens on this store's control connection and writes through its pool."""
        return PostgresCoordinator(
            self._pool, self._control, self._control_lock, self._target.dsn, self._settings
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            try:  # waits for calls still running; past the bound, connections are cut
                await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("store calls still running after %g s; closing anyway", CLOSE_TIMEOUT)
                self._pool.terminate()
        finally:
            if self._exclusive:  # an orderly close is not a lost lock
                self._control.remove_termination_listener(self._control_ended)
            try:
                await self._control.close()  # ends the session: the engine lock is released
            except (*_CONNECT_ERRORS, asyncpg.InternalClientError):
                self._control.terminate()  # already broken: nothing to say goodbye to

    def _control_ended(self, conn: object) -> None:
        """The control connection ended while the store was open: the server has dropped
        the engine lock with its session, so another engine may start now."""
        self._lost.set()

    async def lock_lost(self) -> None:
        """Return once the engine lock (``exclusive``) has been lost: its connection ended
        while the store was open. Without the lock (not ``exclusive``), never."""
        await self._lost.wait()

    async def ping(self) -> bool:
        """True when the pool answers and, for the engine, the connection holding its lock
        is still open."""
        if self._closed:
            return False
        try:
            if self._exclusive:
                async with self._control_lock:  # one operation at a time on a connection
                    if await self._control.fetchval("SELECT 1") != 1:
                        return False
            return bool(await self._pool.fetchval("SELECT 1") == 1)
        except (*_CONNECT_ERRORS, asyncpg.InternalClientError):
            # the server ended the session (its lock went with it), or the connection broke
            return False

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[PoolConnectionProxy[Any]]:
        """One transaction on a connection of the pool."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """One read statement (its own implicit transaction)."""
        return list(await self._pool.fetch(sql, *args))

    # --- keys --------------------------------------------------------------------------

    async def put_key(self, binding: KeyBinding) -> None:
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO key_bindings ({_KEY_COLUMNS})"  # noqa: S608
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (scope, tenant, owner, provider) DO UPDATE SET"
                " ciphertext = excluded.ciphertext, fingerprint = excluded.fingerprint,"
                " created_at = excluded.created_at, balance = excluded.balance,"
                " balance_seen_at = excluded.balance_seen_at",
                *rows.key_binding_to_row(binding),
            )

    async def get_key(self, ref: KeyRef) -> KeyBinding | None:
        found = await self._fetch(
            f"SELECT {_KEY_COLUMNS} FROM key_bindings"  # noqa: S608
            " WHERE scope = $1 AND tenant = $2 AND owner = $3 AND provider = $4",
            *rows.key_params(ref),
        )
        return rows.key_binding_from_row(found[0]) if found else None

    async def list_keys(self, tenant: str | None = None) -> list[KeyBinding]:
        found = await self._fetch(
            f"SELECT {_KEY_COLUMNS} FROM key_bindings"  # noqa: S608
            " WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, scope, owner, provider",
            tenant,
        )
        return [rows.key_binding_from_row(row) for row in found]

    async def delete_key(self, ref: KeyRef) -> bool:
        async with self._write() as conn:
            status = await conn.execute(
                "DELETE FROM key_bindings"
                " WHERE scope = $1 AND tenant = $2 AND owner = $3 AND provider = $4",
                *rows.key_params(ref),
            )
            return _count(status) > 0

    async def record_balance(self, ref: KeyRef, *, remaining: float, seen_at: float) -> None:
        """Only an existing binding is updated, and only by a reading at least as new as the
        one it holds."""
        async with self._write() as conn:
            await conn.execute(
                "UPDATE key_bindings SET balance = $1, balance_seen_at = $2"
                " WHERE scope = $3 AND tenant = $4 AND owner = $5 AND provider = $6"
                " AND (balance_seen_at IS NULL OR balance_seen_at <= $2)",
                float(remaining),
                float(seen_at),
                *rows.key_params(ref),
            )

    # --- settings ----------------------------------------------------------------------

    async def get_settings(self, tenant: str, user_id: str) -> UserSettings:
        found = await self._fetch(
            "SELECT provider, model, aspect_ratio, resolution, taste FROM users"
            " WHERE tenant = $1 AND user_id = $2",
            tenant,
            user_id,
        )
        return rows.settings_from_row(found[0]) if found else UserSettings()

    async def put_settings(self, tenant: str, user_id: str, settings: UserSettings) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO users (tenant, user_id, provider, model, aspect_ratio, resolution,"
                " taste, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (tenant, user_id) DO UPDATE SET provider = excluded.provider,"
                " model = excluded.model, aspect_ratio = excluded.aspect_ratio,"
                " resolution = excluded.resolution, taste = excluded.taste,"
                " updated_at = excluded.updated_at",
                tenant,
                user_id,
                *rows.settings_to_row(settings),
                float(self._now()),
            )

    # --- team budgets and settings ------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        async with self._write() as conn:
            await conn.execute(
                f"INSERT INTO team_budgets ({_BUDGET_COLUMNS})"  # noqa: S608
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, target) DO UPDATE SET"
                " amount = excluded.amount, period = excluded.period,"
                " updated_at = excluded.updated_at",
                budget.tenant,
                budget.member,
                budget.amount,
                budget.period.value,
                float(budget.updated_at if budget.updated_at is not None else self._now()),
            )

    async def get_budget(self, tenant: str, member: str) -> Budget | None:
        found = await self._fetch(
            f"SELECT {_BUDGET_COLUMNS} FROM team_budgets"  # noqa: S608
            " WHERE tenant = $1 AND target = $2",
            tenant,
            member,
        )
        return rows.budget_from_row(found[0]) if found else None

    async def delete_budget(self, tenant: str, member: str) -> bool:
        async with self._write() as conn:
            status = await conn.execute(
                "DELETE FROM team_budgets WHERE tenant = $1 AND target = $2", tenant, member
            )
            return _count(status) > 0

    async def list_budgets(self, tenant: str) -> list[Budget]:
        found = await self._fetch(
            f"SELECT {_BUDGET_COLUMNS} FROM team_budgets"  # noqa: S608
            " WHERE tenant = $1 ORDER BY target",
            tenant,
        )
        return [rows.budget_from_row(row) for row in found]

    async def set_request_channel(
        self, tenant: str, channel: str, *, enabled: bool, by: str, at: float
    ) -> bool:
        async with self._write() as conn:
            if enabled:
                status = await conn.execute(
                    "INSERT INTO request_channels (tenant, channel, added_by, added_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, channel) DO NOTHING",
                    tenant,
                    channel,
                    by,
                    float(at),
                )
            else:
                status = await conn.execute(
                    "DELETE FROM request_channels WHERE tenant = $1 AND channel = $2",
                    tenant,
                    channel,
                )
            return _count(status) > 0

    async def request_channels(self, tenant: str) -> list[str]:
        found = await self._fetch(
            "SELECT channel FROM request_channels WHERE tenant = $1 ORDER BY added_at, channel",
            tenant,
        )
        return [str(row["channel"]) for row in found]

    async def is_request_channel(self, tenant: str, channel: str) -> bool:
        found = await self._fetch(
            "SELECT 1 FROM request_channels WHERE tenant = $1 AND channel = $2", tenant, channel
        )
        return bool(found)

    # --- credit use --------------------------------------------------------------------

    async def spend(
        self, tenant: str, user_id: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> Spend:
        found = await self._fetch(
            _SPEND, tenant, scope.value, provider.value, float(since), user_id
        )
        return Spend(credits=float(found[0]["credits"]), images=int(found[0]["images"]))

    async def spend_by_member(
        self, tenant: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> dict[str, Spend]:
        found = await self._fetch(
            _SPEND_BY_MEMBER, tenant, scope.value, provider.value, float(since)
        )
        return {
            str(row["home_user_id"]): Spend(
                credits=float(row["credits"]), images=int(row["images"])
            )
            for row in found
        }

    async def pending_cost(self, ref: KeyRef) -> float:
        found = await self._fetch(
            "SELECT COALESCE(SUM(COALESCE(cost, 0)), 0) AS reserved FROM generations"
            " WHERE key_scope = $1 AND key_tenant = $2 AND key_owner = $3 AND key_provider = $4"
            " AND status = ANY($5::text[])",
            *rows.key_params(ref),
            [GenStatus.ACCEPTED.value, GenStatus.SUBMITTING.value],
        )
        return float(found[0]["reserved"])

    # --- generations -------------------------------------------------------------------

    async def insert_generation(
        self, generation: Generation, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry]:
        """Raises :class:`asyncpg.UniqueViolationError` if the id is already stored."""
        async with self._write() as conn:
            await conn.execute(_INSERT_GENERATION, *_generation_values(generation))
            await conn.execute(_REHOME_ONE, generation.id)  # the links as they are now
            return await self._append(conn, generation.id, generation.place.platform, events)

    async def transition(
        self, generation: Generation, *, expect: GenStatus, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry] | None:
        async with self._write() as conn:
            status = await conn.execute(
                _TRANSITION_GENERATION, *_update_values(generation), expect.value
            )
            if _count(status) == 0:
                return None
            return await self._append(conn, generation.id, generation.place.platform, events)

    async def update_generation(self, generation: Generation) -> None:
        """Replace the stored row with the same id; :class:`NotFound` if there is none."""
        async with self._write() as conn:
            status = await conn.execute(_UPDATE_GENERATION, *_update_values(generation))
            if _count(status) == 0:
                raise NotFound("That generation no longer exists.")

    async def get_generation(self, generation_id: str) -> Generation | None:
        found = await self._fetch(_SELECT_GENERATION + " WHERE id = $1", generation_id)
        return rows.generation_from_row(found[0]) if found else None

    async def unfinished_generations(self) -> list[Generation]:
        found = await self._fetch(
            _SELECT_GENERATION + " WHERE status <> ALL($1::text[]) ORDER BY created_at, id",
            _FINAL,
        )
        return [rows.generation_from_row(row) for row in found]

    async def recent_generations(
        self, tenant: str, user_id: str, *, limit: int = 10
    ) -> list[Generation]:
        if limit <= 0:
            return []
        found = await self._fetch(
            _SELECT_GENERATION + " WHERE home_tenant = $1 AND home_user_id = $2"
            " ORDER BY created_at DESC, id DESC LIMIT $3",
            tenant,
            user_id,
            limit,
        )
        return [rows.generation_from_row(row) for row in found]

    # --- platform messages -------------------------------------------------------------

    async def link_message(self, link: MessageLink) -> None:
        """Insert or re-point the link; :class:`NotFound` if the generation is not stored."""
        try:
            async with self._write() as conn:
                await conn.execute(_UPSERT_LINK, *rows.message_link_to_row(link))
        except asyncpg.ForeignKeyViolationError:
            raise NotFound("That generation no longer exists.") from None

    async def generation_for_message(
        self, platform: str, channel: str, message_id: str
    ) -> str | None:
        found = await self._fetch(
            "SELECT generation_id FROM message_links"
            " WHERE platform = $1 AND channel = $2 AND message_id = $3",
            platform,
            channel,
            message_id,
        )
        return str(found[0]["generation_id"]) if found else None

    async def messages_for_generation(self, generation_id: str) -> list[MessageLink]:
        found = await self._fetch(
            "SELECT platform, channel, message_id, generation_id, kind FROM message_links"
            " WHERE generation_id = $1 ORDER BY rowid",
            generation_id,
        )
        return [rows.message_link_from_row(row) for row in found]

    # --- the outbox --------------------------------------------------------------------

    async def _append(
        self,
        conn: PoolConnectionProxy[Any],
        generation_id: str,
        platform: str | None,
        events: Sequence[NewEvent],
    ) -> list[OutboxEntry]:
        """Append events after the generation's last one (inside a transaction). The
        generation's row is locked first, so two writers never number events alike."""
        if not events:
            return []
        stored = await conn.fetchval(
            "SELECT place_platform FROM generations WHERE id = $1 FOR UPDATE", generation_id
        )
        if stored is None:
            raise NotFound("That generation no longer exists.")
        platform = platform or str(stored)
        seq = int(
            await conn.fetchval(
                "SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE generation_id = $1",
                generation_id,
            )
        )
        now = float(self._now())
        made: list[OutboxEntry] = []
        for event in events:
            if event.replaces:
                await conn.execute(
                    "UPDATE outbox SET done_at = $1, error = 'replaced', blob = NULL"
                    " WHERE generation_id = $2 AND done_at IS NULL AND kind = ANY($3::text[])",
                    now,
                    generation_id,
                    list(event.replaces),
                )
            seq += 1
            entry_id = await conn.fetchval(
                "INSERT INTO outbox (generation_id, platform, seq, kind, payload, blob,"
                " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                generation_id,
                platform,
                seq,
                event.kind,
                json.dumps(dict(event.payload), ensure_ascii=False),
                event.blob,
                now,
            )
            made.append(
                OutboxEntry(
                    id=int(entry_id),
                    generation_id=generation_id,
                    platform=platform,
                    seq=seq,
                    kind=event.kind,
                    payload=event.payload,
                    has_blob=event.blob is not None,
                )
            )
        return made

    async def add_events(
        self,
        generation_id: str,
        events: Sequence[NewEvent],
        *,
        expect: GenStatus | None = None,
    ) -> list[OutboxEntry] | None:
        async with self._write() as conn:
            if expect is not None:
                status = await conn.fetchval(
                    "SELECT status FROM generations WHERE id = $1 FOR UPDATE", generation_id
                )
                if status != expect.value:
                    return None
            return await self._append(conn, generation_id, None, events)

    async def pending_events(
        self, platform: str, *, limit: int, generation_id: str | None = None
    ) -> list[OutboxEntry]:
        if generation_id is None:
            found = await self._fetch(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox"  # noqa: S608
                " WHERE platform = $1 AND done_at IS NULL ORDER BY id LIMIT $2",
                platform,
                limit,
            )
        else:
            found = await self._fetch(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox"  # noqa: S608
                " WHERE generation_id = $3 AND platform = $1 AND done_at IS NULL"
                " ORDER BY id LIMIT $2",
                platform,
                limit,
                generation_id,
            )
        return [rows.outbox_entry_from_row(row) for row in found]

    async def event_blob(self, entry_id: int) -> bytes | None:
        blob = await self._pool.fetchval("SELECT blob FROM outbox WHERE id = $1", entry_id)
        return bytes(blob) if blob is not None else None

    async def settle_events(self, outcomes: Sequence[EventOutcome]) -> None:
        if not outcomes:
            return
        now = float(self._now())
        links = [rows.message_link_to_row(link) for o in outcomes for link in o.links]
        done = [(now, o.error, o.attempts, o.entry_id) for o in outcomes if o.done]
        retry = [
            (o.attempts, float(o.next_attempt_at), o.error, o.entry_id)
            for o in outcomes
            if not o.done
        ]
        async with self._write() as conn:
            if links:
                await conn.executemany(_UPSERT_LINK, links)
            if done:
                await conn.executemany(
                    "UPDATE outbox SET done_at = $1, error = $2, attempts = $3, blob = NULL"
                    " WHERE id = $4 AND done_at IS NULL",
                    done,
                )
            if retry:
                await conn.executemany(
                    "UPDATE outbox SET attempts = $1, next_attempt_at = $2, error = $3"
                    " WHERE id = $4",
                    retry,
                )

    # --- operations --------------------------------------------------------------------

    async def overview(self, *, failures: int = 5) -> Overview:
        """One read-only snapshot (REPEATABLE READ): the four parts agree with each other."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            counts = await conn.fetch(
                "SELECT status, COUNT(*) AS n FROM generations GROUP BY status"
            )
            loads = await conn.fetch(_OVERVIEW_KEYS)
            waiting = await conn.fetch(
                "SELECT platform, COUNT(*) AS n FROM outbox WHERE done_at IS NULL GROUP BY platform"
            )
            failed = await conn.fetch(
                _SELECT_GENERATION + " WHERE status = 'failed' ORDER BY updated_at DESC LIMIT $1",
                failures,
            )
        return Overview(
            by_status={GenStatus(row["status"]): int(row["n"]) for row in counts},
            keys=tuple(
                KeyLoad(
                    provider=ProviderName(row["provider"]),
                    scope=KeyScope(row["scope"]),
                    fingerprint=row["fingerprint"],
                    waiting=int(row["waiting"]),
                    running=int(row["running"]),
                )
                for row in loads
            ),
            undelivered_events={str(row["platform"]): int(row["n"]) for row in waiting},
            recent_failures=tuple(rows.generation_from_row(row) for row in failed),
        )

    # --- remembered platform events ----------------------------------------------------

    async def remember(
        self, scope: str, key: str, *, value: str, now: float, ttl: float
    ) -> str | None:
        """Insert, or replace an expired record (the row is locked either way, so a
        concurrent caller waits and then sees this one); the live record's value when there
        is one. Expired rows are swept a batch at a time, skipping rows others hold."""
        async with self._write() as conn:
            recorded = await conn.fetchval(
                "INSERT INTO seen (scope, key, value, expires_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,"
                " expires_at = excluded.expires_at WHERE seen.expires_at <= $5"
                " RETURNING 1",
                scope,
                key,
                value,
                float(now + ttl),
                float(now),
            )
            await conn.execute(
                "DELETE FROM seen WHERE ctid = ANY(ARRAY(SELECT ctid FROM seen"
                " WHERE expires_at <= $1 LIMIT 500 FOR UPDATE SKIP LOCKED))",
                float(now),
            )
            if recorded is not None:
                return None
            live = await conn.fetchval(
                "SELECT value FROM seen WHERE scope = $1 AND key = $2", scope, key
            )
            return str(live)

    async def forget(self, scope: str, key: str) -> None:
        async with self._write() as conn:
            await conn.execute("DELETE FROM seen WHERE scope = $1 AND key = $2", scope, key)

    # --- linked teams and accounts -----------------------------------------------------

    async def _links_changing(self, conn: PoolConnectionProxy[Any]) -> None:
        """Link changes run one at a time (a transaction lock): each checks that neither
        side is linked yet and then writes, which concurrent transactions could otherwise
        both pass (SQLite runs every write alone)."""
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, LINKS_LOCK)

    async def put_link_code(self, code: LinkCode) -> None:
        async with self._write() as conn:
            # codes a day past their expiry are forgotten (until then they are still told
            # apart from codes that never existed)
            await conn.execute(
                "DELETE FROM link_codes WHERE expires_at < $1",
                float(code.created_at - _CODE_MEMORY),
            )
            await conn.execute(
                "DELETE FROM link_codes"
                " WHERE tenant = $1 AND user_id = $2 AND kind = $3 AND used_at IS NULL",
                code.tenant,
                code.user_id,
                code.kind.value,
            )
            await conn.execute(
                "INSERT INTO link_codes (code_hash, kind, tenant, user_id, created_at,"
                " expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                code.code_hash,
                code.kind.value,
                code.tenant,
                code.user_id,
                float(code.created_at),
                float(code.expires_at),
                None if code.used_at is None else float(code.used_at),
            )

    async def get_link_code(self, code_hash: str) -> LinkCode | None:
        found = await self._fetch(
            "SELECT code_hash, kind, tenant, user_id, created_at, expires_at, used_at"
            " FROM link_codes WHERE code_hash = $1",
            code_hash,
        )
        if not found:
            return None
        row = found[0]
        return LinkCode(
            code_hash=row["code_hash"],
            kind=LinkKind(row["kind"]),
            tenant=row["tenant"],
            user_id=row["user_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            used_at=row["used_at"],
        )

    async def team_link(self, tenant: str) -> TeamLink | None:
        found = await self._fetch(
            "SELECT home, joined, linked_by, linked_at FROM team_links"
            " WHERE joined = $1 OR home = $1",
            tenant,
        )
        return rows.team_link_from_row(found[0]) if found else None

    async def link_teams(self, link: TeamLink, *, code_hash: str, now: float) -> bool:
        try:
            async with self._write() as conn:
                await self._links_changing(conn)
                used = await conn.execute(_USE_CODE, float(now), code_hash, "team", link.home)
                if _count(used) != 1:
                    raise _NotLinked
                made = await conn.execute(
                    "INSERT INTO team_links (joined, home, linked_by, linked_at)"
                    " SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM team_links"
                    " WHERE joined IN ($1, $2) OR home IN ($1, $2))",
                    link.joined,
                    link.home,
                    link.linked_by,
                    float(link.linked_at),
                )
                if _count(made) != 1:
                    raise _NotLinked
                await conn.execute(_REHOME_TENANTS, link.home, link.joined)
        except _NotLinked:
            return False
        return True

    async def unlink_teams(self, tenant: str) -> TeamLink | None:
        async with self._write() as conn:
            await self._links_changing(conn)
            found = await conn.fetch(
                "SELECT home, joined, linked_by, linked_at FROM team_links"
                " WHERE joined = $1 OR home = $1",
                tenant,
            )
            if not found:
                return None
            link = rows.team_link_from_row(found[0])
            await conn.execute(
                "DELETE FROM person_links WHERE tenant IN ($1, $2) OR home_tenant IN ($1, $2)",
                link.home,
                link.joined,
            )
            await conn.execute("DELETE FROM team_links WHERE joined = $1", link.joined)
            await conn.execute(_REHOME_TENANTS, link.home, link.joined)
            return link

    async def person_links(self, tenant: str, user_id: str) -> list[PersonLink]:
        found = await self._fetch(
            f"SELECT {_PERSON_LINK_COLUMNS} FROM person_links"  # noqa: S608
            + _OF_ACCOUNT
            + " ORDER BY linked_at",
            tenant,
            user_id,
        )
        return [rows.person_link_from_row(row) for row in found]

    async def link_people(self, link: PersonLink, *, code_hash: str, now: float) -> bool:
        try:
            async with self._write() as conn:
                await self._links_changing(conn)
                used = await conn.execute(
                    _USE_CODE + " AND user_id = $5",
                    float(now),
                    code_hash,
                    "person",
                    link.home_tenant,
                    link.home_user_id,
                )
                if _count(used) != 1:
                    raise _NotLinked
                made = await conn.execute(
                    "INSERT INTO person_links (tenant, user_id, home_tenant, home_user_id,"
                    " linked_at) SELECT $1, $2, $3, $4, $5"
                    " WHERE EXISTS (SELECT 1 FROM team_links"
                    "   WHERE (home = $3 AND joined = $1) OR (joined = $3 AND home = $1))"
                    " AND NOT EXISTS (SELECT 1 FROM person_links"
                    "   WHERE (tenant = $1 AND user_id = $2)"
                    "   OR (home_tenant = $1 AND home_user_id = $2)"
                    "   OR (tenant = $3 AND user_id = $4)"
                    "   OR (home_tenant = $3 AND home_user_id = $4))",
                    link.tenant,
                    link.user_id,
                    link.home_tenant,
                    link.home_user_id,
                    float(link.linked_at),
                )
                if _count(made) != 1:
                    raise _NotLinked
                await conn.execute(
                    _REHOME_ACCOUNTS,
                    link.home_tenant,
                    link.home_user_id,
                    link.tenant,
                    link.user_id,
                )
        except _NotLinked:
            return False
        return True

    async def unlink_people(self, tenant: str, user_id: str) -> list[PersonLink]:
        async with self._write() as conn:
            await self._links_changing(conn)
            found = await conn.fetch(
                f"SELECT {_PERSON_LINK_COLUMNS} FROM person_links"  # noqa: S608
                + _OF_ACCOUNT
                + " ORDER BY linked_at",
                tenant,
                user_id,
            )
            links = [rows.person_link_from_row(row) for row in found]
            if links:
                await conn.execute(
                    "DELETE FROM person_links" + _OF_ACCOUNT,  # noqa: S608
                    tenant,
                    user_id,
                )
            for link in links:
                await conn.execute(
                    _REHOME_ACCOUNTS,
                    link.home_tenant,
                    link.home_user_id,
                    link.tenant,
                    link.user_id,
                )
            return links

    async def resolve_home(self, tenant: str, user_id: str) -> Home | None:
        found = await self._fetch(
            "SELECT"
            " (SELECT home FROM team_links WHERE joined = $1) AS team,"
            " (SELECT home_tenant FROM person_links"
            "   WHERE tenant = $1 AND user_id = $2) AS home_tenant,"
            " (SELECT home_user_id FROM person_links"
            "   WHERE tenant = $1 AND user_id = $2) AS home_user_id",
            tenant,
            user_id,
        )
        row = found[0]
        if row["team"] is None and row["home_tenant"] is None:
            return None
        return Home(
            team=row["team"] or tenant,
            tenant=row["home_tenant"] or tenant,
            user_id=row["home_user_id"] or user_id,
        )

    # --- migrate-db -------------------------------------------------------------------

    async def table_columns(self) -> dict[str, list[str]]:
        """Every tmbot table (not ``schema_version``) and its columns, in table order."""
        found = await self._fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'schema_version'"
            " ORDER BY table_name, ordinal_position"
        )
        tables: dict[str, list[str]] = {}
        for row in found:
            tables.setdefault(str(row["table_name"]), []).append(str(row["column_name"]))
        return tables

    async def row_counts(self) -> dict[str, int]:
        """How many rows each tmbot table holds (one snapshot)."""
        tables = await self.table_columns()
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return {
                table: int(await conn.fetchval(f"SELECT COUNT(*) FROM {_ident(table)}"))  # noqa: S608
                for table in tables
            }

    async def load_tables(
        self,
        tables: Iterable[tuple[str, Sequence[str], Iterable[Sequence[tuple[object, ...]]]]],
    ) -> dict[str, int]:
        """Copy rows in (COPY, binary) for each ``(table, columns, batches)``, all in one
        transaction; then every identity column continues after the largest value copied.
        The rows copied per table."""
        counts: dict[str, int] = {}
        async with self._write() as conn:
            for table, columns, batches in tables:
                counts[table] = 0
                for batch in batches:
                    await conn.copy_records_to_table(table, records=batch, columns=list(columns))
                    counts[table] += len(batch)
            identities = await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND is_identity = 'YES'"
            )
            for row in identities:
                table, column = _ident(row["table_name"]), _ident(row["column_name"])
                await conn.execute(
                    "SELECT setval(pg_get_serial_sequence($1, $2),"  # noqa: S608
                    f" (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)",
                    row["table_name"],
                    row["column_name"],
                )
        return counts


def _ident(name: str) -> str:
    """A catalog name as a quoted SQL identifier (names only, never values)."""
    return '"' + name.replace('"', '""') + '"'


if TYPE_CHECKING:

    def _is_a_store(store: PostgresStore) -> Store:
        """mypy proves PostgresStore satisfies the Protocol."""
        return store
