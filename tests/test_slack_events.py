"""Mentions, request channels, refinements, reactions, buttons, deletion and Slack's
retries, through bolt's real HTTP endpoint against the fake Slack and the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.fakes.slack import BOT_USER_ID, GENERAL, FakeSlack, payloads
from tests.harness import Bot
from tests.slack_rig import (
    ALICE,
    ALICE_KEY,
    BOB,
    BOB_KEY,
    BOSS,
    TEAM_KEY,
    Rig,
    people,
    slack_rig,
)
from tmbot import Generation

MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]
TENANT = "slack:T0FAKE000"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        people(fake)
        yield fake


async def bind(rig: Rig, user: str, key: str) -> None:
    mark = rig.fake.mark()
    await rig.slash(f"key {key}", user=user)
    await rig.ephemeral(after=mark)


async def finished_card(
    rig: Rig, *, after: int, thread: str | None = None
) -> tuple[str, Generation]:
    card = await rig.card(after=after, thread=thread)
    card_ts = str(card.response["ts"])
    await rig.done(card_ts)
    await rig.bot.settled()
    gen = await rig.bot.engine.generation_for_message("slack", GENERAL, card_ts)
    assert gen is not None
    return card_ts, gen


async def test_mention_generates_into_the_message_thread_and_a_thread_mention_refines(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        await bind(rig, BOB, BOB_KEY)
        said = fake.add_user_message(GENERAL, ALICE, f"<@{BOT_USER_ID}> a lighthouse at dawn")
        mark = fake.mark()
        event = payloads.app_mention_event(f"<@{BOT_USER_ID}> a lighthouse at dawn", ts=said.ts)
        assert (await rig.event(event)).status == 200
        card_ts, first = await finished_card(rig, after=mark, thread=said.ts)
        assert first.spec.brief == "a lighthouse at dawn"
        assert first.place.thread == said.ts
        # bob refines it in the thread: paid by bob, the previous image as a reference
        reply = fake.add_user_message(
            GENERAL,
            BOB,
            f"<@{BOT_USER_ID}> warmer, more negative space --ar 4:5",
            thread_ts=said.ts,
        )
        mark = fake.mark()
        event = payloads.app_mention_event(
            f"<@{BOT_USER_ID}> warmer, more negative space --ar 4:5",
            ts=reply.ts,
            user=BOB,
            thread_ts=said.ts,
        )
        await rig.event(event)
        _, refined = await finished_card(rig, after=mark, thread=said.ts)
    assert refined.regenerated_from == first.id
    assert refined.actor.user_id == BOB and refined.key.owner == BOB
    assert refined.spec.brief == "a lighthouse at dawn warmer, more negative space"
    assert refined.spec.aspect_ratio == "4:5"
    assert first.image_url is not None and refined.spec.image_urls[0] == first.image_url
    assert len(fake.thread(GENERAL, said.ts)) == 6  # brief, card, image, reply, card, image
    assert card_ts != said.ts


async def test_a_request_channel_takes_every_new_message_as_a_brief(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("team channel on", user=ALICE)
        assert "admin" in (await rig.ephemeral(after=mark)).lower()
        mark = fake.mark()
        await rig.slash("team channel on", user=BOSS)
        assert "request channel" in await rig.ephemeral(after=mark)
        mark = fake.mark()
        await rig.slash("team show", user=BOSS)
        assert GENERAL in await rig.ephemeral(after=mark)
        said = fake.add_user_message(GENERAL, ALICE, "a red bicycle in the rain")
        mark = fake.mark()
        await rig.event(payloads.message_event("a red bicycle in the rain", ts=said.ts))
        _, gen = await finished_card(rig, after=mark, thread=said.ts)
        assert gen.spec.brief == "a red bicycle in the rain"
        # replies, bots' messages and our own are not briefs
        mark = fake.mark()
        reply = fake.add_user_message(GENERAL, ALICE, "nice", thread_ts=said.ts)
        await rig.event(payloads.message_event("nice", ts=reply.ts, thread_ts=said.ts))
        other = payloads.bot_message_event(
            "a bot brief", ts=fake.next_ts(), bot_id="B0OTHER00", user=None
        )
        await rig.event(other)
        own = payloads.bot_message_event("my own card", ts=fake.next_ts())
        await rig.event(own)
        await rig.bot.settled()
        assert await rig.bot.store.recent_generations(TENANT, ALICE) == [gen]
        assert [c for c in fake.calls if c.seq > mark and c.method == "chat.postMessage"] == []


async def test_reaction_regenerates_into_the_same_thread_billed_to_the_reactor(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        await bind(rig, BOB, BOB_KEY)
        mark = fake.mark()
        await rig.slash("a paper crane")
        card_ts, first = await finished_card(rig, after=mark)
        # react on the image message (its ts was learned from files.info)
        image_ts = fake.thread(GENERAL, card_ts)[1].ts
        mark = fake.mark()
        await rig.event(payloads.reaction_added_event("repeat", item_ts=image_ts, user=BOB))
        _, again = await finished_card(rig, after=mark, thread=card_ts)
    assert again.regenerated_from == first.id
    assert again.actor.user_id == BOB and again.key.owner == BOB
    assert again.place.thread == card_ts


async def test_buttons_again_and_delete(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        await bind(rig, BOB, BOB_KEY)
        mark = fake.mark()
        await rig.slash("a glass teapot")
        card_ts, first = await finished_card(rig, after=mark)
        mark = fake.mark()
        click = payloads.block_actions(
            "tmbot_again",
            value=first.id,
            block_id="tmbot_card_actions",
            message_ts=card_ts,
            user_id=BOB,
            user_name="bob",
        )
        assert (await rig.interact(click)).status == 200
        again_ts, again = await finished_card(rig, after=mark, thread=card_ts)
        assert again.actor.user_id == BOB
        # bob may not delete alice's; alice may
        mark = fake.mark()
        refuse = payloads.block_actions(
            "tmbot_delete",
            value=first.id,
            block_id="tmbot_card_actions",
            message_ts=card_ts,
            user_id=BOB,
            user_name="bob",
        )
        await rig.interact(refuse)
        assert "Only the person" in await rig.ephemeral(after=mark)
        assert fake.calls_to("files.delete") == []
        delete = payloads.block_actions(
            "tmbot_delete", value=first.id, block_id="tmbot_card_actions", message_ts=card_ts
        )
        await rig.interact(delete)
        await fake.wait_for_call("files.delete", timeout=10)
        await fake.wait_for(
            lambda _: "Deleted by alice" in fake.message(GENERAL, card_ts).text, timeout=10
        )
        assert again_ts != card_ts


async def test_reaction_delete_by_requester_and_refused_to_others(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("a quiet harbour")
        card_ts, _ = await finished_card(rig, after=mark)
        file_id = fake.thread(GENERAL, card_ts)[1].files[0]
        mark = fake.mark()
        await rig.event(payloads.reaction_added_event("x", item_ts=card_ts, user=BOB))
        assert "Only the person" in await rig.ephemeral(after=mark)
        await rig.event(payloads.reaction_added_event("wastebasket", item_ts=card_ts, user=ALICE))
        deleted = await fake.wait_for_call("files.delete", timeout=10)
        assert deleted.params["file"] == file_id
        await fake.wait_for(
            lambda _: "Deleted by alice" in fake.message(GENERAL, card_ts).text, timeout=10
        )
        assert [m.ts for m in fake.thread(GENERAL, card_ts)] == [card_ts]


async def test_an_admin_may_delete_with_the_team_key(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        mark = fake.mark()
        await rig.slash(f"team key {TEAM_KEY}", user=BOSS)
        await rig.ephemeral(after=mark)
        mark = fake.mark()
        await rig.slash("an orange tree")
        card_ts, gen = await finished_card(rig, after=mark)
        assert "the team key" in fake.calls_to("chat.postMessage")[-1].everything()
        await rig.event(payloads.reaction_added_event("x", item_ts=card_ts, user=BOSS))
        await fake.wait_for(
            lambda _: "Deleted by boss" in fake.message(GENERAL, card_ts).text, timeout=10
        )
        assert gen.key.scope == "team"
    # admin or not comes from users.info, cached: once per person in this run
    assert len([c for c in fake.calls_to("users.info") if c.params["user"] == BOSS]) == 1


async def test_slack_retries_never_make_a_second_generation_even_after_a_restart(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    said = fake.add_user_message(GENERAL, ALICE, f"<@{BOT_USER_ID}> a snowy owl")
    event = payloads.app_mention_event(f"<@{BOT_USER_ID}> a snowy owl", ts=said.ts)
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.event(event, event_id="Ev0RETRY0001")
        await finished_card(rig, after=mark, thread=said.ts)
    async with slack_rig(make_bot, fake) as rig:
        for attempt in (1, 2):
            answer = await rig.event(
                event, event_id="Ev0RETRY0001", retry_num=attempt, retry_reason="http_timeout"
            )
            assert answer.status == 200
        # a later, different event shows the handler ran (and the retries did nothing)
        mark = fake.mark()
        await rig.slash("help")
        await rig.ephemeral(after=mark)
        await rig.bot.settled()
        assert len(await rig.bot.store.recent_generations(TENANT, ALICE)) == 1
    assert len([c for c in fake.calls_to("chat.postMessage") if "blocks" in c.params]) == 1


async def test_a_repeated_trigger_id_makes_one_generation(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        for _ in range(2):
            answer = await rig.slash("a tin robot", trigger_id="77.T0FAKE000.same")
            assert answer.status == 200
        await finished_card(rig, after=mark)
        mark = fake.mark()
        await rig.slash("help")
        await rig.ephemeral(after=mark)
        assert len(await rig.bot.store.recent_generations(TENANT, ALICE)) == 1
