"""The Store contract: every method of :class:`tmbot.ports.Store`, run against SQLite (a file
in tmp_path) and PostgreSQL (a fresh database on the session's throwaway cluster), so the two
implementations cannot drift. File- or server-specific behaviour lives in
``test_storage_sqlite.py`` and ``test_storage_postgres.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from storage import open_store
from tmbot.domain import Actor, GenerationSpec, Home, Place, ProviderName
from tmbot.errors import NotFound
from tmbot.ports import Store
from tmbot.records import (
    Budget,
    BudgetPeriod,
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
    PersonLink,
    Spend,
    TeamLink,
    UserSettings,
)

USER_KEY = KeyRef(KeyScope.USER, "T1", "U1", ProviderName.TASTEMACHINE)
TEAM_KEY = KeyRef(KeyScope.TEAM, "T1", "", ProviderName.TASTEMACHINE)
#: what each driver raises for a duplicate primary key
DUPLICATE = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)

OpenStore = Callable[..., Awaitable[Store]]


class Now:
    """The store's wall clock, set by the test."""

    def __init__(self, at: float = 42.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
async def store(url: str, now: Now) -> AsyncIterator[Store]:
    opened = await open_store(url, now=now)
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


async def link_accounts(store: Store, joined: Actor, home: Home) -> None:
    """Make ``joined``'s tenant one team with ``home.team`` and its account ``home``'s, as
    two admins and the person would (codes made at the home, used at once)."""
    at = 1000.0
    for kind, user in ((LinkKind.TEAM, "admin"), (LinkKind.PERSON, home.user_id)):
        await store.put_link_code(
            LinkCode(f"hash-{kind.value}", kind, home.tenant, user, at, at + 600)
        )
    team = TeamLink(home=home.team, joined=joined.tenant, linked_by="admin", linked_at=at)
    assert await store.link_teams(team, code_hash="hash-team", now=at)
    person = PersonLink(home.tenant, home.user_id, joined.tenant, joined.user_id, at)
    assert await store.link_people(person, code_hash="hash-person", now=at)


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
        deleted_at=1700000200.125,
        deleted_by="U9",
    )


def binding(ref: KeyRef = USER_KEY, **overrides: Any) -> KeyBinding:
    base = KeyBinding(ref=ref, ciphertext=b"\x00cipher\xff", fingerprint="…1234", created_at=5.0)
    return dataclasses.replace(base, **overrides)


# --- opening -----------------------------------------------------------------------------


async def test_ping_answers_until_closed(url: str) -> None:
    store = await open_store(url)
    assert await store.ping() is True
    await store.close()
    with contextlib.suppress(Exception):  # SQLite raises on a closed store; either is "no"
        assert await store.ping() is False
    await store.close()  # closing twice is harmless


async def test_reopening_keeps_data_and_migrates_nothing_new(url: str) -> None:
    first = await open_store(url)
    await first.insert_generation(make_generation("kept"))
    await first.put_key(binding())
    await first.close()
    second = await open_store(url)
    try:
        assert await second.get_generation("kept") == make_generation("kept")
        assert await second.get_key(USER_KEY) == binding()
    finally:
        await second.close()


# --- keys --------------------------------------------------------------------------------


async def test_key_binding_round_trip_and_upsert(store: Store) -> None:
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


async def test_list_keys_per_tenant_in_a_stable_order(store: Store) -> None:
    other = KeyRef(KeyScope.USER, "T0", "U1", ProviderName.VTRIX)
    upper = KeyRef(KeyScope.USER, "T1", "B", ProviderName.TASTEMACHINE)
    lower = KeyRef(KeyScope.USER, "T1", "a", ProviderName.TASTEMACHINE)
    for ref in (USER_KEY, TEAM_KEY, other, lower, upper):
        await store.put_key(binding(ref))
    every = [b.ref for b in await store.list_keys()]
    # tenant, scope, owner, provider; text compares bytewise ("B" before "a", as in C)
    assert every == [other, TEAM_KEY, upper, USER_KEY, lower]
    assert [b.ref for b in await store.list_keys("T1")] == [TEAM_KEY, upper, USER_KEY, lower]
    assert await store.list_keys("T9") == []


async def test_delete_key_reports_whether_it_removed_something(store: Store) -> None:
    await store.put_key(binding())
    assert await store.delete_key(USER_KEY) is True
    assert await store.get_key(USER_KEY) is None
    assert await store.delete_key(USER_KEY) is False


async def test_record_balance_updates_only_existing_bindings(store: Store) -> None:
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


# --- settings ----------------------------------------------------------------------------


async def test_settings_default_round_trip_and_replace(store: Store) -> None:
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


# --- budgets and request channels --------------------------------------------------------


async def test_budgets_round_trip_replace_list_and_delete(store: Store, now: Now) -> None:
    assert await store.get_budget("T1", "") is None
    assert await store.list_budgets("T1") == []
    await store.put_budget(Budget("T1", "bob", 50, BudgetPeriod.DAY))
    await store.put_budget(Budget("T1", "", 200, BudgetPeriod.MONTH, updated_at=7.5))
    await store.put_budget(Budget("T1", "Al", 5, BudgetPeriod.DAY))
    await store.put_budget(Budget("T2", "bob", 1, BudgetPeriod.DAY))
    assert await store.get_budget("T1", "bob") == Budget(
        "T1", "bob", 50, BudgetPeriod.DAY, updated_at=42.0
    )
    # the default first (''), then members by id, bytewise
    assert [(b.member, b.amount) for b in await store.list_budgets("T1")] == [
        ("", 200),
        ("Al", 5),
        ("bob", 50),
    ]
    now.at = 43.0
    await store.put_budget(Budget("T1", "bob", 0, BudgetPeriod.MONTH))
    assert await store.get_budget("T1", "bob") == Budget(
        "T1", "bob", 0, BudgetPeriod.MONTH, updated_at=43.0
    )
    assert await store.delete_budget("T1", "bob") is True
    assert await store.delete_budget("T1", "bob") is False
    assert await store.get_budget("T1", "bob") is None
    assert await store.get_budget("T2", "bob") is not None


async def test_request_channels_in_the_order_they_were_added(store: Store) -> None:
    assert await store.request_channels("T1") == []
    assert await store.set_request_channel("T1", "Cb", enabled=True, by="U1", at=2.0)
    assert await store.set_request_channel("T1", "Ca", enabled=True, by="U1", at=3.0)
    assert await store.set_request_channel("T1", "B", enabled=True, by="U2", at=2.0)
    assert not await store.set_request_channel("T1", "Ca", enabled=True, by="U3", at=9.0)
    assert await store.request_channels("T1") == ["B", "Cb", "Ca"]
    assert await store.is_request_channel("T1", "Ca")
    assert not await store.is_request_channel("T2", "Ca")
    assert await store.set_request_channel("T1", "Cb", enabled=False, by="U1", at=4.0)
    assert not await store.set_request_channel("T1", "Cb", enabled=False, by="U1", at=5.0)
    assert await store.request_channels("T1") == ["B", "Ca"]


# --- credit use --------------------------------------------------------------------------


async def test_spend_is_reserved_settled_and_released_by_member(store: Store) -> None:
    team = dataclasses.replace(TEAM_KEY, tenant="slack:T1")

    def gen(gen_id: str, user: str, **changes: Any) -> Generation:
        actor = Actor(platform="slack", tenant="slack:T1", user_id=user)
        return make_generation(gen_id, actor=actor, key=team, **{"cost": 10.0, **changes})

    rows = [
        gen("running", "alice", status=GenStatus.SUBMITTED),  # reserved: 10
        gen("settled", "alice", status=GenStatus.DELIVERED, credits_consumed=8.0),  # 8
        gen("released", "alice", status=GenStatus.FAILED),  # nothing charged: 0, no image
        gen("charged", "alice", status=GenStatus.FAILED, credits_consumed=3.0),  # 3
        gen("old", "alice", created_at=10.0, status=GenStatus.DELIVERED),  # before `since`
        gen("bobs", "bob", status=GenStatus.ACCEPTED, cost=15.0),
        make_generation("personal", cost=99.0),  # another key scope
    ]
    for row in rows:
        await store.insert_generation(row)
    since = 500.0
    args = {"scope": KeyScope.TEAM, "provider": ProviderName.TASTEMACHINE, "since": since}
    assert await store.spend("slack:T1", "alice", **args) == Spend(credits=21.0, images=3)
    assert await store.spend("slack:T1", "carol", **args) == Spend()
    by_member = await store.spend_by_member("slack:T1", **args)
    assert by_member == {"alice": Spend(21.0, 3), "bob": Spend(15.0, 1)}
    assert list(by_member) == ["alice", "bob"]
    vtrix = {**args, "provider": ProviderName.VTRIX}
    assert await store.spend_by_member("slack:T1", **vtrix) == {}


async def test_pending_cost_counts_only_what_is_not_yet_sent(store: Store) -> None:
    for gen_id, status in [
        ("a", GenStatus.ACCEPTED),
        ("b", GenStatus.SUBMITTING),
        ("c", GenStatus.SUBMITTED),
        ("d", GenStatus.DELIVERED),
    ]:
        await store.insert_generation(make_generation(gen_id, status=status, cost=10.0))
    await store.insert_generation(make_generation("e", cost=None))
    await store.insert_generation(make_generation("f", key=TEAM_KEY, cost=7.0))
    assert await store.pending_cost(USER_KEY) == 20.0
    assert await store.pending_cost(TEAM_KEY) == 7.0
    assert await store.pending_cost(dataclasses.replace(USER_KEY, owner="U2")) == 0.0


# --- generations -------------------------------------------------------------------------


async def test_generation_round_trip_every_field(store: Store) -> None:
    full = full_generation()
    await store.insert_generation(make_generation("origin"))
    full = dataclasses.replace(full, regenerated_from="origin")
    assert full.actor.linked is not None  # the home is the links' (the store recomputes it)
    await link_accounts(store, full.actor, full.actor.linked)
    await store.insert_generation(full)
    assert await store.get_generation("full") == full

    minimal = make_generation("min")
    await store.insert_generation(minimal)
    got = await store.get_generation("min")
    assert got == minimal
    assert got is not None and got.spec.image_urls == () and got.place.thread is None
    assert await store.get_generation("missing") is None


async def test_insert_of_a_duplicate_id_fails(store: Store) -> None:
    await store.insert_generation(make_generation())
    with pytest.raises(DUPLICATE):
        await store.insert_generation(make_generation())
    # The failed transaction was rolled back; the store still works.
    await store.insert_generation(make_generation("g2"))
    assert await store.get_generation("g2") == make_generation("g2")


async def test_update_generation_replaces_the_row(store: Store) -> None:
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


async def test_update_of_a_missing_generation_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_generation(make_generation("ghost"))
    assert await store.get_generation("ghost") is None


async def test_unfinished_generations_oldest_first_without_final_ones(store: Store) -> None:
    rows = [
        make_generation("e", status=GenStatus.SUBMITTED, created_at=30.0),
        make_generation("a", status=GenStatus.DELIVERED, created_at=5.0),
        make_generation("d", status=GenStatus.ACCEPTED, created_at=10.0),
        make_generation("c", status=GenStatus.SUBMITTING, created_at=10.0),
        make_generation("b", status=GenStatus.FAILED, created_at=1.0),
        make_generation("f", status=GenStatus.COMPLETED, created_at=2.0),
        make_generation("D", status=GenStatus.ACCEPTED, created_at=10.0),
    ]
    for row in rows:
        await store.insert_generation(row)
    assert [g.id for g in await store.unfinished_generations()] == ["f", "D", "c", "d", "e"]


async def test_recent_generations_newest_first_for_that_user(store: Store) -> None:
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


# --- message links -----------------------------------------------------------------------


async def test_message_links_both_ways(store: Store) -> None:
    await store.insert_generation(make_generation("g1"))
    await store.insert_generation(make_generation("g2"))
    card = MessageLink("slack", "C1", "111.1", "g1")
    image = MessageLink("slack", "C1", "111.2", "g1", kind="image")
    await store.link_message(card)
    await store.link_message(image)
    other = MessageLink("discord", "C1", "111.1", "g2")
    await store.link_message(other)

    assert await store.generation_for_message("slack", "C1", "111.1") == "g1"
    assert await store.generation_for_message("discord", "C1", "111.1") == "g2"
    assert await store.generation_for_message("slack", "C2", "111.1") is None
    assert await store.messages_for_generation("g1") == [card, image]
    assert await store.messages_for_generation("nothing") == []

    # Linking the same message again re-points it; it keeps its place in the order.
    moved = MessageLink("slack", "C1", "111.2", "g2", kind="image")
    await store.link_message(moved)
    assert await store.generation_for_message("slack", "C1", "111.2") == "g2"
    assert await store.messages_for_generation("g1") == [card]
    assert await store.messages_for_generation("g2") == [moved, other]


async def test_linking_to_an_unknown_generation_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.link_message(MessageLink("slack", "C1", "1", "ghost"))
    assert await store.generation_for_message("slack", "C1", "1") is None


# --- the outbox --------------------------------------------------------------------------


async def test_events_are_numbered_per_generation_and_stored_with_the_row(
    store: Store, now: Now
) -> None:
    made = await store.insert_generation(
        make_generation("g1"), [NewEvent("accepted", {"n": 1}), NewEvent("queued", {"p": 2})]
    )
    assert [(e.generation_id, e.seq, e.kind, e.platform) for e in made] == [
        ("g1", 1, "accepted", "slack"),
        ("g1", 2, "queued", "slack"),
    ]
    await store.insert_generation(make_generation("g2"), [NewEvent("accepted")])
    more = await store.add_events("g1", [NewEvent("started", {"ü": "東京"})])
    assert more is not None and [(e.seq, e.kind) for e in more] == [(3, "started")]
    pending = await store.pending_events("slack", limit=10)
    assert [(e.generation_id, e.seq) for e in pending] == [
        ("g1", 1),
        ("g1", 2),
        ("g2", 1),
        ("g1", 3),
    ]
    assert [e.id for e in pending] == sorted(e.id for e in pending)
    assert pending[3].payload == {"ü": "東京"} and pending[0].payload == {"n": 1}
    assert [e.id for e in await store.pending_events("slack", limit=2)] == [
        e.id for e in pending[:2]
    ]
    assert await store.pending_events("discord", limit=10) == []
    only_g1 = await store.pending_events("slack", limit=10, generation_id="g1")
    assert [(e.generation_id, e.seq) for e in only_g1] == [("g1", 1), ("g1", 2), ("g1", 3)]
    assert await store.pending_events("slack", limit=1, generation_id="g2") == [pending[2]]
    assert await store.pending_events("discord", limit=10, generation_id="g1") == []
    assert await store.insert_generation(make_generation("g3")) == []
    with pytest.raises(NotFound):
        await store.add_events("ghost", [NewEvent("accepted")])


async def test_transition_writes_only_from_the_expected_status(store: Store) -> None:
    gen = make_generation("g1")
    await store.insert_generation(gen, [NewEvent("accepted")])
    moved = dataclasses.replace(gen, status=GenStatus.SUBMITTING, updated_at=1001.0)
    made = await store.transition(moved, expect=GenStatus.ACCEPTED, events=[NewEvent("started")])
    assert made is not None and [(e.seq, e.kind) for e in made] == [(2, "started")]
    assert await store.get_generation("g1") == moved
    # stale: the stored status is no longer ACCEPTED; nothing is written
    stale = dataclasses.replace(gen, status=GenStatus.FAILED, error="late")
    assert (
        await store.transition(stale, expect=GenStatus.ACCEPTED, events=[NewEvent("failed")])
        is None
    )
    assert await store.get_generation("g1") == moved
    assert [e.kind for e in await store.pending_events("slack", limit=9)] == ["accepted", "started"]
    assert await store.transition(make_generation("ghost"), expect=GenStatus.ACCEPTED) is None
    # no events: the row alone
    done = dataclasses.replace(moved, status=GenStatus.SUBMITTED, task_id="t1")
    assert await store.transition(done, expect=GenStatus.SUBMITTING) == []
    assert await store.get_generation("g1") == done


async def test_add_events_with_expect_writes_only_from_that_status(store: Store) -> None:
    await store.insert_generation(make_generation("g1", status=GenStatus.SUBMITTED))
    assert await store.add_events("g1", [NewEvent("queued")], expect=GenStatus.ACCEPTED) is None
    assert await store.add_events("ghost", [NewEvent("queued")], expect=GenStatus.ACCEPTED) is None
    made = await store.add_events("g1", [NewEvent("started")], expect=GenStatus.SUBMITTED)
    assert made is not None and [e.kind for e in made] == ["started"]
    assert [e.kind for e in await store.pending_events("slack", limit=9)] == ["started"]


async def test_a_newer_progress_event_replaces_an_older_one_not_yet_shown(
    store: Store, now: Now
) -> None:
    await store.insert_generation(
        make_generation("g1"), [NewEvent("accepted"), NewEvent("queued", {"position": 3})]
    )
    await store.insert_generation(make_generation("g2"), [NewEvent("queued")])
    now.at = 50.0
    await store.add_events("g1", [NewEvent("queued", {"position": 1}, replaces=("queued",))])
    pending = await store.pending_events("slack", limit=9)
    assert [(e.generation_id, e.kind, dict(e.payload)) for e in pending] == [
        ("g1", "accepted", {}),
        ("g2", "queued", {}),
        ("g1", "queued", {"position": 1}),
    ]
    assert [e.seq for e in pending if e.generation_id == "g1"] == [1, 3]


async def test_blobs_are_kept_until_the_event_is_done(store: Store) -> None:
    image = bytes(range(256)) * 4
    (accepted, delivered) = await store.insert_generation(
        make_generation("g1"), [NewEvent("accepted"), NewEvent("delivered", blob=image)]
    )
    assert delivered.has_blob and not accepted.has_blob
    pending = await store.pending_events("slack", limit=9)
    assert [e.has_blob for e in pending] == [False, True]
    assert await store.event_blob(delivered.id) == image
    assert await store.event_blob(accepted.id) is None
    assert await store.event_blob(999_999) is None
    await store.settle_events([EventOutcome(delivered.id, done=True, attempts=1)])
    assert await store.event_blob(delivered.id) is None


async def test_settle_events_marks_done_retries_and_stores_links(store: Store) -> None:
    made = await store.insert_generation(
        make_generation("g1"), [NewEvent("accepted"), NewEvent("started"), NewEvent("failed")]
    )
    card = MessageLink("slack", "C1", "card-1", "g1")
    await store.settle_events(
        [
            EventOutcome(made[0].id, done=True, links=(card,), attempts=1),
            EventOutcome(made[1].id, done=False, attempts=2, next_attempt_at=77.5, error="down"),
            EventOutcome(made[2].id, done=True, attempts=6, error="given up"),
        ]
    )
    pending = await store.pending_events("slack", limit=9)
    assert [(e.id, e.attempts, e.next_attempt_at) for e in pending] == [(made[1].id, 2, 77.5)]
    assert await store.messages_for_generation("g1") == [card]
    # a done event stays done when settled again
    await store.settle_events([EventOutcome(made[0].id, done=False, attempts=3)])
    await store.settle_events([EventOutcome(made[1].id, done=True, attempts=3)])
    assert await store.pending_events("slack", limit=9) == []
    await store.settle_events([])


# --- remembered platform events ----------------------------------------------------------


async def test_remember_keeps_a_live_record_and_replaces_an_expired_one(store: Store) -> None:
    assert await store.remember("slack", "Ev1", value="first", now=100.0, ttl=10.0) is None
    assert await store.remember("slack", "Ev1", value="second", now=105.0, ttl=10.0) == "first"
    assert await store.remember("discord", "Ev1", value="other", now=105.0, ttl=10.0) is None
    assert await store.remember("slack", "ev1", value="case", now=105.0, ttl=10.0) is None
    # expired at 110: recorded afresh
    assert await store.remember("slack", "Ev1", value="third", now=110.0, ttl=10.0) is None
    assert await store.remember("slack", "Ev1", value="fourth", now=119.0, ttl=10.0) == "third"
    await store.forget("slack", "Ev1")
    await store.forget("slack", "never")
    assert await store.remember("slack", "Ev1", value="fifth", now=119.0, ttl=10.0) is None


async def test_concurrent_remember_records_once(store: Store) -> None:
    answers = await asyncio.gather(
        *(store.remember("regen", "g1", value=f"v{i}", now=1.0, ttl=10.0) for i in range(20))
    )
    assert answers.count(None) == 1
    winner = f"v{answers.index(None)}"
    assert all(a == winner for a in answers if a is not None)


# --- operations --------------------------------------------------------------------------


async def test_overview_counts_by_status_key_platform_and_lists_failures(store: Store) -> None:
    await store.put_key(binding(fingerprint="…user"))
    for gen_id, status, key, updated in [
        ("a", GenStatus.ACCEPTED, USER_KEY, 1.0),
        ("b", GenStatus.ACCEPTED, USER_KEY, 1.0),
        ("c", GenStatus.SUBMITTED, USER_KEY, 1.0),
        ("d", GenStatus.SUBMITTING, TEAM_KEY, 1.0),
        ("e", GenStatus.DELIVERED, USER_KEY, 1.0),
        ("f", GenStatus.FAILED, USER_KEY, 5.0),
        ("g", GenStatus.FAILED, TEAM_KEY, 9.0),
    ]:
        await store.insert_generation(
            make_generation(gen_id, status=status, key=key, updated_at=updated),
            [NewEvent("accepted")],
        )
    await store.add_events("a", [NewEvent("queued")])
    seen = await store.overview(failures=1)
    assert seen.by_status == {
        GenStatus.ACCEPTED: 2,
        GenStatus.SUBMITTED: 1,
        GenStatus.SUBMITTING: 1,
        GenStatus.DELIVERED: 1,
        GenStatus.FAILED: 2,
    }
    assert set(seen.keys) == {
        KeyLoad(ProviderName.TASTEMACHINE, KeyScope.USER, "…user", waiting=2, running=1),
        KeyLoad(ProviderName.TASTEMACHINE, KeyScope.TEAM, "(unbound)", waiting=0, running=1),
    }
    assert seen.keys[0].fingerprint == "…user"  # the busiest key first
    assert seen.undelivered_events == {"slack": 8}
    assert [g.id for g in seen.recent_failures] == ["g"]
    assert len((await store.overview()).recent_failures) == 2


# --- concurrency -------------------------------------------------------------------------


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
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


async def test_racing_transitions_one_wins_and_events_stay_numbered(store: Store) -> None:
    gen = make_generation("g1")
    await store.insert_generation(gen, [NewEvent("accepted")])
    racers = [
        store.transition(
            dataclasses.replace(gen, status=GenStatus.SUBMITTING, task_id=str(i)),
            expect=GenStatus.ACCEPTED,
            events=[NewEvent("started", {"by": i})],
        )
        for i in range(10)
    ]
    appenders = [store.add_events("g1", [NewEvent("queued", {"n": i})]) for i in range(10)]
    results = await asyncio.gather(*racers, *appenders)
    winners = [r for r in results[:10] if r is not None]
    assert len(winners) == 1
    pending = await store.pending_events("slack", limit=100)
    assert sorted(e.seq for e in pending) == list(range(1, 13))
    stored = await store.get_generation("g1")
    assert stored is not None and stored.status is GenStatus.SUBMITTING
    assert winners[0][0].payload == {"by": int(stored.task_id or "-1")}


async def test_a_cancelled_write_leaves_the_store_usable(store: Store) -> None:
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
