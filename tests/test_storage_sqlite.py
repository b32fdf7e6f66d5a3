"""SqliteStore against a real SQLite file in tmp_path: what is particular to SQLite (the
file, its pragmas, its migrations, two connections on one file, the URL). What every Store
must do is ``test_store_contract.py``, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from storage.sqlite import (
    _GENERATION_COLUMNS,
    DEFAULT_DATABASE_URL,
    Migration,
    SqliteStore,
    _generation_to_row,
    _migrate,
    load_migrations,
    path_from_url,
)
from tests.test_store_contract import full_generation, make_generation
from tmbot.domain import Home
from tmbot.errors import ConfigError
from tmbot.records import Generation, GenStatus


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "tmbot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(db_path)
    try:
        yield opened
    finally:
        await opened.close()


# --- opening, pragmas, migrations ------------------------------------------------------


async def test_open_creates_folders_and_sets_pragmas(store: SqliteStore, db_path: Path) -> None:
    assert db_path.exists()
    with contextlib.closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    async def pragma(name: str) -> object:
        rows = list(await store._db.execute_fetchall(f"PRAGMA {name}"))
        return rows[0][0]

    assert await pragma("foreign_keys") == 1
    assert await pragma("synchronous") == 1  # NORMAL
    assert await pragma("busy_timeout") == 5000
    assert await pragma("journal_mode") == "wal"


async def test_schema_has_every_table(store: SqliteStore) -> None:
    rows = await store._db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    assert {row[0] for row in rows} == {
        "generations",
        "key_bindings",
        "lane_leases",
        "lane_windows",
        "link_codes",
        "members",
        "message_links",
        "outbox",
        "outbox_claims",
        "person_links",
        "request_channels",
        "schema_version",
        "seen",
        "sqlite_sequence",
        "team_budgets",
        "team_links",
        "users",
    }


async def test_migrations_applied_once_and_reopen_keeps_data(db_path: Path) -> None:
    first = await SqliteStore.open(db_path, now=lambda: 111.0)
    await first.insert_generation(make_generation("kept"))
    await first.close()

    second = await SqliteStore.open(db_path, now=lambda: 222.0)
    try:
        assert await second.get_generation("kept") == make_generation("kept")
        rows = await second._db.execute_fetchall(
            "SELECT version, name, applied_at FROM schema_version ORDER BY version"
        )
        expected = [(m.version, m.name, 111.0) for m in load_migrations()]
        assert [tuple(row) for row in rows] == expected
        assert [v for v, _, _ in expected] == [1, 2, 3, 4, 5, 6, 7, 8]
    finally:
        await second.close()


async def test_database_from_a_newer_tmbot_is_refused(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    await store._db.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)"
    )
    await store.close()
    with pytest.raises(ConfigError, match="newer tmbot"):
        await SqliteStore.open(db_path)


async def test_a_failing_migration_leaves_nothing_behind() -> None:
    good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    bad = Migration(2, "bad", "CREATE TABLE b (x INTEGER);\nCREATE TABLE broken (;")
    async with aiosqlite.connect(":memory:", isolation_level=None) as db:
        with pytest.raises(sqlite3.OperationalError):
            await _migrate(db, [good, bad], now=1.0)
        tables = {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master")}
        assert "a" in tables
        assert "b" not in tables
        versions = list(await db.execute_fetchall("SELECT version FROM schema_version"))
        assert [row[0] for row in versions] == [1]
        assert not db.in_transaction


def test_migration_statements_respect_strings_comments_and_triggers() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 'c;d';
    END;
    INSERT INTO t VALUES ('e'); INSERT INTO t VALUES ('f');
    """
    statements = Migration(1, "x", sql).statements()
    assert len(statements) == 4
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2:] == ["INSERT INTO t VALUES ('e');", "INSERT INTO t VALUES ('f');"]
    with pytest.raises(ValueError, match="unterminated"):
        Migration(1, "x", "CREATE TABLE t (x)").statements()


def test_shipped_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert all(m.statements() for m in migrations)


async def test_memory_database_works() -> None:
    store = await SqliteStore.open(":memory:")
    try:
        await store.insert_generation(make_generation())
        assert await store.get_generation("g1") == make_generation()
    finally:
        await store.close()
    await store.close()  # closing twice is harmless


# --- generations -----------------------------------------------------------------------


def test_generation_row_has_every_column() -> None:
    assert tuple(_generation_to_row(full_generation())) == _GENERATION_COLUMNS
    flattened = {f.name for f in dataclasses.fields(Generation)} - {
        "actor",
        "place",
        "spec",
        "key",
    }
    for prefix, value in (
        ("actor", full_generation().actor),
        ("place", full_generation().place),
        ("spec", full_generation().spec),
        ("key", full_generation().key),
    ):
        flattened |= {f"{prefix}_{f.name}" for f in dataclasses.fields(value)}
    # the actor's home is kept in its own columns (link changes recompute them)
    flattened = (flattened - {"actor_linked"}) | {
        f"home_{f.name}" for f in dataclasses.fields(Home)
    }
    assert flattened == set(_GENERATION_COLUMNS)


# --- concurrency -----------------------------------------------------------------------


async def test_two_connections_writing_the_same_file(db_path: Path) -> None:
    first = await SqliteStore.open(db_path)
    second = await SqliteStore.open(db_path)
    try:
        ids = [f"g{i:02d}" for i in range(50)]
        await asyncio.gather(
            *(
                (first if n % 2 else second).insert_generation(make_generation(i))
                for n, i in enumerate(ids)
            )
        )
        updates = [make_generation(i, status=GenStatus.FAILED, error=f"e{i}") for i in ids]
        await asyncio.gather(
            *((second if n % 2 else first).update_generation(g) for n, g in enumerate(updates))
        )
        for expected in updates:
            assert await first.get_generation(expected.id) == expected
        assert await second.unfinished_generations() == []
    finally:
        await first.close()
        await second.close()


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tmbot.db", Path("tmbot.db")),
        ("sqlite:///data/bot/tmbot.db", Path("data/bot/tmbot.db")),
        ("sqlite:////var/lib/tmbot/tmbot.db", Path("/var/lib/tmbot/tmbot.db")),
        ("sqlite:///my%20bot.db", Path("my bot.db")),
        ("sqlite:///:memory:", Path(":memory:")),
        (" sqlite:///tmbot.db\n", Path("tmbot.db")),
    ],
)
def test_path_from_url(url: str, path: Path) -> None:
    assert path_from_url(url) == path


def test_default_url_is_a_relative_file() -> None:
    assert path_from_url(DEFAULT_DATABASE_URL) == Path("tmbot.db")


def test_other_schemes_are_refused_without_echoing_the_url() -> None:
    with pytest.raises(ConfigError) as caught:
        path_from_url("postgres://bot:hunter2secret@db.example.com/tmbot")
    message = caught.value.user_message
    assert "'postgres' databases are not supported" in message
    assert "sqlite:///" in message
    assert "hunter2secret" not in message and "hunter2secret" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["tmbot.db", "sqlite://tmbot.db", "sqlite:///", "sqlite:///db?mode=ro", ""]
)
def test_malformed_sqlite_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="TMBOT_DATABASE_URL"):
        path_from_url(url)


async def test_from_url_opens_the_named_file(tmp_path: Path) -> None:
    target = tmp_path / "via-url.db"
    store = await SqliteStore.from_url(f"sqlite:///{target}")
    try:
        assert store.path == target
        assert target.exists()
    finally:
        await store.close()
