"""SqliteStore's group commit: writes waiting together share one transaction (one trip to
the connection's thread); each is a savepoint of its own, so one that raises is undone alone;
a transaction that cannot begin fails every write of it and leaves the store usable."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.sqlite import SqliteStore
from tmbot.domain import Actor, GenerationSpec, Place, ProviderName
from tmbot.events import Accepted, Queued, encode
from tmbot.records import Generation, GenStatus, KeyRef, KeyScope, UserSettings


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "tmbot.db")
    try:
        yield opened
    finally:
        await opened.close()


async def traced(store: SqliteStore) -> list[str]:
    """Every statement the store's connection runs from now on."""
    statements: list[str] = []
    await store._db.set_trace_callback(statements.append)
    return statements


def begins(statements: list[str]) -> int:
    return sum(s.strip().upper().startswith("BEGIN") for s in statements)


def generation(gen_id: str) -> Generation:
    return Generation(
        id=gen_id,
        actor=Actor(platform="console", tenant="console:local", user_id="u"),
        place=Place(platform="console", channel="console"),
        spec=GenerationSpec(
            provider=ProviderName.TASTEMACHINE,
            brief="a poster",
            model="nano-banana-2",
            aspect_ratio="3:4",
            resolution="1k",
        ),
        key=KeyRef(KeyScope.USER, "console:local", "u", ProviderName.TASTEMACHINE),
        status=GenStatus.ACCEPTED,
        created_at=1000.0,
        updated_at=1000.0,
    )


async def test_writes_submitted_together_commit_in_one_transaction(store: SqliteStore) -> None:
    statements = await traced(store)
    users = [f"u{i:02d}" for i in range(40)]
    await asyncio.gather(
        *(store.put_settings("console:local", u, UserSettings(model=u)) for u in users)
    )
    assert begins(statements) == 1
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
    for u in users:
        assert (await store.get_settings("console:local", u)).model == u


async def test_a_failing_write_is_undone_alone_and_the_rest_commit(store: SqliteStore) -> None:
    class Boom(Exception):
        pass

    def half_done_then_fail(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO users (tenant, user_id, model, updated_at) VALUES (?, ?, ?, ?)",
            ("console:local", "ghost", "x", 1.0),
        )
        raise Boom

    await store.insert_generation(generation("g1"), [encode(Accepted(generation("g1")))])
    statements = await traced(store)
    results = await asyncio.gather(
        store.put_settings("console:local", "before", UserSettings(model="a")),
        store._write(half_done_then_fail),
        store.add_events("g1", [encode(Queued(generation("g1"), 2, None))]),
        store.insert_generation(generation("g1")),  # a duplicate id: IntegrityError
        store.put_settings("console:local", "after", UserSettings(model="b")),
        return_exceptions=True,
    )
    assert begins(statements) == 1  # one transaction for all five
    assert results[0] is None and results[4] is None
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], sqlite3.IntegrityError)
    entries = results[2]
    assert isinstance(entries, list) and [e.seq for e in entries] == [2]
    assert (await store.get_settings("console:local", "before")).model == "a"
    assert (await store.get_settings("console:local", "after")).model == "b"
    assert await store.get_settings("console:local", "ghost") == UserSettings()
    pending = await store.pending_events("console", limit=10)
    assert [(e.kind, e.seq) for e in pending] == [("accepted", 1), ("queued", 2)]


async def test_a_read_sees_the_writes_submitted_before_it(store: SqliteStore) -> None:
    write = store.put_settings("console:local", "u", UserSettings(model="m"))
    read = store.get_settings("console:local", "u")
    _, seen = await asyncio.gather(write, read)
    assert seen.model == "m"


async def test_a_transaction_that_cannot_begin_fails_every_write_of_it(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store._db.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(tmp_path / "tmbot.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        results = await asyncio.gather(
            store.put_settings("console:local", "a", UserSettings(model="a")),
            store.put_settings("console:local", "b", UserSettings(model="b")),
            return_exceptions=True,
        )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert await store.get_settings("console:local", "a") == UserSettings()
    await store.put_settings("console:local", "a", UserSettings(model="again"))
    assert (await store.get_settings("console:local", "a")).model == "again"


async def test_close_finishes_what_was_submitted(tmp_path: Path) -> None:
    path = tmp_path / "tmbot.db"
    store = await SqliteStore.open(path)
    writes = [
        store.put_settings("console:local", f"u{i}", UserSettings(model="m")) for i in range(10)
    ]
    # gather starts them in order: the ten writes are submitted before close runs
    await asyncio.gather(*writes, store.close())
    with pytest.raises(ValueError, match="closed"):
        await store.get_settings("console:local", "u0")
    async with await SqliteStore.open(path) as again:
        for i in range(10):
            assert (await again.get_settings("console:local", f"u{i}")).model == "m"
