"""The Slack notifier's own habits: failures on the card and in its thread, files.info
lagging behind the upload, a re-handed Delivered that must not upload again, coalescing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.app import progress_slot, web_client
from adapters.slack.notifier import SlackNotifier
from tests.fakes.slack import GENERAL, FakeSlack
from tests.harness import running_bot
from tests.slack_rig import ALICE, ALICE_KEY, people, slack_rig
from tmbot import Accepted, Delivered, MessageLink, Notice, Queued, Started
from tmbot.simulator import SimConfig, Simulator

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(files_info_shares_lag=2) as fake:
        people(fake)
        yield fake


async def test_a_failed_generation_says_why_on_the_card_and_in_its_thread(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = SimConfig(time_scale=60.0, estimate_seconds=5.0, seed=7, task_failure_rate=1.0)
    async with Simulator(config) as failing:

        def make_bot(platform: str = "slack", **options: Any) -> Any:
            return running_bot(tmp_path, failing, **options)

        async with slack_rig(make_bot, fake) as rig:
            mark = fake.mark()
            await rig.slash(f"key {ALICE_KEY}")
            await rig.ephemeral(after=mark)
            mark = fake.mark()
            await rig.slash("a cat that will not be drawn")
            card = await rig.card(after=mark)
            card_ts = str(card.response["ts"])
            said = await fake.wait_for_call(
                "chat.postMessage", lambda c: c.params.get("thread_ts") == card_ts, timeout=15
            )
            await rig.bot.settled()
    assert "could not be made" in str(said.params["text"])
    final = [c for c in fake.calls_to("chat.update") if c.params["ts"] == card_ts][-1]
    assert "Failed" in final.everything()
    assert fake.calls_to("files.completeUploadExternal") == []


async def test_files_info_lag_is_waited_out_and_a_redelivery_uploads_nothing(
    fake: FakeSlack, make_bot: Any
) -> None:
    async with slack_rig(make_bot, fake) as rig:
        mark = fake.mark()
        await rig.slash(f"key {ALICE_KEY}")
        await rig.ephemeral(after=mark)
        mark = fake.mark()
        await rig.slash("a lantern")
        card = await rig.card(after=mark)
        card_ts = str(card.response["ts"])
        await rig.done(card_ts)
        await rig.bot.settled()
        gen = await rig.bot.engine.generation_for_message("slack", GENERAL, card_ts)
        assert gen is not None
        links = tuple(await rig.bot.store.messages_for_generation(gen.id))
    assert len(fake.calls_to("files.info")) == 3  # two answers without shares, then the share
    image = next(link for link in links if link.kind == "image")
    assert image.message_id == fake.thread(GENERAL, card_ts)[1].ts

    # the same Delivered handed over again (a crash before it was marked done)
    recorded: list[MessageLink] = []

    async def record(link: MessageLink) -> None:
        recorded.append(link)

    notifier = SlackNotifier(web_client(fake.bot_token, fake.api_url))
    uploads = len(fake.calls_to("files.completeUploadExternal"))
    again = Delivered(gen, PNG, "x.png", 1, 1, 1.0, 9.0)
    made = await notifier.notify(again, Notice(links=links, record=record))
    assert made == [] and recorded == []
    assert len(fake.calls_to("files.completeUploadExternal")) == uploads
    assert fake.calls_to("chat.update")[-1].params["ts"] == card_ts  # the card still ends done


async def one_delivered(
    rig: Any, fake: FakeSlack, brief: str
) -> tuple[Any, tuple[MessageLink, ...]]:
    """Alice binds her key and asks for ``brief``; once it is delivered, its generation and
    the links the store holds for it."""
    mark = fake.mark()
    await rig.slash(f"key {ALICE_KEY}")
    await rig.ephemeral(after=mark)
    mark = fake.mark()
    await rig.slash(brief)
    card = await rig.card(after=mark)
    await rig.done(str(card.response["ts"]))
    await rig.bot.settled()
    gen = await rig.bot.engine.generation_for_message("slack", GENERAL, card.response["ts"])
    assert gen is not None
    return gen, tuple(await rig.bot.store.messages_for_generation(gen.id))


async def test_progress_edits_are_coalesced(fake: FakeSlack, make_bot: Any) -> None:
    clock = [0.0]
    notifier = SlackNotifier(
        web_client(fake.bot_token, fake.api_url),
        min_edit_interval=3.0,
        max_progress_edits=2,
        monotonic=lambda: clock[0],
    )
    async with slack_rig(make_bot, fake) as rig:
        gen, links = await one_delivered(rig, fake, "a teacup")

    async def record(link: MessageLink) -> None:
        pass

    notice = Notice(links=(), record=record)
    posted = await notifier.notify(Accepted(gen), notice)
    notice = Notice(links=tuple(posted) + links, record=record)
    before = len(fake.calls_to("chat.update"))
    for step in range(10):  # ten progress events, 1 s apart
        clock[0] += 1.0
        event = Queued(gen, step + 1) if step % 2 else Started(gen)
        await notifier.notify(event, notice)
    edits = len(fake.calls_to("chat.update")) - before
    assert edits == 2  # one every 3 s at most, two per generation at most
    assert ALICE not in "".join(c.everything() for c in fake.calls_to("chat.update")[before:])


async def test_two_notifiers_sharing_a_store_make_two_progress_edits_between_them(
    fake: FakeSlack, make_bot: Any
) -> None:
    """As two processes would, each with its own memory, handing over one generation's
    progress events in turn: the slots in the store keep the cap for the card."""
    clock = [0.0]
    async with slack_rig(make_bot, fake) as rig:
        gen, links = await one_delivered(rig, fake, "a teapot")
        notifiers = [
            SlackNotifier(
                web_client(fake.bot_token, fake.api_url),
                min_edit_interval=3.0,
                max_progress_edits=2,
                monotonic=lambda: clock[0],
            )
            for _ in range(2)
        ]
        for notifier in notifiers:
            notifier.progress_slot = progress_slot(rig.bot.engine)

        async def record(link: MessageLink) -> None:
            pass

        notice = Notice(links=links, record=record)
        before = len(fake.calls_to("chat.update"))
        for step in range(8):  # eight progress events, 4 s apart, each process in turn
            clock[0] += 4.0
            await notifiers[step % 2].notify(Queued(gen, step + 1), notice)
        edits = len(fake.calls_to("chat.update")) - before
    assert edits == 2  # not two per process
