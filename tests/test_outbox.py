"""The core's seam to chat platforms: the stored state machine, the ordered outbox and its
dispatcher, follow-up places, refine, durable dedupe and namespaced tenants. Real parts: the
simulator over HTTP, a SQLite file, the whole bot built by the composition root."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from storage.sqlite import SqliteStore
from tests.harness import Bot, Recorder, old_database
from tmbot.domain import Actor, Place, tenant_of
from tmbot.errors import Conflict, IllegalTransition, ParseError
from tmbot.events import Accepted, Delivered, Event, Queued, Started, encode
from tmbot.lifecycle import MOVES, check_move
from tmbot.outbox import DispatchPolicy
from tmbot.ports import Notice
from tmbot.records import GenStatus, MessageLink
from tmbot.replies import GenerationAccepted
from tmbot.simulator import Simulator

KEY = "tm_test_outboxAAAAAAAA01"
MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]


def kinds(recorder: Recorder, generation_id: str) -> list[str]:
    return [type(e).__name__ for e in recorder.of(generation_id)]


# --- the state machine ---------------------------------------------------------------------


def test_the_legal_moves_are_a_table_and_nothing_else_passes() -> None:
    for current in GenStatus:
        for to in GenStatus:
            if to in MOVES[current]:
                check_move(current, to)
            else:
                with pytest.raises(IllegalTransition):
                    check_move(current, to)
    assert GenStatus.SUBMITTING not in MOVES[GenStatus.DELIVERED]
    assert all(GenStatus.FAILED in MOVES[s] for s in GenStatus)


async def test_an_illegal_or_stale_move_writes_nothing(make_bot: MakeBot) -> None:
    async with make_bot(dispatch=False) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.engine.wait_idle()
        stored = await bot.store.get_generation(gen.id)
        assert stored is not None and stored.status is GenStatus.DELIVERED
        with pytest.raises(IllegalTransition):
            await bot.engine.lifecycle.move(stored, GenStatus.SUBMITTED)
        # a move from a status the row no longer has (a stale copy) is refused whole
        with pytest.raises(Conflict):
            await bot.engine.lifecycle.move(
                gen, GenStatus.FAILED, events=[lambda g: Started(g)], error="stale"
            )
        after = await bot.store.get_generation(gen.id)
        assert after == stored
        pending = await bot.store.pending_events("test", limit=100)
        assert [e.kind for e in pending] == ["accepted", "started", "delivered"]


# --- ordered, at-least-once delivery ------------------------------------------------------


async def test_events_reach_the_notifier_in_order_per_generation(make_bot: MakeBot) -> None:
    async with make_bot() as bot:
        await bot.bind("alice", KEY)
        gens = [await bot.ask("alice", f"poster {n} --fast --res 1k") for n in range(14)]
        await bot.settled()
    for gen in gens:
        seen = kinds(bot.recorder, gen.id)
        assert seen[0] == "Accepted" and seen[-1] == "Delivered", seen
        assert seen.count("Delivered") == 1 and seen.count("Accepted") == 1
        assert "Started" in seen
        # progress only between the card and the image; never a queue position after Started
        middle = seen[1:-1]
        if "Queued" in middle:
            assert middle.index("Started") > max(i for i, k in enumerate(middle) if k == "Queued")
        assert len(bot.recorder.images(gen.id)) == 1


async def test_a_notifier_that_fails_twice_gets_each_event_once_more(make_bot: MakeBot) -> None:
    recorder = Recorder(fail_next=2)
    async with make_bot(recorder=recorder) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.settled()
    handed = [kind for g, kind in recorder.calls if g == gen.id]
    taken = kinds(recorder, gen.id)
    assert taken == ["Accepted", "Started", "Delivered"]
    # the first event was refused twice, then taken: two more hand-overs in all, not more
    assert handed == ["Accepted", "Accepted", "Accepted", "Started", "Delivered"]
    assert len(recorder.images(gen.id)) == 1


async def test_a_newer_progress_state_replaces_an_older_one_not_yet_shown(
    make_bot: MakeBot,
) -> None:
    async with make_bot(dispatch=False) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.engine.wait_idle()
        store = bot.store
        stored = await store.get_generation(gen.id)
        assert stored is not None
        await store.add_events(gen.id, [encode(Queued(stored, 3))])
        await store.add_events(gen.id, [encode(Queued(stored, 2))])
        pending = [e.kind for e in await store.pending_events("test", limit=100)]
        # the earlier "started" and the first queue position were replaced; finals never are
        assert pending == ["accepted", "delivered", "queued"]
        # a queue position for a generation no longer waiting is not written at all
        assert not await bot.engine.lifecycle.emit(
            stored, Queued(stored, 1), expect=GenStatus.ACCEPTED
        )


async def test_a_restart_with_events_left_posts_each_image_once_and_ends_each_card(
    make_bot: MakeBot,
) -> None:
    # the platform is not reachable while the images are made: everything waits in the outbox
    async with make_bot(dispatch=False) as bot:
        await bot.bind("alice", KEY)
        gens = [await bot.ask("alice", f"poster {n} --fast --res 1k") for n in range(4)]
        await bot.engine.wait_idle()
        assert bot.recorder.events == []
    recorder = Recorder()
    async with make_bot(recorder=recorder) as bot:
        await bot.settled()
    for gen in gens:
        assert kinds(recorder, gen.id) == ["Accepted", "Started", "Delivered"]
        assert len(recorder.images(gen.id)) == 1
        cards = [p for p in recorder.posts if p.generation_id == gen.id and p.kind == "card"]
        assert len(cards) == 1
    # and once more: nothing is left, nothing is posted again
    again = Recorder()
    async with make_bot(recorder=again) as bot:
        await bot.settled()
    assert again.events == [] and again.posts == []


async def test_a_crash_between_posting_and_bookkeeping_does_not_post_twice(
    make_bot: MakeBot,
) -> None:
    recorder = Recorder(crash_after_post=1)
    async with make_bot(recorder=recorder) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.settled()
    assert [k for g, k in recorder.calls if g == gen.id].count("Delivered") == 2
    assert len(recorder.images(gen.id)) == 1  # the second hand-over found the stored link
    (final,) = recorder.final(gen.id)
    assert isinstance(final, Delivered)


async def test_a_crash_in_the_middle_of_a_run_leaves_events_for_the_next_one(
    make_bot: MakeBot,
) -> None:
    """The platform is down for the whole run (its next try would be a minute away): the run
    ends with the card and the image not shown; the next run shows both, once."""
    recorder = Recorder(fail_next=10**6)
    async with make_bot(recorder=recorder, policy=DispatchPolicy(backoff_base=60.0)) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.engine.wait_idle()
        await recorder.wait_for(lambda: len(recorder.calls) >= 1)
    assert recorder.posts == [] and recorder.calls == [(gen.id, "Accepted")]
    fresh = Recorder()
    async with make_bot(recorder=fresh) as bot:
        await bot.settled()
    assert kinds(fresh, gen.id) == ["Accepted", "Started", "Delivered"]
    assert len(fresh.images(gen.id)) == 1


# --- follow-ups: regenerate and refine ----------------------------------------------------


async def test_a_regenerate_gets_a_card_of_its_own_in_the_originals_thread(
    make_bot: MakeBot,
) -> None:
    async with make_bot() as bot:
        await bot.bind("alice", KEY)
        await bot.bind("bob", "tm_test_bobBBBBBBBBBBBB02")
        original = await bot.ask("alice", "a poster --fast --res 1k")
        await bot.settled()
        (card,) = [
            p for p in bot.recorder.posts if p.generation_id == original.id and p.kind == "card"
        ]
        reply = await bot.engine.regenerate(bot.actor("bob"), original.id)
        again = reply.generation
        await bot.settled()
        recorder = bot.recorder
    # a second trigger within the window, even after a restart, is the same one
    async with make_bot() as bot:
        repeat = await bot.engine.regenerate(bot.actor("bob"), original.id)
    assert repeat == GenerationAccepted(repeat.generation, duplicate=True)
    assert repeat.generation.id == again.id
    assert again.place == Place(platform="test", channel="C1", thread=card.message_id)
    assert again.key.owner == "bob"
    cards = [p for p in recorder.posts if p.kind == "card"]
    assert [c.generation_id for c in cards] == [original.id, again.id]


async def test_refine_layers_flags_and_refers_to_the_image_while_its_link_lives(
    make_bot: MakeBot, sim: Simulator
) -> None:
    async with make_bot() as bot:
        await bot.bind("alice", KEY)
        original = await bot.ask("alice", "a poster for a Tokyo coffee shop --ar 3:4 --fast")
        await bot.settled()
        done = await bot.store.get_generation(original.id)
        assert done is not None and done.image_url is not None
        refined = (
            await bot.engine.refine(bot.actor("alice"), original.id, "warmer tones --ar 4:5")
        ).generation
        await bot.settled()
        spec = refined.spec
        assert spec.brief == "a poster for a Tokyo coffee shop warmer tones"
        assert (spec.aspect_ratio, spec.model) == ("4:5", "nano-banana-2")  # new flag wins
        assert spec.image_urls == (done.image_url,)
        assert refined.regenerated_from == original.id
        # the provider was asked with the previous image as a reference
        task = sim.tasks()[-1]
        assert task["image_urls"] == [done.image_url]
        assert task["aspect_ratio"] == "4:5"

        # once its link has expired, the image is no longer sent as a reference
        await bot.store.update_generation(dataclasses.replace(done, expires_at=1.0))
        later = (await bot.engine.refine(bot.actor("alice"), original.id, "--res 2k")).generation
        await bot.settled()
        assert later.spec.image_urls == ()
        assert later.spec.resolution == "2k" and later.spec.aspect_ratio == "3:4"
        assert sim.tasks()[-1]["image_urls"] == []
        with pytest.raises(ParseError):
            await bot.engine.refine(bot.actor("alice"), original.id, "   ")


# --- durable dedupe and tenants -----------------------------------------------------------


async def test_a_platform_event_seen_before_a_restart_counts_once(make_bot: MakeBot) -> None:
    async with make_bot() as bot:
        assert await bot.engine.first_time("slack-event", "Ev123")
        assert not await bot.engine.first_time("slack-event", "Ev123")
        assert await bot.engine.first_time("slack-event", "Ev124")
        assert await bot.engine.first_time("other-scope", "Ev123")
    async with make_bot() as bot:
        assert not await bot.engine.first_time("slack-event", "Ev123")
        assert await bot.engine.first_time("slack-event", "Ev999", ttl=0.0)
        assert await bot.engine.first_time("slack-event", "Ev999")  # its record expired


def test_actors_tenants_are_namespaced_by_platform() -> None:
    assert tenant_of("slack", "T1") == "slack:T1"
    assert tenant_of("slack", "slack:T1") == "slack:T1"
    assert Actor("discord", "discord:42", "7").tenant == "discord:42"
    with pytest.raises(ValueError, match="namespaced"):
        Actor("slack", "T1", "U1")
    with pytest.raises(ValueError, match="namespaced"):
        Actor("slack", "discord:1", "U1")


async def test_the_migration_namespaces_existing_tenants(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with old_database(db, migrations=3) as conn:
        conn.execute(
            "INSERT INTO key_bindings VALUES ('user', 'local', 'alice', 'tastemachine', x'00',"
            " '…0001', 1, NULL, NULL)"
        )
        conn.execute("INSERT INTO team_settings VALUES ('local', 1, 1)")
        conn.execute("INSERT INTO users (tenant, user_id, updated_at) VALUES ('T9', 'bob', 1)")
        conn.execute(
            "INSERT INTO generations (id, actor_platform, actor_tenant, actor_user_id,"
            " actor_is_admin, actor_display_name, place_platform, place_channel,"
            " spec_provider, spec_brief, spec_model, spec_aspect_ratio, spec_resolution,"
            " spec_image_urls, key_scope, key_tenant, key_owner, key_provider, status,"
            " created_at, updated_at) VALUES ('g1', 'slack', 'T9', 'bob', 0, '', 'slack', 'C',"
            " 'tastemachine', 'b', 'nano-banana-pro', '1:1', '2k', '[]', 'user', 'T9', 'bob',"
            " 'tastemachine', 'delivered', 1, 1)"
        )
    store = await SqliteStore.open(db)
    try:
        gen = await store.get_generation("g1")
        assert gen is not None
        assert (gen.actor.tenant, gen.key.tenant) == ("slack:T9", "slack:T9")
        rows = await store._db.execute_fetchall("SELECT tenant FROM key_bindings")
        assert [r[0] for r in rows] == ["console:local"]
        rows = await store._db.execute_fetchall("SELECT tenant FROM users")
        assert [r[0] for r in rows] == ["slack:T9"]  # its platform told by its generations
    finally:
        await store.close()


async def test_accepted_is_the_first_event_and_carries_the_place(make_bot: MakeBot) -> None:
    async with make_bot(platform="slack") as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.settled()
    first = bot.recorder.of(gen.id)[0]
    assert isinstance(first, Accepted)
    assert first.generation.place.platform == "slack"
    assert first.generation.actor.tenant == "slack:T1"


async def test_progress_waiting_in_memory_is_replaced_as_in_the_store(make_bot: MakeBot) -> None:
    """While the notifier is busy with a generation's card, its later progress events wait in
    the dispatcher's memory: a newer one replaces them there as it does in the store."""
    gate = asyncio.Event()

    @dataclasses.dataclass
    class SlowCard(Recorder):
        async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
            if isinstance(event, Accepted):
                await gate.wait()
            return await super().notify(event, notice)

    recorder = SlowCard()
    async with make_bot(recorder=recorder) as bot:
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a poster")
        await bot.engine.wait_idle()  # Started and Delivered now wait behind the card
        stored = await bot.store.get_generation(gen.id)
        assert stored is not None
        await bot.engine.lifecycle.emit(stored, Queued(stored, 3))
        await bot.engine.lifecycle.emit(stored, Queued(stored, 2))
        gate.set()
        await bot.settled()
        assert await bot.store.pending_events("test", limit=10) == []
    handed = recorder.of(gen.id)
    assert [type(e).__name__ for e in handed] == ["Accepted", "Delivered", "Queued"]
    last = handed[-1]
    assert isinstance(last, Queued) and last.position == 2
