"""The Slack adapter end to end in-process: signed requests to bolt's real HTTP endpoint,
the real slack_sdk against the fake Slack, the real engine on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.fakes.slack import GENERAL, RESPONSE_URL, UPLOAD, FakeSlack, payloads, post_signed
from tests.harness import Bot
from tests.slack_rig import ALICE, ALICE_KEY, BOB, BOB_KEY, SECRET, people, slack_rig

MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        people(fake)
        yield fake


async def bind(rig: Any, user: str, key: str) -> None:
    mark = rig.fake.mark()
    assert (await rig.slash(f"key {key}", user=user)).status == 200
    text = await rig.ephemeral(after=mark)
    assert key[-4:] in text and "rotate" in text


async def test_slash_command_card_edits_and_image_in_its_thread(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        answer = await rig.slash("a minimal poster for a Tokyo coffee shop --ar 3:4")
        assert answer.status == 200
        assert answer.json()["response_type"] == "ephemeral"
        card = await rig.card(after=mark)
        card_ts = str(card.response["ts"])
        assert card.params["channel"] == GENERAL
        shown = card.everything()
        assert "Tokyo coffee shop" in shown and "alice" in shown
        assert "alice's key \\u20260001" in shown  # whose key pays, by fingerprint
        done = await rig.done(card_ts)
        await rig.bot.settled()
        generation_id = await rig.bot.store.generation_for_message("slack", GENERAL, card_ts)
        links = await rig.bot.store.messages_for_generation(generation_id)
    # progress edits between the card and the final one
    edits = [c for c in fake.calls_to("chat.update") if c.params["ts"] == card_ts]
    assert len(edits) >= 2 and edits[-1] is done
    assert any("Generating" in c.everything() or "Queued" in c.everything() for c in edits[:-1])
    complete = fake.calls_to("files.completeUploadExternal")[-1]
    assert complete.params["thread_ts"] == card_ts
    assert "Prompt used" in str(complete.params["initial_comment"])
    _parent, image = fake.thread(GENERAL, card_ts)
    assert image.files and fake.file_bytes(image.files[0]).startswith(b"\x89PNG")  # type: ignore[union-attr]
    assert {link.kind for link in links} >= {"card", "image", "file"}
    assert any(link.message_id == image.ts for link in links)
    # no key in any call Slack saw
    assert fake.calls_containing(ALICE_KEY) == []


async def test_subcommands_answer_ephemerally(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        for text in ("help", "credits", "history", "settings"):
            mark = fake.mark()
            answer = await rig.slash(text)
            assert answer.status == 200
            await rig.ephemeral(after=mark)
        responded = fake.calls_to(RESPONSE_URL)
        assert len(responded) == 4
        assert all(c.params["response_type"] == "ephemeral" for c in responded)
        assert fake.calls_to("chat.postMessage") == []


async def test_bad_input_is_one_ephemeral_sentence(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("a cat --ar 99:1")
        text = await rig.ephemeral(after=mark)
        assert text.startswith(":warning:")
        assert fake.calls_to("chat.postMessage") == []


async def test_escaping_pings_nobody(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("a poster <!channel> <!here> <@U0BOB0000> & <!subteam^S1> friends")
        card = await rig.card(after=mark)
        await rig.done(str(card.response["ts"]))
        await rig.bot.settled()
    for call in fake.calls:
        if call.method in ("chat.postMessage", "chat.update", "files.completeUploadExternal"):
            shown = call.everything()
            for raw in ("<!channel>", "<!here>", "<@U0BOB0000>", "<!subteam"):
                assert raw not in shown, (call.method, raw)
    assert "&lt;!channel&gt;" in card.everything()


async def test_not_in_channel_is_told_and_nothing_is_charged(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    fake.add_channel("C0OUTSIDE", "outside", bot_is_member=False)
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("a cat", channel="C0OUTSIDE")
        text = await rig.ephemeral(after=mark)
        assert "/invite" in text and "Nothing was charged" in text
        assert fake.calls_to("chat.postMessage") == []
        assert await rig.bot.store.recent_generations("slack:T0FAKE000", ALICE) == []


async def test_429_on_posting_the_card_is_waited_out(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        fake.rate_limit_next("chat.postMessage", retry_after=0)
        mark = fake.mark()
        await rig.slash("a cat")
        card = await fake.wait_for_call("chat.postMessage", lambda c: c.ok, after=mark, timeout=15)
        await rig.done(str(card.response["ts"]))
        await rig.bot.settled()
    posts = fake.calls_to("chat.postMessage")
    assert [(c.status, c.error) for c in posts[:2]] == [(429, "ratelimited"), (200, None)]
    assert len(fake.calls_to("files.completeUploadExternal")) == 1


async def test_bad_signature_is_rejected_with_401(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        fields = payloads.slash_command("/taste", "a cat", response_url=fake.new_response_url())
        forged = await post_signed(rig.url, payloads.signed_form("not-" + SECRET, fields))
        assert forged.status == 401
    assert fake.calls == []


async def test_modal_binds_the_key_and_never_shows_it(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        await rig.slash("key")
        opened = await fake.wait_for_call("views.open", timeout=10)
        view = opened.param_json("view")
        assert view["callback_id"] == "tmbot_key"
        submit = payloads.view_submission(
            "tmbot_key",
            {"key_block": {"key_input": payloads.plain_text_input_value(BOB_KEY)}},
            private_metadata=view["private_metadata"],
            user_id=BOB,
            user_name="bob",
        )
        mark = fake.mark()
        answer = await rig.interact(submit)
        assert answer.status == 200
        text = await rig.ephemeral(after=mark)
        assert BOB_KEY[-4:] in text
        assert fake.calls_containing(BOB_KEY) == []
        assert fake.calls_containing(BOB_KEY[:-4]) == []


async def test_a_bad_key_in_the_modal_is_an_input_error(make_bot: MakeBot, fake: FakeSlack) -> None:
    async with slack_rig(make_bot, fake) as rig:
        submit = payloads.view_submission(
            "tmbot_key",
            {"key_block": {"key_input": payloads.plain_text_input_value("nonsense")}},
            private_metadata=f"tastemachine|user|{GENERAL}",
        )
        answer = await rig.interact(submit)
        assert answer.status == 200
        assert answer.json()["response_action"] == "errors"


_ = UPLOAD


async def test_in_a_dm_with_the_app_the_card_and_image_go_into_the_dm(
    make_bot: MakeBot, fake: FakeSlack
) -> None:
    dm = fake.workspace.im_with(ALICE).id
    async with slack_rig(make_bot, fake) as rig:
        await bind(rig, ALICE, ALICE_KEY)
        mark = fake.mark()
        await rig.slash("a small boat", channel=dm)
        card = await rig.card(after=mark)
        assert card.params["channel"] == dm
        card_ts = str(card.response["ts"])
        await rig.done(card_ts)
        await rig.bot.settled()
    assert fake.calls_to("conversations.info") == []  # a DM with the app needs no check
    _card, image = fake.thread(dm, card_ts)
    assert image.files
