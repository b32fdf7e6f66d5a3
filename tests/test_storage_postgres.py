"""What is particular to PostgresStore: its schema against SQLite's (same tables and
columns), its migrations, the engine's advisory lock, read-only use, collation, and the
sentences a connection that fails becomes (never the URL)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from storage import Dialect, PostgresStore, SqliteStore, database, open_store
from storage import postgres as pg
from storage import sqlite as sq
from tests.pg import Cluster, end_the_engine_lock_session
from tests.procs import dead_port
from tests.test_store_contract import binding, make_generation
from tmbot.config import Config
from tmbot.domain import Actor, Home, ProviderName
from tmbot.errors import ConfigError, DatabaseInUse
from tmbot.records import Budget, BudgetPeriod, GenStatus, KeyRef, KeyScope, NewEvent

#: SQLite's implicit rowid, made explicit on PostgreSQL where a table's order depends on it
IMPLICIT_ROWID = {"message_links": {"rowid"}}


def sqlite_schema(path: Path) -> dict[str, set[str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            t: {row[1] for row in db.execute(f"PRAGMA table_info({t})")}
            | IMPLICIT_ROWID.get(t, set())
            for t in tables
        }


async def postgres_schema(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    tables: dict[str, set[str]] = {}
    for row in found:
        tables.setdefault(row["table_name"], set()).add(row["column_name"])
    return tables


# --- the schema --------------------------------------------------------------------------


async def test_both_dialects_migrate_to_the_same_tables_and_columns(
    tmp_path: Path, pg_url: str
) -> None:
    db = tmp_path / "schema.db"
    await (await SqliteStore.open(db)).close()
    await (await PostgresStore.open(pg_url)).close()
    ours, theirs = sqlite_schema(db), await postgres_schema(pg_url)
    assert set(ours) == set(theirs)
    assert {t: cols for t, cols in ours.items() if theirs[t] != cols} == {}
    assert "generations" in ours and "outbox" in ours  # not two empty schemas


def test_the_migrations_are_the_same_versions_with_the_same_names() -> None:
    assert [(m.version, m.name) for m in pg.load_migrations()] == [
        (m.version, m.name) for m in sq.load_migrations()
    ]
    assert pg.latest_schema() == sq.latest_schema()


async def test_migrations_are_applied_once_each_and_recorded(pg_url: str) -> None:
    first = await PostgresStore.open(pg_url, now=lambda: 111.0)
    await first.insert_generation(make_generation("kept"))
    await first.close()
    second = await PostgresStore.open(pg_url, now=lambda: 222.0)
    await second.close()
    conn = await asyncpg.connect(pg_url)
    try:
        recorded = await conn.fetch(
            "SELECT version, name, applied_at FROM schema_version ORDER BY version"
        )
        kept = await conn.fetchval("SELECT COUNT(*) FROM generations")
    finally:
        await conn.close()
    assert [tuple(r) for r in recorded] == [
        (m.version, m.name, 111.0) for m in pg.load_migrations()
    ]
    assert kept == 1


async def test_a_failing_migration_leaves_nothing_behind(pg_url: str) -> None:
    good = pg.Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    bad = pg.Migration(2, "bad", "CREATE TABLE b (x INTEGER);\nCREATE TABLE broken (;")
    conn = await asyncpg.connect(pg_url)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await pg._migrate(conn, [good, bad], now=1.0)
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        assert tables == {"a", "schema_version"}
        assert [r[0] for r in await conn.fetch("SELECT version FROM schema_version")] == [1]
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


async def test_a_database_from_a_newer_tmbot_is_refused(pg_url: str) -> None:
    await (await PostgresStore.open(pg_url)).close()
    conn = await asyncpg.connect(pg_url)
    await conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    await conn.close()
    with pytest.raises(ConfigError, match="newer tmbot"):
        await PostgresStore.open(pg_url)


async def test_text_is_ordered_bytewise_whatever_the_databases_locale(
    pg_cluster: Cluster,
) -> None:
    url = await pg_cluster.fresh_database(icu_locale="en-US")  # a, A, b, B in this locale
    try:
        store = await PostgresStore.open(url)
        try:
            for member in ("b", "B", "a", "A"):
                await store.put_budget(Budget("T1", member, 1, BudgetPeriod.DAY))
            assert [b.member for b in await store.list_budgets("T1")] == ["A", "B", "a", "b"]
            for owner in ("b", "B"):
                ref = KeyRef(KeyScope.USER, "T1", owner, ProviderName.TASTEMACHINE)
                await store.put_key(binding(ref))
            assert [k.ref.owner for k in await store.list_keys()] == ["B", "b"]
        finally:
            await store.close()
    finally:
        await pg_cluster.drop_database(url)


# --- one engine per database -------------------------------------------------------------


async def test_engines_share_the_lock_and_migrate_db_waits_until_they_close(
    pg_url: str,
) -> None:
    first = await open_store(pg_url, exclusive=True)
    second = await open_store(pg_url, exclusive=True)  # engines share a PostgreSQL database
    try:
        assert await first.ping() and await second.ping()
        with pytest.raises(DatabaseInUse) as refused:  # what migrate-db takes: it alone
            await PostgresStore.open(pg_url, exclusive=True)
        message = refused.value.user_message
        assert message.startswith("Another tmbot (process ")
        assert f"process {__import__('os').getpid()} on " in message
        assert "the PostgreSQL database tmbot_test_" in message and "127.0.0.1:" in message
        reader = await open_store(pg_url)  # a tool that only looks may still open it
        assert await reader.ping()
        await reader.close()
    finally:
        await first.close()
        await second.close()
    alone = await PostgresStore.open(pg_url, exclusive=True)  # released on close
    await alone.close()


async def test_an_engine_whose_lock_connection_dies_is_not_ready(pg_url: str) -> None:
    first = await open_store(pg_url, exclusive=True)
    try:
        assert await first.ping()
        await end_the_engine_lock_session(pg_url)
        await asyncio.wait_for(first.lock_lost(), 30)  # what the runtime stops on
        assert await first.ping() is False  # readiness says so
        second = await open_store(pg_url, exclusive=True)  # the lock went with it
        await second.close()
    finally:
        await first.close()


# --- links and inserts ----------------------------------------------------------------------


async def test_an_insert_during_a_link_change_waits_and_is_stored_by_its_links(
    pg_url: str,
) -> None:
    """A generation resolved before a link change and inserted while it commits: the insert
    waits for the links lock, then stores the home the new links give (without it, the link
    change would not see the uncommitted row, nor the insert the uncommitted links)."""
    store = await open_store(pg_url)
    changing = await asyncpg.connect(pg_url)
    try:
        link = changing.transaction()
        await link.start()
        await changing.execute("SELECT pg_advisory_xact_lock($1, $2)", pg.LOCK_CLASS, pg.LINKS_LOCK)
        await changing.execute(
            "INSERT INTO team_links (joined, home, linked_by, linked_at)"
            " VALUES ('discord:G1', 'slack:T1', '900', 1)"
        )
        await changing.execute(
            "INSERT INTO person_links (tenant, user_id, home_tenant, home_user_id, linked_at)"
            " VALUES ('discord:G1', '700', 'slack:T1', 'U0DORA', 1)"
        )
        dora = Actor("discord", "discord:G1", "700")
        inserting = asyncio.ensure_future(store.insert_generation(make_generation("g", actor=dora)))

        async def insert_waits_for_the_links() -> None:
            while not await changing.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid = $1 AND objid = $2 AND NOT granted)",
                pg.LOCK_CLASS,
                pg.LINKS_LOCK,
            ):
                assert not inserting.done()

        await asyncio.wait_for(insert_waits_for_the_links(), 30)
        await link.commit()
        await asyncio.wait_for(inserting, 30)
        got = await store.get_generation("g")
        assert got is not None and got.actor.home == Home("slack:T1", "slack:T1", "U0DORA")
    finally:
        await changing.close()
        await store.close()


# --- read only ---------------------------------------------------------------------------


async def test_read_only_reads_and_refuses_writes_and_unknown_schemas(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="is at schema 0 and this tmbot reads"):
        await open_store(pg_url, read_only=True)
    writer = await open_store(pg_url)
    await writer.insert_generation(make_generation("g1"))
    await writer.close()
    reader = await open_store(pg_url, read_only=True)
    try:
        assert (await reader.overview()).by_status
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.insert_generation(make_generation("g2"))
    finally:
        await reader.close()


# --- the URL and failures ----------------------------------------------------------------


def test_database_picks_the_dialect_from_the_url(tmp_path: Path) -> None:
    assert database(None).dialect is Dialect.SQLITE
    local = database(f"sqlite:///{tmp_path / 'x.db'}")
    assert local.key_file == tmp_path / "x.key"
    shared = database("postgresql://bot:hunter2secret@db.example.com:6543/tmbot")
    assert shared.dialect is Dialect.POSTGRESQL and shared.key_file is None
    assert shared.shown == "the PostgreSQL database tmbot at db.example.com:6543"
    assert "hunter2secret" not in repr(shared)
    short = database("postgres://bot@localhost/bots")
    assert short.dialect is Dialect.POSTGRESQL
    assert short.shown == "the PostgreSQL database bots at localhost:5432"
    socket_dir = database("postgresql:///tmbot?host=/run/postgresql")
    assert socket_dir.shown == "the PostgreSQL database tmbot at the socket in /run/postgresql"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://bot:hunter2secret@db/tmbot", "'mysql' databases are not supported"),
        ("postgresql://bot:hunter2secret@db:port/tmbot", "host or port cannot be read"),
        ("bot:hunter2secret@db://x", "names neither"),
    ],
)
def test_bad_urls_are_one_sentence_without_the_url(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        database(url)
    assert says in refused.value.user_message
    assert "hunter2secret" not in str(refused.value)


async def test_a_refused_connection_names_host_and_port_never_the_password() -> None:
    port = dead_port()
    with pytest.raises(ConfigError) as refused:
        await open_store(f"postgresql://bot:hunter2secret@127.0.0.1:{port}/tmbot")
    assert refused.value.user_message == (
        f"PostgreSQL at 127.0.0.1:{port} refused the connection; check that the server runs "
        "there and that TMBOT_DATABASE_URL names its port."
    )
    assert refused.value.__cause__ is None
    assert "hunter2secret" not in str(refused.value)


async def test_a_missing_database_says_which_and_how_to_make_it(pg_cluster: Cluster) -> None:
    url = pg_cluster.url("no_such_db").replace("postgres@", "postgres:hunter2secret@")
    with pytest.raises(ConfigError) as refused:
        await open_store(url)
    message = refused.value.user_message
    assert message.startswith(f"PostgreSQL at 127.0.0.1:{pg_cluster.port} has no database")
    assert "createdb no_such_db" in message and "hunter2secret" not in message


def test_config_accepts_both_kinds_of_url_and_refuses_others_without_echo() -> None:
    for url in ("sqlite:///x.db", "postgresql://a:b@h/db", "postgres://h/db", "PostgreSQL://h"):
        assert Config.from_env({"TMBOT_DATABASE_URL": url}).database_url == url
    assert Config.from_env({}).database_url is None
    for url, says in (
        ("mysql://bot:hunter2secret@db/x", "'mysql' databases are not supported."),
        ("bot:hunter2secret@db", "it is not a URL."),
        ("bot:hunter2secret@db://x", "it names neither."),
    ):
        with pytest.raises(ConfigError) as refused:
            Config.from_env({"TMBOT_DATABASE_URL": url})
        message = refused.value.user_message
        assert message.startswith("TMBOT_DATABASE_URL must be sqlite:///path.db")
        assert message.endswith(says) and "hunter2secret" not in message


def test_config_repr_leaves_the_database_url_out() -> None:
    config = Config.from_env({"TMBOT_DATABASE_URL": "postgresql://bot:hunter2secret@db/x"})
    assert config.database_url == "postgresql://bot:hunter2secret@db/x"
    for text in (repr(config), str(config), f"{config!r}"):
        assert "hunter2secret" not in text and "database_url" not in text
    assert "time_scale=1.0" in repr(config)  # the rest is still shown


async def test_two_stores_on_one_database_race_safely(pg_url: str) -> None:
    """Two pools (as two processes will have): a guarded transition is won once, events of
    one generation stay numbered 1..n without a gap or a repeat, a platform event is
    remembered once."""
    first, second = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    try:
        gen = make_generation("g1")
        await first.insert_generation(gen, [NewEvent("accepted")])
        stores = (first, second)
        moves = [
            stores[i % 2].transition(
                dataclasses.replace(gen, status=GenStatus.SUBMITTING, task_id=str(i)),
                expect=GenStatus.ACCEPTED,
                events=[NewEvent("started")],
            )
            for i in range(12)
        ]
        appends = [stores[i % 2].add_events("g1", [NewEvent("queued")]) for i in range(12)]
        remembered = [
            stores[i % 2].remember("slack", "Ev9", value=str(i), now=1.0, ttl=60.0)
            for i in range(12)
        ]
        results = await asyncio.gather(*moves, *appends, *remembered)
        assert sum(r is not None for r in results[:12]) == 1
        assert [r for r in results[24:] if r is None] == [None]
        seqs = sorted(e.seq for e in await second.pending_events("slack", limit=99))
        assert seqs == list(range(1, 15))  # accepted, 12 queued, one started
    finally:
        await first.close()
        await second.close()
