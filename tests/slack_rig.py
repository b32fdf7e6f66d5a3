"""The real Slack adapter on the real bot: bolt's AsyncApp served on a free port (its own
aiohttp app), the real AsyncWebClient pointed at the fake Slack, the real engine on the
simulator and a SQLite file. Tests send signed requests and read the fake's recorded calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from adapters.slack.app import build_app, key_label, web_client
from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import SlackNotifier
from tests.fakes.http import serve
from tests.fakes.slack import GENERAL, AppAnswer, Call, FakeSlack, payloads, post_signed
from tests.harness import Bot

SECRET = "fake-signing-secret-for-tests"
ALICE, BOB, BOSS = "U0ALICE00", "U0BOB0000", "U0BOSS000"
ALICE_KEY = "tm_test_aliceAAAAAAA0001"
BOB_KEY = "tm_test_bobBBBBBBBBBB0004"
TEAM_KEY = "tm_test_teamTTTTTTTT0002"


@dataclass
class Rig:
    fake: FakeSlack
    bot: Bot
    url: str
    notifier: SlackNotifier

    async def slash(
        self, text: str, *, user: str = ALICE, channel: str = GENERAL, trigger_id: str | None = None
    ) -> AppAnswer:
        fields = payloads.slash_command(
            "/taste",
            text,
            user_id=user,
            channel_id=channel,
            response_url=self.fake.new_response_url(),
            trigger_id=trigger_id,
        )
        return await post_signed(self.url, payloads.signed_form(SECRET, fields))

    async def event(self, event: dict[str, Any], **kwargs: Any) -> AppAnswer:
        envelope = payloads.event_callback(event, event_id=kwargs.pop("event_id", None))
        return await post_signed(self.url, payloads.signed_event(SECRET, envelope, **kwargs))

    async def interact(self, payload: dict[str, Any]) -> AppAnswer:
        return await post_signed(self.url, payloads.signed_interaction(SECRET, payload))

    async def card(self, *, after: int = 0, thread: str | None = None) -> Call:
        """The next request card posted (after the fake's mark ``after``)."""
        return await self.fake.wait_for_call(
            "chat.postMessage",
            lambda c: (
                "blocks" in c.params and (thread is None or c.params.get("thread_ts") == thread)
            ),
            after=after,
            timeout=15,
        )

    async def done(self, card_ts: str, *, after: int = 0) -> Call:
        """The card's final edit (done: it carries the buttons)."""
        return await self.fake.wait_for_call(
            "chat.update",
            lambda c: c.params.get("ts") == card_ts and "tmbot_again" in c.everything(),
            after=after,
            timeout=15,
        )

    async def ephemeral(self, *, after: int = 0) -> str:
        call = await self.fake.wait_for(
            lambda calls: next(
                (
                    c
                    for c in calls
                    if c.seq > after and c.method in ("response_url", "chat.postEphemeral")
                ),
                None,
            ),
            timeout=10,
        )
        return str(call.params.get("text"))


def people(fake: FakeSlack) -> None:
    fake.add_user(ALICE, "alice")
    fake.add_user(BOB, "bob")
    fake.add_user(BOSS, "boss", is_admin=True)


@asynccontextmanager
async def slack_rig(
    make_bot: Callable[..., AbstractAsyncContextManager[Bot]],
    fake: FakeSlack,
    *,
    min_edit_interval: float = 0.0,
    max_progress_edits: int = 2,
    **options: Any,
) -> AsyncIterator[Rig]:
    client = web_client(fake.bot_token, fake.api_url)
    notifier = SlackNotifier(
        client,
        min_edit_interval=min_edit_interval,
        max_progress_edits=max_progress_edits,
        share_delay=0.01,
    )
    async with make_bot("slack", recorder=notifier, **options) as bot:
        notifier.key_label = key_label(bot.engine)
        app = build_app(SlackHandlers(bot.engine, client), client, signing_secret=SECRET)
        async with serve(app.web_app(path="/slack/events")) as base:
            yield Rig(fake, bot, f"{base}/slack/events", notifier)
