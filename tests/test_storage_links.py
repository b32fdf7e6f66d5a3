"""The store's side of linked teams and accounts, on SQLite and PostgreSQL alike (part of
the Store contract): codes used once and only while valid, links guarded inside their
transaction, and each generation's home recomputed when a link is made or removed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from storage import open_store
from storage.sqlite import path_from_url
from tests.test_store_contract import make_generation
from tmbot.domain import Actor, Home
from tmbot.ports import Store
from tmbot.records import KeyRef, KeyScope, LinkCode, LinkKind, PersonLink, TeamLink

SLACK, DISCORD, OTHER = "slack:T1", "discord:G1", "discord:G2"
NOW = 10_000.0


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def code(
    name: str, kind: LinkKind = LinkKind.TEAM, *, tenant: str = SLACK, user: str = "U0BOSS"
) -> LinkCode:
    return LinkCode(
        code_hash=f"hash-{name}",
        kind=kind,
        tenant=tenant,
        user_id=user,
        created_at=NOW,
        expires_at=NOW + 600,
    )


def team(joined: str = DISCORD, home: str = SLACK) -> TeamLink:
    return TeamLink(home=home, joined=joined, linked_by="900", linked_at=NOW)


async def test_a_code_is_used_once_and_only_before_it_expires(store: Store) -> None:
    await store.put_link_code(code("a"))
    assert not await store.link_teams(team(), code_hash="hash-a", now=NOW + 600)  # expired
    assert (await store.get_link_code("hash-a")).used_at is None  # type: ignore[union-attr]
    won = await asyncio.gather(
        store.link_teams(team(DISCORD), code_hash="hash-a", now=NOW + 1),
        store.link_teams(team(OTHER), code_hash="hash-a", now=NOW + 1),
    )
    assert sorted(won) == [False, True]
    assert (await store.get_link_code("hash-a")).used_at == NOW + 1  # type: ignore[union-attr]


async def test_a_refused_link_leaves_its_code_unused(store: Store) -> None:
    await store.put_link_code(code("a"))
    await store.put_link_code(code("b", tenant=OTHER, user="901"))
    assert await store.link_teams(team(), code_hash="hash-a", now=NOW)
    # OTHER's code, used by the already-linked DISCORD: nothing written, the code stays usable
    assert not await store.link_teams(team(DISCORD, OTHER), code_hash="hash-b", now=NOW)
    assert (await store.get_link_code("hash-b")).used_at is None  # type: ignore[union-attr]
    assert await store.team_link(OTHER) is None


async def test_a_new_code_withdraws_the_makers_earlier_one(store: Store) -> None:
    await store.put_link_code(code("a"))
    await store.put_link_code(dataclasses.replace(code("b"), created_at=NOW + 5))
    assert await store.get_link_code("hash-a") is None
    assert await store.get_link_code("hash-b") is not None


async def test_links_rehome_generations_and_unlinking_restores_them(store: Store) -> None:
    dora = Actor("discord", DISCORD, "700")
    team_key = KeyRef(KeyScope.TEAM, SLACK, "", make_generation().key.provider)
    await store.insert_generation(make_generation("before", actor=dora))
    await store.put_link_code(code("t"))
    assert await store.link_teams(team(), code_hash="hash-t", now=NOW)
    await store.put_link_code(code("p", LinkKind.PERSON, user="U0DORA"))
    person = PersonLink(SLACK, "U0DORA", DISCORD, "700", NOW)
    assert await store.link_people(person, code_hash="hash-p", now=NOW)
    assert await store.resolve_home(DISCORD, "700") == Home(SLACK, SLACK, "U0DORA")
    assert await store.resolve_home(DISCORD, "701") == Home(SLACK, DISCORD, "701")
    assert await store.resolve_home(SLACK, "U0DORA") is None
    linked = dataclasses.replace(dora, linked=Home(SLACK, SLACK, "U0DORA"))
    await store.insert_generation(make_generation("during", actor=linked, key=team_key))
    # her history and her use of the team key are one, from either account
    mine = await store.recent_generations(SLACK, "U0DORA")
    assert [g.id for g in mine] == ["during", "before"]
    assert mine[1].actor.home == Home(SLACK, SLACK, "U0DORA")
    spent = await store.spend_by_member(
        SLACK, scope=KeyScope.TEAM, provider=team_key.provider, since=0
    )
    assert list(spent) == ["U0DORA"]
    assert await store.unlink_teams(SLACK) == team()
    assert await store.person_links(DISCORD, "700") == []  # went with the team link
    assert await store.resolve_home(DISCORD, "700") is None
    back = await store.recent_generations(DISCORD, "700")
    assert [g.id for g in back] == ["during", "before"]
    assert all(g.actor.linked is None for g in back)


async def test_a_person_link_needs_the_team_link(store: Store) -> None:
    await store.put_link_code(code("p", LinkKind.PERSON, user="U0DORA"))
    person = PersonLink(SLACK, "U0DORA", DISCORD, "700", NOW)
    assert not await store.link_people(person, code_hash="hash-p", now=NOW)
    assert (await store.get_link_code("hash-p")).used_at is None  # type: ignore[union-attr]


async def watch_writes(url: str) -> Callable[[], Awaitable[list[str]]]:
    """A trigger on the store's database that notes the id of every generation row
    written from now on; the returned call gives those ids (sorted) and starts over."""
    if url.startswith("sqlite:"):
        path = path_from_url(url)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(
                "CREATE TABLE test_writes (id TEXT NOT NULL);"
                " CREATE TRIGGER test_writes AFTER UPDATE ON generations"
                " BEGIN INSERT INTO test_writes VALUES (new.id); END;"
            )

        async def written_sqlite() -> list[str]:
            with contextlib.closing(sqlite3.connect(path)) as db, db:
                ids = sorted(row[0] for row in db.execute("SELECT id FROM test_writes"))
                db.execute("DELETE FROM test_writes")
            return ids

        return written_sqlite
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE test_writes (id TEXT NOT NULL);"
            " CREATE FUNCTION test_writes() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO test_writes VALUES (NEW.id); RETURN NULL; END $$;"
            " CREATE TRIGGER test_writes AFTER UPDATE ON generations"
            " FOR EACH ROW EXECUTE FUNCTION test_writes();"
        )
    finally:
        await conn.close()

    async def written_postgres() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch("DELETE FROM test_writes RETURNING id")
        finally:
            await conn.close()
        return sorted(row["id"] for row in found)

    return written_postgres


async def test_a_link_change_writes_only_the_generations_whose_home_changes(
    store: Store, store_url: str
) -> None:
    dora, dan = Actor("discord", DISCORD, "700"), Actor("discord", DISCORD, "701")
    boss, bob = Actor("slack", SLACK, "U0DORA"), Actor("slack", SLACK, "U0BOB")
    elsewhere = Actor("discord", OTHER, "700")
    for name, who in (("dora1", dora), ("dora2", dora), ("dan", dan), ("boss", boss)):
        await store.insert_generation(make_generation(name, actor=who))
    for name, who in (("bob", bob), ("elsewhere", elsewhere)):
        await store.insert_generation(make_generation(name, actor=who))
    written = await watch_writes(store_url)
    await store.put_link_code(code("t"))
    assert await store.link_teams(team(), code_hash="hash-t", now=NOW)
    # the joined tenant's rows move to the home team; the home tenant's stay as they were
    assert await written() == ["dan", "dora1", "dora2"]
    await store.put_link_code(code("p", LinkKind.PERSON, user="U0DORA"))
    person = PersonLink(SLACK, "U0DORA", DISCORD, "700", NOW)
    assert await store.link_people(person, code_hash="hash-p", now=NOW)
    # one person's link: her rows alone (not her home account's, nor anyone else's)
    assert await written() == ["dora1", "dora2"]
    assert (await store.get_generation("dora1")).actor.home == Home(  # type: ignore[union-attr]
        SLACK, SLACK, "U0DORA"
    )
    assert await store.unlink_people(SLACK, "U0DORA") == [person]
    assert await written() == ["dora1", "dora2"]
    assert await store.unlink_teams(DISCORD) == team()
    assert await written() == ["dan", "dora1", "dora2"]
    for name, who in (("dora1", dora), ("dan", dan), ("boss", boss), ("elsewhere", elsewhere)):
        got = await store.get_generation(name)
        assert got is not None and got.actor.home == Home(who.tenant, who.tenant, who.user_id)


async def test_a_generation_resolved_before_a_link_change_is_stored_by_the_links_after_it(
    store: Store,
) -> None:
    dora = Actor("discord", DISCORD, "700")
    await store.put_link_code(code("t"))
    assert await store.link_teams(team(), code_hash="hash-t", now=NOW)
    await store.put_link_code(code("p", LinkKind.PERSON, user="U0DORA"))
    person = PersonLink(SLACK, "U0DORA", DISCORD, "700", NOW)
    assert await store.link_people(person, code_hash="hash-p", now=NOW)
    # resolved before either link: stored with the home the links give now
    await store.insert_generation(make_generation("late", actor=dora))
    got = await store.get_generation("late")
    assert got is not None and got.actor.home == Home(SLACK, SLACK, "U0DORA")
    assert [g.id for g in await store.recent_generations(SLACK, "U0DORA")] == ["late"]
    # resolved while the person link still held, stored after it was removed
    assert await store.unlink_people(DISCORD, "700") == [person]
    stale = dataclasses.replace(dora, linked=Home(SLACK, SLACK, "U0DORA"))
    await store.insert_generation(make_generation("later", actor=stale))
    got = await store.get_generation("later")
    assert got is not None and got.actor.home == Home(SLACK, DISCORD, "700")
    assert [g.id for g in await store.recent_generations(SLACK, "U0DORA")] == []
