"""The embedded default :class:`tmbot.ports.Store`: SQLite through aiosqlite.

One connection per store, in WAL mode, with foreign keys on. aiosqlite runs that connection in
its own thread. Every Store call is one function run on that thread, and they are taken there
in the order they were made by one task, a batch per trip (**group commit**): the writes of a
batch share one ``BEGIN IMMEDIATE`` … ``COMMIT``, each inside a savepoint of its own, so a
write that raises is undone alone while the others commit, and nobody hears "done" before the
COMMIT. A read sees every write made before it. Under load a thousand writes cost a few trips
and a few commits instead of a thread hop per statement; alone, a write is one trip.

The schema lives in numbered files ``storage/migrations/NNN_name.sql`` (package data). At open
every file whose version is not yet in ``schema_version`` is applied in order, each inside its
own transaction together with its ``schema_version`` row, so re-opening applies nothing new.

The store never sees a raw API key: key bindings hold Fernet ciphertext and a fingerprint only
(see :mod:`tmbot.vault`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from asyncio import Future
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import unquote

import aiosqlite

from storage import rows
from storage.lock import DatabaseLock
from tmbot.domain import Home, ProviderName
from tmbot.errors import ConfigError, NotFound
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

#: Where the database lives when ``TMBOT_DATABASE_URL`` is not set (relative to the cwd).
DEFAULT_DATABASE_URL = "sqlite:///tmbot.db"

#: SQLite's name for a private in-memory database (no file, no WAL).
MEMORY = ":memory:"

#: How long a writer waits for another connection's write lock before failing.
BUSY_TIMEOUT_MS = 5000

#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"

_URL_PREFIX = "sqlite:///"
_MIGRATION_NAME = re.compile(r"(?P<version>\d+)_(?P<name>[A-Za-z0-9_]+)\.sql")
_FINAL = (GenStatus.DELIVERED.value, GenStatus.FAILED.value)


# --- configuration ---------------------------------------------------------------------


def path_from_url(url: str) -> Path:
    """The database file named by a ``sqlite:///…`` URL.

    ``sqlite:///relative/path.db`` is relative to the working directory,
    ``sqlite:////abs/path.db`` is absolute, ``sqlite:///:memory:`` is an in-memory database.
    Anything else is a :class:`ConfigError` (which never repeats the URL: it may hold a
    password).
    """
    url = url.strip()
    if not url.startswith(_URL_PREFIX):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        what = f"'{scheme}' databases are not supported" if scheme else "it is not a URL"
        raise ConfigError(
            f"TMBOT_DATABASE_URL must look like sqlite:///relative/path.db or "
            f"sqlite:////absolute/path.db; {what}."
        )
    rest = url[len(_URL_PREFIX) :]
    if "?" in rest or "#" in rest:
        raise ConfigError(
            "TMBOT_DATABASE_URL must name a file only (sqlite:///path.db); "
            "query options are not supported."
        )
    path = unquote(rest)
    if not path or path.endswith("/"):
        raise ConfigError("TMBOT_DATABASE_URL must name a database file, e.g. sqlite:///tmbot.db.")
    return Path(path)


# --- migrations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file split into single statements (semicolons in strings, comments and
        trigger bodies are respected, courtesy of :func:`sqlite3.complete_statement`)."""
        out: list[str] = []
        start = 0
        for index, char in enumerate(self.sql):
            if char != ";":
                continue
            candidate = self.sql[start : index + 1]
            if sqlite3.complete_statement(candidate):
                if _has_code(candidate):
                    out.append(candidate.strip())
                start = index + 1
        tail = self.sql[start:]
        if _has_code(tail):
            raise ValueError(f"migration {self.version:03d} ends with an unterminated statement")
        return out


def _has_code(sql: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return any(line and line != ";" for line in lines)


def load_migrations() -> list[Migration]:
    """Every ``storage/migrations/NNN_name.sql`` shipped with the package, in version order.

    Versions must be unique and run 1, 2, 3, … without gaps.
    """
    folder = resources.files("storage").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            raise ValueError(f"migration file name {entry.name!r} is not NNN_name.sql")
        found.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(f"migration versions must be 1..n without gaps or repeats: {versions}")
    return found


_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""


async def _migrate(
    db: aiosqlite.Connection, migrations: Sequence[Migration], *, now: float
) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied now."""
    await db.execute(_SCHEMA_VERSION_TABLE)
    rows = await db.execute_fetchall("SELECT MAX(version) FROM schema_version")
    newest = next(iter(rows))[0]
    known = migrations[-1].version if migrations else 0
    if newest is not None and newest > known:
        raise ConfigError(
            f"This database was written by a newer tmbot (schema version {newest}; this one "
            f"knows up to {known}); upgrade tmbot before using it."
        )
    applied: list[int] = []
    for migration in migrations:
        # Checked again inside the write transaction, so two processes opening the same new
        # database at once cannot both apply a migration.
        await db.execute("BEGIN IMMEDIATE")
        try:
            done = await db.execute_fetchall(
                "SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)
            )
            if not list(done):
                for statement in migration.statements():
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now),
                )
                applied.append(migration.version)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
    if applied:
        log.info("database schema migrated to version %d", applied[-1])
    return applied


def stored_schema(path: Path) -> int | None:
    """The schema version a database file holds, read only (None: no database there yet; 0:
    not a tmbot database). For checks (``tmbot doctor``) that neither lock nor migrate."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT MAX(version) FROM schema_version").fetchall()
    except sqlite3.Error:
        return 0
    return int(rows[0][0] or 0)


def latest_schema() -> int:
    migrations = load_migrations()
    return migrations[-1].version if migrations else 0


# --- rows <-> records: storage.rows (shared with storage.postgres) -------------------

_key_binding_to_row = rows.key_binding_to_row
_key_ref_from_row = rows.key_ref_from_row
_key_binding_from_row = rows.key_binding_from_row
_settings_to_row = rows.settings_to_row
_settings_from_row = rows.settings_from_row
_GENERATION_COLUMNS = rows.GENERATION_COLUMNS
_HOME_COLUMNS = rows.HOME_COLUMNS
_generation_to_row = rows.generation_to_row
_generation_from_row = rows.generation_from_row
_message_link_to_row = rows.message_link_to_row
_message_link_from_row = rows.message_link_from_row
_outbox_entry_from_row = rows.outbox_entry_from_row
_budget_from_row = rows.budget_from_row
_key_params = rows.key_params
_team_link_from_row = rows.team_link_from_row
_person_link_from_row = rows.person_link_from_row

_UPSERT_LINK = """
INSERT INTO message_links (platform, channel, message_id, generation_id, kind)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (platform, channel, message_id) DO UPDATE SET
    generation_id = excluded.generation_id,
    kind = excluded.kind
"""

# Built once from the constant column names above (identifiers, never values: every value is
# a bound parameter).
_INSERT_GENERATION = (
    "INSERT INTO generations ("  # noqa: S608
    + ", ".join(_GENERATION_COLUMNS)
    + ") VALUES ("
    + ", ".join(f":{c}" for c in _GENERATION_COLUMNS)
    + ")"
)
_UPDATE_GENERATION = (
    "UPDATE generations SET "  # noqa: S608
    + ", ".join(f"{c} = :{c}" for c in _GENERATION_COLUMNS if c not in ("id", *_HOME_COLUMNS))
    + " WHERE id = :id"
)
_TRANSITION_GENERATION = _UPDATE_GENERATION + " AND status = :expect"
_OUTBOX_COLUMNS = (
    "id, generation_id, platform, seq, kind, payload, attempts, next_attempt_at,"
    " blob IS NOT NULL AS has_blob"
)
_SELECT_GENERATION = "SELECT " + ", ".join(_GENERATION_COLUMNS) + " FROM generations"  # noqa: S608

# The ledger rule of tmbot.records, per generation row: a failed generation counts only what
# the provider reported charging; any other counts the reported charge, else its price.
_SPENT_CREDITS = (
    "COALESCE(SUM(CASE WHEN status = 'failed' THEN COALESCE(credits_consumed, 0)"
    " ELSE COALESCE(credits_consumed, cost, 0) END), 0)"
)
_SPENT_IMAGES = (
    "COALESCE(SUM(CASE WHEN status = 'failed' AND credits_consumed IS NULL THEN 0 ELSE 1 END), 0)"
)
_SPEND_FROM = (
    " FROM generations WHERE key_tenant = ? AND key_scope = ? AND key_provider = ?"
    " AND created_at >= ?"
)
_SPEND = (
    f"SELECT {_SPENT_CREDITS} AS credits, {_SPENT_IMAGES} AS images"
    + _SPEND_FROM
    + " AND home_user_id = ?"
)
_SPEND_BY_MEMBER = (
    f"SELECT home_user_id, {_SPENT_CREDITS} AS credits, {_SPENT_IMAGES} AS images"
    + _SPEND_FROM
    + " GROUP BY home_user_id ORDER BY home_user_id"
)


# Linked teams and accounts. A code is used at most once: only while unused and unexpired,
# of the kind asked for, made where it claims (one statement, so two uses cannot both win).
_USE_CODE = (
    "UPDATE link_codes SET used_at = ? WHERE code_hash = ? AND kind = ? AND tenant = ?"
    " AND used_at IS NULL AND expires_at > ?"
)
#: how long past their expiry used and expired codes are kept (to say "expired", not "unknown")
_CODE_MEMORY = 24 * 3600.0
# Where a generation is kept now: its tenant's team and its requester's linked account,
# else their own. Only rows whose home changes are written (``IS NOT``: a link change leaves
# the rest of the table alone, and SQLite's write lock is held for as little as it can be).
_HOME_TEAM = (
    "COALESCE((SELECT t.home FROM team_links t WHERE t.joined = generations.actor_tenant),"
    " generations.actor_tenant)"
)
_HOME_TENANT = (
    "COALESCE((SELECT p.home_tenant FROM person_links p WHERE p.tenant ="
    " generations.actor_tenant AND p.user_id = generations.actor_user_id),"
    " generations.actor_tenant)"
)
_HOME_USER = (
    "COALESCE((SELECT p.home_user_id FROM person_links p WHERE p.tenant ="
    " generations.actor_tenant AND p.user_id = generations.actor_user_id),"
    " generations.actor_user_id)"
)


def _rehome(where: str) -> str:
    """The home of the generations ``where`` selects, recomputed from the links tables."""
    return (
        f"UPDATE generations SET home_team = {_HOME_TEAM}, home_tenant = {_HOME_TENANT},"  # noqa: S608
        f" home_user_id = {_HOME_USER} WHERE ({where}) AND (home_team IS NOT {_HOME_TEAM}"
        f" OR home_tenant IS NOT {_HOME_TENANT} OR home_user_id IS NOT {_HOME_USER})"
    )


#: a team link made or removed: the two tenants' generations (bound: the two tenants)
_REHOME_TENANTS = _rehome("actor_tenant IN (?, ?)")
#: a person link made or removed: the two accounts' generations (bound: tenant, user twice)
_REHOME_ACCOUNTS = _rehome(
    "(actor_tenant = ? AND actor_user_id = ?) OR (actor_tenant = ? AND actor_user_id = ?)"
)
#: a generation just stored, whatever home it was resolved to before a link changed
_REHOME_ONE = _rehome("id = ?")


class _NotLinked(Exception):
    """A link's conditions did not hold inside its transaction: roll it back."""


# --- opening ---------------------------------------------------------------------------


def prepare_database_file(path: Path) -> None:
    """Make sure ``path`` can hold the database: its folder exists and is writable (SQLite
    writes its WAL beside the file), and the file is either missing (then it is created
    empty, mode 0600, so the database and its WAL are private) or a SQLite database.
    Raises :class:`ConfigError` with one sentence otherwise."""
    if path.is_dir():
        raise ConfigError(
            f"TMBOT_DATABASE_URL names the folder {path}; name a database file in it, e.g. "
            f"sqlite:///{path / 'tmbot.db'}."
        )
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"TMBOT_DATABASE_URL names {path}, which is not a regular file; name a database "
            "file, e.g. sqlite:///tmbot.db."
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"The folder {folder} for the database cannot be created "
            f"({exc.strerror or 'unknown error'}); create it or name another place."
        ) from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The folder {folder} is not writable, and SQLite needs to write the database and "
            "its WAL file there; make it writable or name another place."
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(
            f"The database file {path} cannot be created ({exc.strerror or 'unknown error'})."
        ) from None
    else:
        os.close(fd)
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(
            f"The database file {path} cannot be read ({exc.strerror or 'unknown error'})."
        ) from None
    if header and header != SQLITE_HEADER:
        raise ConfigError(
            f"The file {path} is not a SQLite database; name another file in "
            "TMBOT_DATABASE_URL (tmbot creates it)."
        )


async def _connect(
    path: Path,
    *,
    memory: bool,
    migrations: Sequence[Migration],
    now: Callable[[], float],
    read_only: bool = False,
) -> aiosqlite.Connection:
    try:
        db = await aiosqlite.connect(
            f"file:{path}?mode=ro" if read_only else MEMORY if memory else str(path),
            isolation_level=None,  # autocommit; transactions are explicit BEGIN … COMMIT
            timeout=BUSY_TIMEOUT_MS / 1000,
            uri=read_only,
        )
    except sqlite3.Error as exc:
        raise ConfigError(f"The database {path} cannot be opened ({exc}).") from None
    try:
        db.row_factory = sqlite3.Row
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        if read_only:
            return db  # as it is: no journal mode set, nothing migrated
        if not memory:
            rows = await db.execute_fetchall("PRAGMA journal_mode = WAL")
            mode = str(next(iter(rows))[0]).lower()
            if mode != "wal":
                log.warning("SQLite refused WAL mode for %s (journal_mode=%s)", path, mode)
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
        if log.isEnabledFor(logging.DEBUG):
            # statements run in batches (functions), so aiosqlite's own log no longer shows
            # them: at DEBUG the connection logs every statement it runs
            await db.set_trace_callback(log.debug)
        await _migrate(db, migrations, now=now())
    except sqlite3.Error as exc:
        await db.close()
        raise ConfigError(f"The database {path} cannot be used ({exc}).") from None
    except BaseException:
        await db.close()
        raise
    return db


# --- the store -------------------------------------------------------------------------


#: Operations one trip to the connection's thread takes at most. Their callers all resume
#: in the same turn of the event loop when the trip returns, so this also bounds that turn.
MAX_BATCH = 64

T = TypeVar("T")


@dataclass(frozen=True)
class _Op(Generic[T]):
    """One store operation waiting for its turn: a function run on the connection."""

    run: Callable[[sqlite3.Connection], T]
    write: bool
    future: Future[T]


def _run_batch(db: sqlite3.Connection, batch: Sequence[_Op[Any]]) -> list[tuple[bool, object]]:
    """Run a batch on the connection's thread: every write inside one ``BEGIN IMMEDIATE`` …
    ``COMMIT``, each in a savepoint of its own (a write that raises is rolled back alone and
    gets its exception; the rest commit); reads run in their place in the order. If BEGIN
    or COMMIT fails the whole transaction is rolled back and the exception is raised (every
    operation of the batch gets it)."""
    writes = any(op.write for op in batch)
    outcomes: list[tuple[bool, object]] = []
    if writes:
        db.execute("BEGIN IMMEDIATE")
    try:
        for op in batch:
            if op.write:
                db.execute("SAVEPOINT op")
            try:
                value = op.run(db)
            except Exception as exc:
                if op.write:
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                outcomes.append((False, exc))
                continue
            if op.write:
                db.execute("RELEASE op")
            outcomes.append((True, value))
        if writes:
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


async def run_on_connection(
    db: aiosqlite.Connection, function: Callable[..., T], *args: object
) -> T:
    """``function(connection, *args)`` on the aiosqlite connection's own thread, in one trip.

    aiosqlite sends each of its calls (every ``execute``, ``commit`` …) to that thread
    separately; its ``_execute`` is what they are built on, and it takes any function. A
    whole transaction as one function is one trip instead of one per statement."""
    execute: Callable[[Callable[[], T]], Awaitable[T]] = db._execute
    return await execute(lambda: function(db._conn, *args))


class SqliteStore:
    """:class:`tmbot.ports.Store` on one aiosqlite connection. Build it with :meth:`open`."""

    def __init__(
        self, db: aiosqlite.Connection, *, path: Path, now: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._path = path
        self._now = now
        self._pending: list[_Op[Any]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._db_lock: DatabaseLock | None = None

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        now: Callable[[], float] = time.time,
        exclusive: bool = False,
        read_only: bool = False,
    ) -> SqliteStore:
        """Open (creating it, mode 0600, and its folder if needed) and migrate the database at
        ``path``.

        ``":memory:"`` gives a private in-memory database. ``now`` stamps ``updated_at`` and
        ``applied_at`` columns (wall-clock epoch seconds). ``exclusive`` is for the engine:
        it takes the database's lock (:mod:`storage.lock`) until :meth:`close`, so a second
        engine on the same file is refused, and refuses an in-memory database. A path that
        cannot hold a database is a :class:`ConfigError`, one sentence. ``read_only`` is for
        looking beside a running bot (``tmbot status``, ``doctor``): an existing file is
        read as it is — nothing created, locked or migrated, every write refused.
        """
        path = Path(path)
        if read_only:
            db = await _connect(path, memory=False, migrations=(), now=now, read_only=True)
            return cls(db, path=path, now=now)
        memory = str(path) == MEMORY
        lock: DatabaseLock | None = None
        if memory and exclusive:
            raise ConfigError(
                "TMBOT_DATABASE_URL names an in-memory database, which would forget every key "
                "and image when tmbot stops; name a file, e.g. sqlite:///tmbot.db."
            )
        if not memory:
            await asyncio.to_thread(prepare_database_file, path)
            if exclusive:
                lock = await asyncio.to_thread(DatabaseLock.acquire, path)
        try:
            migrations = await asyncio.to_thread(load_migrations)
            db = await _connect(path, memory=memory, migrations=migrations, now=now)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store = cls(db, path=path, now=now)
        store._db_lock = lock
        return store

    @classmethod
    async def from_url(
        cls, url: str = DEFAULT_DATABASE_URL, *, now: Callable[[], float] = time.time
    ) -> SqliteStore:
        """:meth:`open` the database a ``sqlite:///…`` URL names (see :func:`path_from_url`)."""
        return await cls.open(path_from_url(url), now=now)

    @property
    def path(self) -> Path:
        return self._path

    async def close(self) -> None:
        """Finish what was submitted, then close the connection (and release the lock)."""
        if self._closed:
            return
        self._closed = True
        try:
            drainer = self._drainer
            if drainer is not None:
                await asyncio.shield(drainer)
            await self._db.close()
        finally:
            if self._db_lock is not None:
                self._db_lock.release()

    async def lock_lost(self) -> None:
        """Never returns: the file lock (:mod:`storage.lock`) is this process's until it
        releases it or ends."""
        await asyncio.Event().wait()

    async def ping(self) -> bool:
        rows = await self._fetch("SELECT 1")
        return bool(rows) and not self._closed

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- plumbing ----------------------------------------------------------------------

    def _submit(self, run: Callable[[sqlite3.Connection], T], *, write: bool) -> Future[T]:
        if self._closed:
            raise ValueError("The store is closed.")
        future: Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(run, write, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="sqlite-group-commit")
        return future

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``run`` on the connection inside a write transaction. Writes waiting together
        share one transaction and one trip to the connection's thread (group commit); each
        is its own savepoint, so one that raises is undone alone and the others commit.
        The result comes back once the transaction is committed."""
        return await self._submit(run, write=True)

    async def _read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``run`` on the connection, in order with the writes (it sees every write
        submitted before it)."""
        return await self._submit(run, write=False)

    async def _fetch(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        """One read statement."""
        values = tuple(params)
        return await self._read(lambda db: db.execute(sql, values).fetchall())

    async def _drain(self) -> None:
        """The one task that takes the waiting operations to the connection, a batch per
        trip, until none is left (the next submit starts it again)."""
        try:
            while self._pending:
                batch = [op for op in self._pending[:MAX_BATCH] if not op.future.cancelled()]
                del self._pending[:MAX_BATCH]
                if not batch:
                    continue
                try:
                    outcomes = await run_on_connection(self._db, _run_batch, batch)
                except asyncio.CancelledError:
                    for op in batch:
                        op.future.cancel()
                    raise
                except Exception as exc:  # BEGIN or COMMIT failed: nothing of it was written
                    for op in batch:
                        if not op.future.done():
                            op.future.set_exception(exc)
                    continue
                for op, (ok, value) in zip(batch, outcomes, strict=True):
                    if op.future.done():
                        continue
                    if ok:
                        op.future.set_result(value)
                    elif isinstance(value, BaseException):
                        op.future.set_exception(value)
        finally:
            self._drainer = None
            for op in self._pending if self._closed else ():
                if not op.future.done():
                    op.future.set_exception(ValueError("The store is closed."))

    # --- keys --------------------------------------------------------------------------

    async def put_key(self, binding: KeyBinding) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                """
                INSERT INTO key_bindings (scope, tenant, owner, provider, ciphertext,
                                          fingerprint, created_at, balance, balance_seen_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (scope, tenant, owner, provider) DO UPDATE SET
                    ciphertext = excluded.ciphertext,
                    fingerprint = excluded.fingerprint,
                    created_at = excluded.created_at,
                    balance = excluded.balance,
                    balance_seen_at = excluded.balance_seen_at
                """,
                _key_binding_to_row(binding),
            )

        return await self._write(run)

    async def get_key(self, ref: KeyRef) -> KeyBinding | None:
        rows = await self._fetch(
            """
            SELECT scope, tenant, owner, provider, ciphertext, fingerprint, created_at,
                   balance, balance_seen_at
            FROM key_bindings
            WHERE scope = ? AND tenant = ? AND owner = ? AND provider = ?
            """,
            _key_params(ref),
        )
        return _key_binding_from_row(rows[0]) if rows else None

    async def list_keys(self, tenant: str | None = None) -> list[KeyBinding]:
        rows = await self._fetch(
            """
            SELECT scope, tenant, owner, provider, ciphertext, fingerprint, created_at,
                   balance, balance_seen_at
            FROM key_bindings
            WHERE ? IS NULL OR tenant = ?
            ORDER BY tenant, scope, owner, provider
            """,
            (tenant, tenant),
        )
        return [_key_binding_from_row(row) for row in rows]

    async def delete_key(self, ref: KeyRef) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM key_bindings"
                " WHERE scope = ? AND tenant = ? AND owner = ? AND provider = ?",
                _key_params(ref),
            )
            return cursor.rowcount > 0

        return await self._write(run)

    async def record_balance(self, ref: KeyRef, *, remaining: float, seen_at: float) -> None:
        """Only an existing binding is updated, and only by a reading at least as new as the
        one it holds (answers that arrive out of order do not roll the balance back)."""

        def run(db: sqlite3.Connection) -> None:
            db.execute(
                """
                UPDATE key_bindings SET balance = ?, balance_seen_at = ?
                WHERE scope = ? AND tenant = ? AND owner = ? AND provider = ?
                  AND (balance_seen_at IS NULL OR balance_seen_at <= ?)
                """,
                (remaining, seen_at, *_key_params(ref), seen_at),
            )

        return await self._write(run)

    # --- settings ----------------------------------------------------------------------

    async def get_settings(self, tenant: str, user_id: str) -> UserSettings:
        rows = await self._fetch(
            "SELECT provider, model, aspect_ratio, resolution, taste FROM users"
            " WHERE tenant = ? AND user_id = ?",
            (tenant, user_id),
        )
        return _settings_from_row(rows[0]) if rows else UserSettings()

    async def put_settings(self, tenant: str, user_id: str, settings: UserSettings) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                """
                INSERT INTO users (tenant, user_id, provider, model, aspect_ratio, resolution,
                                   taste, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (tenant, user_id) DO UPDATE SET
                    provider = excluded.provider,
                    model = excluded.model,
                    aspect_ratio = excluded.aspect_ratio,
                    resolution = excluded.resolution,
                    taste = excluded.taste,
                    updated_at = excluded.updated_at
                """,
                (tenant, user_id, *_settings_to_row(settings), self._now()),
            )

        return await self._write(run)

    # --- team budgets and settings ------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                """
                INSERT INTO team_budgets (tenant, target, amount, period, updated_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (tenant, target) DO UPDATE SET
                    amount = excluded.amount,
                    period = excluded.period,
                    updated_at = excluded.updated_at
                """,
                (
                    budget.tenant,
                    budget.member,
                    budget.amount,
                    budget.period.value,
                    budget.updated_at if budget.updated_at is not None else self._now(),
                ),
            )

        return await self._write(run)

    async def get_budget(self, tenant: str, member: str) -> Budget | None:
        rows = await self._fetch(
            "SELECT tenant, target, amount, period, updated_at FROM team_budgets"
            " WHERE tenant = ? AND target = ?",
            (tenant, member),
        )
        return _budget_from_row(rows[0]) if rows else None

    async def delete_budget(self, tenant: str, member: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "DELETE FROM team_budgets WHERE tenant = ? AND target = ?", (tenant, member)
            )
            return cursor.rowcount > 0

        return await self._write(run)

    async def list_budgets(self, tenant: str) -> list[Budget]:
        rows = await self._fetch(
            "SELECT tenant, target, amount, period, updated_at FROM team_budgets"
            " WHERE tenant = ? ORDER BY target",
            (tenant,),
        )
        return [_budget_from_row(row) for row in rows]

    async def set_request_channel(
        self, tenant: str, channel: str, *, enabled: bool, by: str, at: float
    ) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            if enabled:
                cursor = db.execute(
                    "INSERT INTO request_channels (tenant, channel, added_by, added_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (tenant, channel) DO NOTHING",
                    (tenant, channel, by, at),
                )
            else:
                cursor = db.execute(
                    "DELETE FROM request_channels WHERE tenant = ? AND channel = ?",
                    (tenant, channel),
                )
            return cursor.rowcount > 0

        return await self._write(run)

    async def request_channels(self, tenant: str) -> list[str]:
        rows = await self._fetch(
            "SELECT channel FROM request_channels WHERE tenant = ? ORDER BY added_at, channel",
            (tenant,),
        )
        return [str(row["channel"]) for row in rows]

    async def is_request_channel(self, tenant: str, channel: str) -> bool:
        rows = await self._fetch(
            "SELECT 1 FROM request_channels WHERE tenant = ? AND channel = ?", (tenant, channel)
        )
        return bool(rows)

    # --- credit use ----------------------------------------------------------------------

    async def spend(
        self, tenant: str, user_id: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> Spend:
        rows = await self._fetch(
            _SPEND,
            (tenant, scope.value, provider.value, since, user_id),
        )
        return Spend(credits=float(rows[0]["credits"]), images=int(rows[0]["images"]))

    async def spend_by_member(
        self, tenant: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> dict[str, Spend]:
        rows = await self._fetch(
            _SPEND_BY_MEMBER,
            (tenant, scope.value, provider.value, since),
        )
        return {
            str(row["home_user_id"]): Spend(
                credits=float(row["credits"]), images=int(row["images"])
            )
            for row in rows
        }

    async def pending_cost(self, ref: KeyRef) -> float:
        rows = await self._fetch(
            "SELECT COALESCE(SUM(COALESCE(cost, 0)), 0) AS reserved FROM generations"
            " WHERE key_scope = ? AND key_tenant = ? AND key_owner = ? AND key_provider = ?"
            " AND status IN (?, ?)",
            (*_key_params(ref), GenStatus.ACCEPTED.value, GenStatus.SUBMITTING.value),
        )
        return float(rows[0]["reserved"])

    # --- generations -------------------------------------------------------------------

    async def insert_generation(
        self, generation: Generation, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry]:
        """Raises :class:`sqlite3.IntegrityError` if the id is already stored."""

        def run(db: sqlite3.Connection) -> list[OutboxEntry]:
            db.execute(_INSERT_GENERATION, _generation_to_row(generation))
            db.execute(_REHOME_ONE, (generation.id,))  # the links as they are now
            return self._append(db, generation.id, generation.place.platform, events)

        return await self._write(run)

    async def transition(
        self, generation: Generation, *, expect: GenStatus, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry] | None:
        def run(db: sqlite3.Connection) -> list[OutboxEntry] | None:
            row = _generation_to_row(generation)
            row["expect"] = expect.value
            cursor = db.execute(_TRANSITION_GENERATION, row)
            if cursor.rowcount == 0:
                return None
            return self._append(db, generation.id, generation.place.platform, events)

        return await self._write(run)

    async def update_generation(self, generation: Generation) -> None:
        """Replace the stored row with the same id; :class:`NotFound` if there is none."""

        def run(db: sqlite3.Connection) -> None:
            cursor = db.execute(_UPDATE_GENERATION, _generation_to_row(generation))
            if cursor.rowcount == 0:
                raise NotFound("That generation no longer exists.")

        return await self._write(run)

    async def get_generation(self, generation_id: str) -> Generation | None:
        rows = await self._fetch(_SELECT_GENERATION + " WHERE id = ?", (generation_id,))
        return _generation_from_row(rows[0]) if rows else None

    async def unfinished_generations(self) -> list[Generation]:
        rows = await self._fetch(
            _SELECT_GENERATION + " WHERE status NOT IN (?, ?) ORDER BY created_at, id",
            _FINAL,
        )
        return [_generation_from_row(row) for row in rows]

    async def recent_generations(
        self, tenant: str, user_id: str, *, limit: int = 10
    ) -> list[Generation]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            _SELECT_GENERATION + " WHERE home_tenant = ? AND home_user_id = ?"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (tenant, user_id, limit),
        )
        return [_generation_from_row(row) for row in rows]

    # --- platform messages -------------------------------------------------------------

    async def link_message(self, link: MessageLink) -> None:
        """Insert or re-point the link; :class:`NotFound` if the generation is not stored."""
        try:

            def run(db: sqlite3.Connection) -> None:
                db.execute(_UPSERT_LINK, _message_link_to_row(link))

            return await self._write(run)
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname != "SQLITE_CONSTRAINT_FOREIGNKEY":
                raise
            raise NotFound("That generation no longer exists.") from None

    async def generation_for_message(
        self, platform: str, channel: str, message_id: str
    ) -> str | None:
        rows = await self._fetch(
            "SELECT generation_id FROM message_links"
            " WHERE platform = ? AND channel = ? AND message_id = ?",
            (platform, channel, message_id),
        )
        return str(rows[0]["generation_id"]) if rows else None

    async def messages_for_generation(self, generation_id: str) -> list[MessageLink]:
        rows = await self._fetch(
            "SELECT platform, channel, message_id, generation_id, kind FROM message_links"
            " WHERE generation_id = ? ORDER BY rowid",
            (generation_id,),
        )
        return [_message_link_from_row(row) for row in rows]

    # --- the outbox --------------------------------------------------------------------

    def _append(
        self,
        db: sqlite3.Connection,
        generation_id: str,
        platform: str | None,
        events: Sequence[NewEvent],
    ) -> list[OutboxEntry]:
        """Append events after the generation's last one (inside a write transaction)."""
        if not events:
            return []
        rows = db.execute(
            "SELECT g.place_platform AS platform,"
            " (SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE generation_id = g.id) AS seq"
            " FROM generations g WHERE g.id = ?",
            (generation_id,),
        ).fetchall()
        if not rows:
            raise NotFound("That generation no longer exists.")
        platform = platform or str(rows[0]["platform"])
        seq = int(rows[0]["seq"])
        now = self._now()
        made: list[OutboxEntry] = []
        for event in events:
            if event.replaces:
                marks = ", ".join("?" for _ in event.replaces)
                db.execute(
                    "UPDATE outbox SET done_at = ?, error = 'replaced', blob = NULL"  # noqa: S608
                    f" WHERE generation_id = ? AND done_at IS NULL AND kind IN ({marks})",
                    (now, generation_id, *event.replaces),
                )
            seq += 1
            cursor = db.execute(
                "INSERT INTO outbox (generation_id, platform, seq, kind, payload, blob,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    generation_id,
                    platform,
                    seq,
                    event.kind,
                    json.dumps(dict(event.payload), ensure_ascii=False),
                    event.blob,
                    now,
                ),
            )
            made.append(
                OutboxEntry(
                    id=int(cursor.lastrowid or 0),
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
        def run(db: sqlite3.Connection) -> list[OutboxEntry] | None:
            if expect is not None:
                rows = db.execute(
                    "SELECT 1 FROM generations WHERE id = ? AND status = ?",
                    (generation_id, expect.value),
                )
                if not list(rows):
                    return None
            return self._append(db, generation_id, None, events)

        return await self._write(run)

    async def pending_events(
        self, platform: str, *, limit: int, generation_id: str | None = None
    ) -> list[OutboxEntry]:
        if generation_id is None:
            rows = await self._fetch(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox"  # noqa: S608
                " WHERE platform = ? AND done_at IS NULL ORDER BY id LIMIT ?",
                (platform, limit),
            )
        else:
            rows = await self._fetch(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox"  # noqa: S608
                " WHERE generation_id = ? AND platform = ? AND done_at IS NULL"
                " ORDER BY id LIMIT ?",
                (generation_id, platform, limit),
            )
        return [_outbox_entry_from_row(row) for row in rows]

    async def event_blob(self, entry_id: int) -> bytes | None:
        rows = await self._fetch("SELECT blob FROM outbox WHERE id = ?", (entry_id,))
        blob = rows[0]["blob"] if rows else None
        return bytes(blob) if blob is not None else None

    async def settle_events(self, outcomes: Sequence[EventOutcome]) -> None:
        if not outcomes:
            return
        now = self._now()
        links = [_message_link_to_row(link) for o in outcomes for link in o.links]
        done = [(now, o.error, o.attempts, o.entry_id) for o in outcomes if o.done]
        retry = [
            (o.attempts, o.next_attempt_at, o.error, o.entry_id) for o in outcomes if not o.done
        ]

        def run(db: sqlite3.Connection) -> None:
            # one statement per kind of change: a batch of thousands is a few thread hops
            if links:
                db.executemany(_UPSERT_LINK, links)
            if done:
                db.executemany(
                    "UPDATE outbox SET done_at = ?, error = ?, attempts = ?, blob = NULL"
                    " WHERE id = ? AND done_at IS NULL",
                    done,
                )
            if retry:
                db.executemany(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, error = ? WHERE id = ?",
                    retry,
                )

        return await self._write(run)

    # --- operations --------------------------------------------------------------------

    async def overview(self, *, failures: int = 5) -> Overview:
        counts = await self._fetch("SELECT status, COUNT(*) AS n FROM generations GROUP BY status")
        loads = await self._fetch(
            """
            SELECT g.key_provider AS provider, g.key_scope AS scope,
                   COALESCE(k.fingerprint, '(unbound)') AS fingerprint,
                   SUM(g.status = 'accepted') AS waiting,
                   SUM(g.status IN ('submitting', 'submitted', 'completed')) AS running
            FROM generations g
            LEFT JOIN key_bindings k
              ON k.scope = g.key_scope AND k.tenant = g.key_tenant AND k.owner = g.key_owner
             AND k.provider = g.key_provider
            WHERE g.status NOT IN ('delivered', 'failed')
            GROUP BY g.key_scope, g.key_tenant, g.key_owner, g.key_provider
            ORDER BY running DESC, waiting DESC
            """
        )
        waiting = await self._fetch(
            "SELECT platform, COUNT(*) AS n FROM outbox WHERE done_at IS NULL GROUP BY platform"
        )
        failed = await self._fetch(
            _SELECT_GENERATION + " WHERE status = 'failed' ORDER BY updated_at DESC LIMIT ?",
            (failures,),
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
            recent_failures=tuple(_generation_from_row(row) for row in failed),
        )

    # --- remembered platform events ----------------------------------------------------

    async def remember(
        self, scope: str, key: str, *, value: str, now: float, ttl: float
    ) -> str | None:
        def run(db: sqlite3.Connection) -> str | None:
            db.execute("DELETE FROM seen WHERE expires_at <= ?", (now,))
            rows = list(
                db.execute("SELECT value FROM seen WHERE scope = ? AND key = ?", (scope, key))
            )
            if rows:
                return str(rows[0]["value"])
            db.execute(
                "INSERT INTO seen (scope, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (scope, key, value, now + ttl),
            )
            return None

        return await self._write(run)

    async def forget(self, scope: str, key: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM seen WHERE scope = ? AND key = ?", (scope, key))

        return await self._write(run)

    # --- linked teams and accounts -----------------------------------------------------

    async def put_link_code(self, code: LinkCode) -> None:
        def run(db: sqlite3.Connection) -> None:
            # codes a day past their expiry are forgotten (until then they are still told
            # apart from codes that never existed)
            db.execute(
                "DELETE FROM link_codes WHERE expires_at < ?", (code.created_at - _CODE_MEMORY,)
            )
            db.execute(
                "DELETE FROM link_codes"
                " WHERE tenant = ? AND user_id = ? AND kind = ? AND used_at IS NULL",
                (code.tenant, code.user_id, code.kind.value),
            )
            db.execute(
                "INSERT INTO link_codes (code_hash, kind, tenant, user_id, created_at,"
                " expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    code.code_hash,
                    code.kind.value,
                    code.tenant,
                    code.user_id,
                    code.created_at,
                    code.expires_at,
                    code.used_at,
                ),
            )

        await self._write(run)

    async def get_link_code(self, code_hash: str) -> LinkCode | None:
        rows = await self._fetch(
            "SELECT code_hash, kind, tenant, user_id, created_at, expires_at, used_at"
            " FROM link_codes WHERE code_hash = ?",
            (code_hash,),
        )
        if not rows:
            return None
        row = rows[0]
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
        rows = await self._fetch(
            "SELECT home, joined, linked_by, linked_at FROM team_links"
            " WHERE joined = ? OR home = ?",
            (tenant, tenant),
        )
        return _team_link_from_row(rows[0]) if rows else None

    async def link_teams(self, link: TeamLink, *, code_hash: str, now: float) -> bool:
        try:

            def run(db: sqlite3.Connection) -> None:
                used = db.execute(_USE_CODE, (now, code_hash, "team", link.home, now))
                if used.rowcount != 1:
                    raise _NotLinked
                made = db.execute(
                    "INSERT INTO team_links (joined, home, linked_by, linked_at)"
                    " SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM team_links"
                    " WHERE joined IN (?, ?) OR home IN (?, ?))",
                    (
                        link.joined,
                        link.home,
                        link.linked_by,
                        link.linked_at,
                        *(link.joined, link.home) * 2,
                    ),
                )
                if made.rowcount != 1:
                    raise _NotLinked
                db.execute(_REHOME_TENANTS, (link.home, link.joined))

            await self._write(run)
        except _NotLinked:
            return False
        return True

    async def unlink_teams(self, tenant: str) -> TeamLink | None:
        def run(db: sqlite3.Connection) -> TeamLink | None:
            rows = list(
                db.execute(
                    "SELECT home, joined, linked_by, linked_at FROM team_links"
                    " WHERE joined = ? OR home = ?",
                    (tenant, tenant),
                )
            )
            if not rows:
                return None
            link = _team_link_from_row(rows[0])
            db.execute(
                "DELETE FROM person_links WHERE tenant IN (?, ?) OR home_tenant IN (?, ?)",
                (link.home, link.joined) * 2,
            )
            db.execute("DELETE FROM team_links WHERE joined = ?", (link.joined,))
            db.execute(_REHOME_TENANTS, (link.home, link.joined))
            return link

        return await self._write(run)

    async def person_links(self, tenant: str, user_id: str) -> list[PersonLink]:
        rows = await self._fetch(
            "SELECT home_tenant, home_user_id, tenant, user_id, linked_at FROM person_links"
            " WHERE (tenant = ? AND user_id = ?) OR (home_tenant = ? AND home_user_id = ?)"
            " ORDER BY linked_at",
            (tenant, user_id) * 2,
        )
        return [_person_link_from_row(row) for row in rows]

    async def link_people(self, link: PersonLink, *, code_hash: str, now: float) -> bool:
        home, joined = (link.home_tenant, link.home_user_id), (link.tenant, link.user_id)
        try:

            def run(db: sqlite3.Connection) -> None:
                used = db.execute(
                    _USE_CODE + " AND user_id = ?",
                    (now, code_hash, "person", link.home_tenant, now, link.home_user_id),
                )
                if used.rowcount != 1:
                    raise _NotLinked
                made = db.execute(
                    "INSERT INTO person_links (tenant, user_id, home_tenant, home_user_id,"
                    " linked_at) SELECT ?, ?, ?, ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM team_links"
                    "   WHERE (home = ? AND joined = ?) OR (joined = ? AND home = ?))"
                    " AND NOT EXISTS (SELECT 1 FROM person_links"
                    "   WHERE (tenant = ? AND user_id = ?)"
                    "   OR (home_tenant = ? AND home_user_id = ?)"
                    "   OR (tenant = ? AND user_id = ?)"
                    "   OR (home_tenant = ? AND home_user_id = ?))",
                    (
                        *joined,
                        *home,
                        link.linked_at,
                        link.home_tenant,
                        link.tenant,
                        link.home_tenant,
                        link.tenant,
                        *joined,
                        *joined,
                        *home,
                        *home,
                    ),
                )
                if made.rowcount != 1:
                    raise _NotLinked
                db.execute(_REHOME_ACCOUNTS, (*home, *joined))

            await self._write(run)
        except _NotLinked:
            return False
        return True

    async def unlink_people(self, tenant: str, user_id: str) -> list[PersonLink]:
        def run(db: sqlite3.Connection) -> list[PersonLink]:
            where = " WHERE (tenant = ? AND user_id = ?) OR (home_tenant = ? AND home_user_id = ?)"
            rows = list(
                db.execute(
                    "SELECT home_tenant, home_user_id, tenant, user_id, linked_at"  # noqa: S608
                    " FROM person_links" + where,
                    (tenant, user_id) * 2,
                )
            )
            links = [_person_link_from_row(row) for row in rows]
            if links:
                db.execute("DELETE FROM person_links" + where, (tenant, user_id) * 2)  # noqa: S608
            for link in links:
                db.execute(
                    _REHOME_ACCOUNTS,
                    (link.home_tenant, link.home_user_id, link.tenant, link.user_id),
                )
            return links

        return await self._write(run)

    async def resolve_home(self, tenant: str, user_id: str) -> Home | None:
        rows = await self._fetch(
            "SELECT"
            " (SELECT home FROM team_links WHERE joined = ?) AS team,"
            " (SELECT home_tenant FROM person_links"
            "   WHERE tenant = ? AND user_id = ?) AS home_tenant,"
            " (SELECT home_user_id FROM person_links"
            "   WHERE tenant = ? AND user_id = ?) AS home_user_id",
            (tenant, tenant, user_id, tenant, user_id),
        )
        row = rows[0]
        if row["team"] is None and row["home_tenant"] is None:
            return None
        return Home(
            team=row["team"] or tenant,
            tenant=row["home_tenant"] or tenant,
            user_id=row["home_user_id"] or user_id,
        )


if TYPE_CHECKING:

    def _is_a_store(store: SqliteStore) -> Store:
        """mypy proves SqliteStore satisfies the Protocol."""
        return store
