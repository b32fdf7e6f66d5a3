"""SqliteStore against a real SQLite file in tmp_path."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
from tmbot.domain import Actor, GenerationSpec, Home, Place, ProviderName
from tmbot.errors import ConfigError, NotFound
from tmbot.records import (
    Generation,
    GenStatus,
    KeyBinding,
    KeyRef,
    KeyScope,
    MessageLink,
    UserSettings,
)

USER_KEY = KeyRef(KeyScope.USER, "T1", "U1", ProviderName.TASTEMACHINE)
TEAM_KEY = KeyRef(KeyScope.TEAM, "T1", "", ProviderName.TASTEMACHINE)


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


def make_generation(gen_id: str = "g1", **overrides: Any) -> Generation:
    base = Generation(
        id=gen_id,
        actor=Actor(platform="slack", tenant="slack:T1", user_id="U1"),
        place=Place(platform="slack", channel="C1"),
        spec=GenerationSpec(
            provider=ProviderName.TASTEMACHINE,
            brief="a minimal poster",
            model="nano-banana-2",
            aspect_ratio="3:4",
            resolution="1k",
        ),
        key=USER_KEY,
        status=GenStatus.ACCEPTED,
        created_at=1000.0,
        updated_at=1000.0,
    )
    return dataclasses.replace(base, **overrides)


def full_generation(gen_id: str = "full") -> Generation:
    """Every optional field set, unicode everywhere it can be."""
    return Generation(
        id=gen_id,
        actor=Actor(
            platform="discord",
            tenant="discord:G42",
            user_id="1234567890",
            is_admin=True,
            display_name="Zoë 🦊",
            linked=Home(team="slack:T1", tenant="slack:T1", user_id="U0ZOE"),
        ),
        place=Place(platform="discord", channel="C9", thread="T9", card_message="M9"),
        spec=GenerationSpec(
            provider=ProviderName.VTRIX,
            brief="東京のコーヒーショップ — “minimal” poster; 'quotes' & 100% \\ backslash ☕",
            model="nano-banana-pro",
            aspect_ratio="16:9",
            resolution="4k",
            taste="realistic-photo",
            image_urls=("https://example.com/a.png", "https://example.com/ü?x=1&y=2"),
        ),
        key=TEAM_KEY,
        status=GenStatus.COMPLETED,
        created_at=1700000000.25,
        updated_at=1700000100.5,
        cost=12.0,
        task_id="task-1",
        estimate_seconds=35.5,
        submitted_at=1700000001.0,
        completed_at=1700000090.0,
        image_url="https://cdn.example.com/out.png",
        prompt_used="a minimal poster, refined",
        expires_at=1700003600.0,
        credits_consumed=12.0,
        credits_remaining=488.5,
        error="none so far",
        delivered_at=1700000095.0,
        regenerated_from=None,
    )


def binding(ref: KeyRef = USER_KEY, **overrides: Any) -> KeyBinding:
    base = KeyBinding(ref=ref, ciphertext=b"\x00cipher\xff", fingerprint="…1234", created_at=5.0)
    return dataclasses.replace(base, **overrides)


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
        "link_codes",
        "message_links",
        "outbox",
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
        assert [v for v, _, _ in expected] == [1, 2, 3, 4, 5, 6]
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


# --- keys ------------------------------------------------------------------------------


async def test_key_binding_round_trip_and_upsert(store: SqliteStore) -> None:
    assert await store.get_key(USER_KEY) is None
    first = binding()
    await store.put_key(first)
    assert await store.get_key(USER_KEY) == first

    with_balance = binding(
        ciphertext=b"new", fingerprint="…9999", created_at=6.0, balance=42.5, balance_seen_at=7.0
    )
    await store.put_key(with_balance)
    assert await store.get_key(USER_KEY) == with_balance

    # The team binding of the same tenant and provider is a different row.
    assert await store.get_key(TEAM_KEY) is None
    team = binding(TEAM_KEY, fingerprint="…team")
    await store.put_key(team)
    assert await store.get_key(TEAM_KEY) == team
    assert await store.get_key(USER_KEY) == with_balance
    vtrix = dataclasses.replace(USER_KEY, provider=ProviderName.VTRIX)
    assert await store.get_key(vtrix) is None


async def test_delete_key_reports_whether_it_removed_something(store: SqliteStore) -> None:
    await store.put_key(binding())
    assert await store.delete_key(USER_KEY) is True
    assert await store.get_key(USER_KEY) is None
    assert await store.delete_key(USER_KEY) is False


async def test_record_balance_updates_only_existing_bindings(store: SqliteStore) -> None:
    await store.record_balance(USER_KEY, remaining=10.0, seen_at=1.0)
    assert await store.get_key(USER_KEY) is None

    await store.put_key(binding())
    await store.record_balance(USER_KEY, remaining=10.0, seen_at=100.0)
    stored = await store.get_key(USER_KEY)
    assert stored is not None
    assert (stored.balance, stored.balance_seen_at) == (10.0, 100.0)
    assert stored.ciphertext == binding().ciphertext

    # An older reading arriving late does not roll the balance back; a newer one wins.
    await store.record_balance(USER_KEY, remaining=99.0, seen_at=50.0)
    stored = await store.get_key(USER_KEY)
    assert stored is not None and stored.balance == 10.0
    await store.record_balance(USER_KEY, remaining=7.5, seen_at=101.0)
    stored = await store.get_key(USER_KEY)
    assert stored is not None and (stored.balance, stored.balance_seen_at) == (7.5, 101.0)
    assert await store.get_key(TEAM_KEY) is None


# --- settings --------------------------------------------------------------------------


async def test_settings_default_round_trip_and_replace(store: SqliteStore) -> None:
    assert await store.get_settings("T1", "U1") == UserSettings()
    full = UserSettings(
        provider=ProviderName.VTRIX,
        model="nano-banana-pro",
        aspect_ratio="3:4",
        resolution="2k",
        taste="realistic-photo",
    )
    await store.put_settings("T1", "U1", full)
    assert await store.get_settings("T1", "U1") == full
    assert await store.get_settings("T1", "U2") == UserSettings()
    assert await store.get_settings("T2", "U1") == UserSettings()

    partial = UserSettings(aspect_ratio="1:1")
    await store.put_settings("T1", "U1", partial)
    assert await store.get_settings("T1", "U1") == partial


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


async def test_generation_round_trip_every_field(store: SqliteStore) -> None:
    full = full_generation()
    await store.insert_generation(make_generation("origin"))
    full = dataclasses.replace(full, regenerated_from="origin")
    await store.insert_generation(full)
    assert await store.get_generation("full") == full

    minimal = make_generation("min")
    await store.insert_generation(minimal)
    got = await store.get_generation("min")
    assert got == minimal
    assert got is not None and got.spec.image_urls == () and got.place.thread is None
    assert await store.get_generation("missing") is None


async def test_insert_of_a_duplicate_id_fails(store: SqliteStore) -> None:
    await store.insert_generation(make_generation())
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_generation(make_generation())
    # The failed transaction was rolled back; the store still works.
    await store.insert_generation(make_generation("g2"))


async def test_update_generation_replaces_the_row(store: SqliteStore) -> None:
    await store.insert_generation(make_generation())
    done = dataclasses.replace(
        full_generation("g1"), status=GenStatus.DELIVERED, error=None, image_url=None
    )
    await store.update_generation(done)
    # every field but the home, which only link changes recompute (the row's first home)
    first_home = Home("slack:T1", "slack:T1", "U1")
    assert await store.get_generation("g1") == dataclasses.replace(
        done, actor=dataclasses.replace(done.actor, linked=first_home)
    )
    back = make_generation(status=GenStatus.FAILED, error="boom")
    await store.update_generation(back)
    assert await store.get_generation("g1") == back


async def test_update_of_a_missing_generation_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFound):
        await store.update_generation(make_generation("ghost"))
    assert await store.get_generation("ghost") is None


async def test_unfinished_generations_oldest_first_without_final_ones(
    store: SqliteStore,
) -> None:
    rows = [
        make_generation("e", status=GenStatus.SUBMITTED, created_at=30.0),
        make_generation("a", status=GenStatus.DELIVERED, created_at=5.0),
        make_generation("d", status=GenStatus.ACCEPTED, created_at=10.0),
        make_generation("c", status=GenStatus.SUBMITTING, created_at=10.0),
        make_generation("b", status=GenStatus.FAILED, created_at=1.0),
        make_generation("f", status=GenStatus.COMPLETED, created_at=2.0),
    ]
    for row in rows:
        await store.insert_generation(row)
    assert [g.id for g in await store.unfinished_generations()] == ["f", "c", "d", "e"]


async def test_recent_generations_newest_first_for_that_user(store: SqliteStore) -> None:
    mine = [make_generation(f"m{i}", created_at=float(i)) for i in range(5)]
    other_user = make_generation(
        "x", actor=Actor(platform="slack", tenant="slack:T1", user_id="U2"), created_at=99.0
    )
    other_tenant = make_generation(
        "y", actor=Actor(platform="slack", tenant="slack:T2", user_id="U1"), created_at=99.0
    )
    for row in [*mine, other_user, other_tenant]:
        await store.insert_generation(row)
    assert [g.id for g in await store.recent_generations("slack:T1", "U1")] == [
        "m4",
        "m3",
        "m2",
        "m1",
        "m0",
    ]
    assert [g.id for g in await store.recent_generations("slack:T1", "U1", limit=2)] == ["m4", "m3"]
    assert await store.recent_generations("slack:T1", "U1", limit=0) == []
    assert [g.id for g in await store.recent_generations("slack:T1", "U2")] == ["x"]
    assert await store.recent_generations("T3", "U1") == []


# --- message links ---------------------------------------------------------------------


async def test_message_links_both_ways(store: SqliteStore) -> None:
    await store.insert_generation(make_generation("g1"))
    await store.insert_generation(make_generation("g2"))
    card = MessageLink("slack", "C1", "111.1", "g1")
    image = MessageLink("slack", "C1", "111.2", "g1", kind="image")
    await store.link_message(card)
    await store.link_message(image)
    await store.link_message(MessageLink("discord", "C1", "111.1", "g2"))

    assert await store.generation_for_message("slack", "C1", "111.1") == "g1"
    assert await store.generation_for_message("discord", "C1", "111.1") == "g2"
    assert await store.generation_for_message("slack", "C2", "111.1") is None
    assert await store.messages_for_generation("g1") == [card, image]
    assert await store.messages_for_generation("nothing") == []

    # Linking the same message again re-points it.
    await store.link_message(MessageLink("slack", "C1", "111.2", "g2", kind="image"))
    assert await store.generation_for_message("slack", "C1", "111.2") == "g2"
    assert await store.messages_for_generation("g1") == [card]


async def test_linking_to_an_unknown_generation_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFound):
        await store.link_message(MessageLink("slack", "C1", "1", "ghost"))
    assert await store.generation_for_message("slack", "C1", "1") is None


# --- concurrency -----------------------------------------------------------------------


async def test_concurrent_updates_lose_nothing(store: SqliteStore) -> None:
    ids = [f"g{i:02d}" for i in range(50)]
    await asyncio.gather(*(store.insert_generation(make_generation(i)) for i in ids))
    updates = [
        make_generation(i, status=GenStatus.SUBMITTED, task_id=f"task-{i}", updated_at=2000.0)
        for i in ids
    ]
    await asyncio.gather(*(store.update_generation(g) for g in updates))
    for expected in updates:
        assert await store.get_generation(expected.id) == expected
    assert len(await store.unfinished_generations()) == 50


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


async def test_a_cancelled_write_leaves_the_store_usable(store: SqliteStore) -> None:
    await store.insert_generation(make_generation())
    for ticks in range(6):
        task = asyncio.create_task(store.update_generation(make_generation(task_id=str(ticks))))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.put_settings("T1", "U1", UserSettings(model=str(ticks)))
        assert await store.get_settings("T1", "U1") == UserSettings(model=str(ticks))


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
