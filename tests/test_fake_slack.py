"""The fake Slack, proven with the real slack_sdk and slack_bolt talking to it over loopback."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltRequest, AsyncRespond, AsyncSay
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient as BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.http import serve
from tests.fakes.slack import (
    GENERAL,
    RESPONSE_URL,
    SOCKET_ACK,
    UPLOAD,
    FakeSlack,
    payloads,
    post_signed,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def web_client(fake: FakeSlack, **kwargs: object) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ Web API


async def test_auth_test_answers_the_bot_identity(fake: FakeSlack) -> None:
    answer = await web_client(fake).auth_test()
    assert answer["ok"] is True
    assert answer["user_id"] == "U0BOT0000"
    assert answer["bot_id"] == "B0BOT0000"
    assert answer["team_id"] == "T0FAKE000"
    call = fake.calls_to("auth.test")[0]
    assert call.token == fake.bot_token
    assert "Authorization" not in call.headers


async def test_a_wrong_token_is_invalid_auth(fake: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-someone-else", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel=GENERAL, text="hi")
    assert raised.value.response["error"] == "invalid_auth"
    assert fake.messages(GENERAL) == []


async def test_card_edit_and_upload_into_its_thread(fake: FakeSlack) -> None:
    client = web_client(fake)
    card = await client.chat_postMessage(
        channel=GENERAL,
        text="Working on it",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*1*"}}],
    )
    assert card["channel"] == GENERAL
    card_ts = card["ts"]
    assert card["message"]["ts"] == card_ts
    assert card["message"]["bot_id"] == "B0BOT0000"

    edited = await client.chat_update(channel=GENERAL, ts=card_ts, text="Done")
    assert edited["ts"] == card_ts
    assert fake.message(GENERAL, card_ts).text == "Done"

    upload = await client.files_upload_v2(
        channel=GENERAL,
        thread_ts=card_ts,
        content=PNG,
        filename="cat.png",
        initial_comment="Here it is",
    )
    # What files_upload_v2 returns: files.completeUploadExternal's answer ("files": [{id,
    # title}]) plus, for one file, the same entry under "file". No ts of the message.
    file_id = upload["file"]["id"]
    assert upload["files"] == [{"id": file_id, "title": "cat.png"}]
    assert "shares" not in upload["file"]

    # The three steps slack_sdk took, with the exact bytes posted to the fake's upload URL.
    methods = [c.method for c in fake.calls]
    assert methods[-3:] == ["files.getUploadURLExternal", UPLOAD, "files.completeUploadExternal"]
    url_call = fake.calls_to("files.getUploadURLExternal")[0]
    assert url_call.params["filename"] == "cat.png"
    assert url_call.params["length"] == str(len(PNG))
    assert fake.calls_to(UPLOAD)[0].file_bytes == PNG
    assert fake.calls_to(UPLOAD)[0].token is None  # the upload URL carries no token
    complete = fake.calls_to("files.completeUploadExternal")[0]
    assert complete.params["channel_id"] == GENERAL
    assert complete.params["thread_ts"] == card_ts
    assert complete.params["initial_comment"] == "Here it is"
    assert complete.param_json("files") == [{"id": file_id, "title": "cat.png"}]
    assert [c.method for c in fake.calls_containing("Here it is")] == [
        "files.completeUploadExternal"
    ]

    # The card's thread holds one reply: the file message, with the comment.
    parent, *replies = fake.thread(GENERAL, card_ts)
    assert parent.ts == card_ts
    assert len(replies) == 1
    assert replies[0].files == [file_id]
    assert replies[0].text == "Here it is"
    assert fake.file_bytes(file_id) == PNG
    assert [m.ts for m in fake.messages(GENERAL)] == [card_ts]  # not in the channel itself

    # files.info is where the ts of the file's message turns up.
    info = await client.files_info(file=file_id)
    shares = info["file"]["shares"]["public"][GENERAL]
    assert shares[0]["ts"] == replies[0].ts
    assert shares[0]["thread_ts"] == card_ts
    assert float(replies[0].ts) > float(card_ts)

    replies_answer = await client.conversations_replies(channel=GENERAL, ts=card_ts)
    assert [m["ts"] for m in replies_answer["messages"]] == [card_ts, replies[0].ts]
    assert replies_answer["messages"][0]["reply_count"] == 1


async def test_files_info_can_lag_behind_the_share() -> None:
    async with FakeSlack(files_info_shares_lag=1) as fake:
        client = web_client(fake)
        upload = await client.files_upload_v2(channel=GENERAL, content=PNG, filename="a.png")
        first = await client.files_info(file=upload["file"]["id"])
        assert first["file"]["shares"] == {}
        second = await client.files_info(file=upload["file"]["id"])
        assert GENERAL in second["file"]["shares"]["public"]


async def test_channel_errors_raise_slack_api_error(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.add_channel("C0OUTSIDE", "outside", bot_is_member=False)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0OUTSIDE", text="hi")
    assert raised.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0NOWHERE", text="hi")
    assert raised.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as raised:
        await client.files_upload_v2(channel="C0OUTSIDE", content=PNG, filename="a.png")
    assert raised.value.response["error"] == "not_in_channel"


async def test_injected_not_in_channel(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.fail_next("chat.postMessage", "not_in_channel")
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel=GENERAL, text="hi")
    assert raised.value.response["error"] == "not_in_channel"
    assert raised.value.response.status_code == 200
    # Only the next call fails.
    assert (await client.chat_postMessage(channel=GENERAL, text="hi"))["ok"] is True
    assert [c.error for c in fake.calls_to("chat.postMessage")] == ["not_in_channel", None]


async def test_429_without_a_retry_handler_raises_ratelimited(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.rate_limit_next("chat.update", retry_after=7)
    card = await client.chat_postMessage(channel=GENERAL, text="card")
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel=GENERAL, ts=card["ts"], text="edit")
    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "7"


async def test_429_is_retried_by_the_rate_limit_retry_handler(fake: FakeSlack) -> None:
    # The handler sleeps Retry-After + random.random() seconds (< 1 s with Retry-After: 0).
    client = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    card = await client.chat_postMessage(channel=GENERAL, text="card")
    fake.rate_limit_next("chat.update", retry_after=0)
    started = time.monotonic()
    edited = await client.chat_update(channel=GENERAL, ts=card["ts"], text="edit")
    assert time.monotonic() - started < 2
    assert edited["ok"] is True
    calls = fake.calls_to("chat.update")
    assert [(c.status, c.error) for c in calls] == [(429, "ratelimited"), (200, None)]
    assert fake.message(GENERAL, card["ts"]).text == "edit"


async def test_unknown_thread_ts_is_taken_as_given_unless_strict(fake: FakeSlack) -> None:
    unseen = fake.next_ts()  # e.g. a ts that was only ever in an event payload
    reply = await web_client(fake).chat_postMessage(channel=GENERAL, text="r", thread_ts=unseen)
    assert [m.ts for m in fake.thread(GENERAL, unseen)] == [reply["ts"]]
    async with FakeSlack(strict_threads=True) as strict:
        with pytest.raises(SlackApiError) as raised:
            await web_client(strict).chat_postMessage(channel=GENERAL, text="r", thread_ts=unseen)
        assert raised.value.response["error"] == "thread_not_found"


async def test_a_failed_upload_url_post_fails_files_upload_v2(fake: FakeSlack) -> None:
    fake.fail_next(UPLOAD, "upload failed", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await web_client(fake).files_upload_v2(channel=GENERAL, content=PNG, filename="a.png")
    assert fake.calls_to("files.completeUploadExternal") == []
    assert fake.messages(GENERAL) == []


async def test_messages_ephemerals_reactions_users_and_views(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.add_user("U0ALICE00", "alice")
    fake.add_user("U0ADMIN00", "boss", is_admin=True)
    admin = await client.users_info(user="U0ADMIN00")
    assert admin["user"]["is_admin"] is True
    assert admin["user"]["is_bot"] is False
    with pytest.raises(SlackApiError) as raised:
        await client.users_info(user="U0NOBODY0")
    assert raised.value.response["error"] == "user_not_found"

    said = fake.add_user_message(GENERAL, "U0ALICE00", "hello bot")
    await client.reactions_add(channel=GENERAL, timestamp=said.ts, name="eyes")
    assert fake.message(GENERAL, said.ts).reactions == {"eyes": ["U0BOT0000"]}
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel=GENERAL, ts=said.ts, text="not mine")
    assert raised.value.response["error"] == "cant_update_message"

    ephemeral = await client.chat_postEphemeral(channel=GENERAL, user="U0ALICE00", text="psst")
    assert fake.workspace.ephemerals[0].message_ts == ephemeral["message_ts"]
    assert fake.messages(GENERAL) == [fake.message(GENERAL, said.ts)]

    reply = await client.chat_postMessage(channel=GENERAL, text="in thread", thread_ts=said.ts)
    link = await client.chat_getPermalink(channel=GENERAL, message_ts=reply["ts"])
    assert f"thread_ts={said.ts}" in link["permalink"]
    await client.chat_delete(channel=GENERAL, ts=reply["ts"])
    assert fake.thread(GENERAL, said.ts) == [fake.message(GENERAL, said.ts)]

    info = await client.conversations_info(channel=GENERAL)
    assert info["channel"]["is_member"] is True

    view = {
        "type": "modal",
        "callback_id": "key",
        "title": {"type": "plain_text", "text": "Key"},
        "blocks": [],
    }
    opened = await client.views_open(trigger_id="1.2.3", view=view)
    view_id = opened["view"]["id"]
    updated = await client.views_update(view_id=view_id, view={**view, "private_metadata": "x"})
    assert updated["view"]["private_metadata"] == "x"
    assert fake.calls_to("views.open")[0].param_json("view")["callback_id"] == "key"


async def test_wait_for_wakes_on_a_call(fake: FakeSlack) -> None:
    async def later() -> None:
        await web_client(fake).chat_postMessage(channel=GENERAL, text="later")

    task = asyncio.create_task(later())
    call = await fake.wait_for_call("chat.postMessage", lambda c: c.params.get("text") == "later")
    assert call.ok
    await task
    with pytest.raises(AssertionError, match="condition not met"):
        await fake.wait_for(lambda calls: len(calls) > 5, timeout=0.05)


# ------------------------------------------------------------------ bolt over HTTP

SECRET = "fake-signing-secret"


@asynccontextmanager
async def bolt_http(app: AsyncApp) -> AsyncIterator[str]:
    """A real AsyncApp served by bolt's own aiohttp code (`app.web_app()`) on port 0;
    yields the URL of its `/slack/events` endpoint."""
    async with serve(app.web_app(path="/slack/events")) as base:
        yield f"{base}/slack/events"


def bolt_app(fake: FakeSlack) -> AsyncApp:
    return AsyncApp(
        client=web_client(fake),
        signing_secret=SECRET,
        request_verification_enabled=True,
        raise_error_for_unhandled_request=False,
    )


async def test_signature_matches_the_sdk_verifier() -> None:
    body = b"command=%2Ftm&text=a+cat"
    signed = payloads.signed_form(SECRET, {"command": "/tm", "text": "a cat"})
    assert signed.body == body
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(
        body,
        signed.headers["X-Slack-Request-Timestamp"],
        signed.headers["X-Slack-Signature"],
    )
    assert not SignatureVerifier("other").is_valid(
        body, signed.headers["X-Slack-Request-Timestamp"], signed.headers["X-Slack-Signature"]
    )


async def test_bolt_acks_a_signed_slash_command_and_responds(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    seen: list[dict[str, str]] = []

    @app.command("/tm")
    async def tm(ack: AsyncAck, command: dict[str, str], respond: AsyncRespond) -> None:
        seen.append(command)
        if command["text"] == "help":
            await ack(text="Usage", response_type="ephemeral")
        else:
            await ack(text=f"Working on: {command['text']}")
        await respond(text="Finished", response_type="ephemeral")

    response_url = fake.new_response_url()
    fields = payloads.slash_command("/tm", "a cat & a dog", response_url=response_url)
    async with bolt_http(app) as events_url:
        answer = await post_signed(events_url, payloads.signed_form(SECRET, fields))
        # The ack is the HTTP answer itself. ack(text=...) alone answers the bare text as
        # text/plain; with response_type (or blocks) it answers JSON.
        assert answer.status == 200
        assert answer.body == "Working on: a cat & a dog"
        assert answer.headers["Content-Type"].startswith("text/plain")
        responded = await fake.wait_for_call(RESPONSE_URL)
        helped = await post_signed(
            events_url, payloads.signed_form(SECRET, payloads.slash_command("/tm", "help"))
        )
        assert helped.json() == {"text": "Usage", "response_type": "ephemeral"}
        assert helped.headers["Content-Type"].startswith("application/json")
    assert responded.params["text"] == "Finished"
    assert responded.params["response_type"] == "ephemeral"
    assert seen[0]["text"] == "a cat & a dog"
    assert seen[0]["user_id"] == "U0ALICE00"
    # AsyncApp checks its token with auth.test lazily, on the first request, once.
    assert len(fake.calls_to("auth.test")) == 1


async def test_bolt_rejects_a_bad_signature_with_401(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    handled: list[str] = []

    @app.command("/tm")
    async def tm(ack: AsyncAck) -> None:
        handled.append("yes")
        await ack()

    fields = payloads.slash_command("/tm", "x")
    async with bolt_http(app) as events_url:
        forged = await post_signed(events_url, payloads.signed_form("wrong-secret", fields))
        stale = await post_signed(
            events_url, payloads.signed_form(SECRET, fields, timestamp=int(time.time()) - 600)
        )
    assert forged.status == 401
    assert stale.status == 401
    assert handled == []
    assert fake.calls == []  # rejected before authorize: not even auth.test


async def test_bolt_app_mention_reaches_a_handler_that_replies_in_thread(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    retry_headers: list[str | None] = []

    @app.event("app_mention")
    async def mention(event: dict[str, str], say: AsyncSay, request: AsyncBoltRequest) -> None:
        retry_headers.append(request.headers.get("x-slack-retry-num", [None])[0])
        await say(text="On it", thread_ts=event.get("thread_ts") or event["ts"])

    fake.add_user("U0ALICE00", "alice")
    said = fake.add_user_message(GENERAL, "U0ALICE00", "<@U0BOT0000> a cat")
    event = payloads.app_mention_event("<@U0BOT0000> a cat", ts=said.ts)
    async with bolt_http(app) as events_url:
        first = await post_signed(
            events_url, payloads.signed_event(SECRET, payloads.event_callback(event))
        )
        assert (first.status, first.body) == (200, "")
        posted = await fake.wait_for_call("chat.postMessage")
        again = payloads.signed_event(
            SECRET, payloads.event_callback(event), retry_num=1, retry_reason="http_timeout"
        )
        assert (await post_signed(events_url, again)).status == 200
        await fake.wait_for(lambda calls: len(fake.thread(GENERAL, said.ts)) == 3)
    assert posted.params["thread_ts"] == said.ts
    assert posted.params["channel"] == GENERAL
    assert retry_headers == [None, "1"]


async def test_bolt_block_action_and_view_submission(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    clicked: list[dict[str, str]] = []

    @app.action("regenerate")
    async def regenerate(ack: AsyncAck, body: dict[str, object], action: dict[str, str]) -> None:
        await ack()
        clicked.append(action)

    @app.view("key")
    async def key(ack: AsyncAck, view: dict[str, object]) -> None:
        await ack(response_action="errors", errors={"key_block": "That key did not work"})

    card = await web_client(fake).chat_postMessage(channel=GENERAL, text="card")
    click = payloads.block_actions(
        "regenerate", value="job-1", block_id="card_actions", message_ts=card["ts"]
    )
    submit = payloads.view_submission(
        "key",
        {"key_block": {"key_input": payloads.plain_text_input_value("sk-secret")}},
        private_metadata="C0GENERAL",
    )
    async with bolt_http(app) as events_url:
        answer = await post_signed(events_url, payloads.signed_interaction(SECRET, click))
        assert (answer.status, answer.body) == (200, "")
        modal = await post_signed(events_url, payloads.signed_interaction(SECRET, submit))
    assert fake.calls_containing("sk-secret") == []  # the key went to the app, not Slack
    assert clicked[0]["value"] == "job-1"
    assert clicked[0]["block_id"] == "card_actions"
    assert modal.status == 200
    assert modal.json() == {
        "response_action": "errors",
        "errors": {"key_block": "That key did not work"},
    }


# ------------------------------------------------------------------ Socket Mode


async def test_socket_mode_client_connects_and_acks(fake: FakeSlack) -> None:
    client = SocketModeClient(app_token=fake.app_token, web_client=web_client(fake))

    async def ack(client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload={"text": "ok"})
        )

    client.socket_mode_request_listeners.append(ack)
    try:
        await client.connect()  # type: ignore[no-untyped-call]
        envelope = payloads.socket_envelope("slash_commands", payloads.slash_command("/tm", "x"))
        answer = await fake.socket_send(envelope)
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    assert answer == {"envelope_id": envelope["envelope_id"], "payload": {"text": "ok"}}
    opened = fake.calls_to("apps.connections.open")[0]
    assert opened.token == fake.app_token
    await fake.wait_for(lambda _: fake.socket_connections == 0)


async def test_socket_mode_needs_the_app_token(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web_client(fake).apps_connections_open(app_token=fake.bot_token)
    assert raised.value.response["error"] == "not_allowed_token_type"


async def test_bolt_socket_mode_handler_acks_a_slash_command(fake: FakeSlack) -> None:
    app = AsyncApp(client=web_client(fake))  # no signing secret: Socket Mode is not signed
    mentioned: list[str] = []

    @app.command("/tm")
    async def tm(ack: AsyncAck, command: dict[str, str]) -> None:
        await ack(text=f"Working on: {command['text']}")

    @app.event("app_mention")
    async def mention(event: dict[str, str], say: AsyncSay) -> None:
        mentioned.append(event["text"])
        await say(text="On it", thread_ts=event["ts"])

    handler = AsyncSocketModeHandler(app, app_token=fake.app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        command = payloads.socket_envelope("slash_commands", payloads.slash_command("/tm", "a cat"))
        ack = await fake.socket_send(command)
        assert ack == {
            "envelope_id": command["envelope_id"],
            "payload": {"text": "Working on: a cat"},
        }

        said = fake.add_user_message(GENERAL, "U0ALICE00", "<@U0BOT0000> hi")
        event = payloads.event_callback(payloads.app_mention_event("<@U0BOT0000> hi", ts=said.ts))
        event_envelope = payloads.socket_envelope("events_api", event)
        event_ack = await fake.socket_send(event_envelope)
        assert "payload" not in event_ack  # events are acked with the envelope_id alone
        await fake.wait_for(lambda _: len(fake.thread(GENERAL, said.ts)) == 2)

        # Slack asks for a reconnect now and then; the client opens a new connection.
        await fake.socket_disconnect()
        # The new connection opens before the old one closes: wait for both to happen.
        await fake.wait_socket_connected(opened=2)
        await fake.wait_for(lambda _: fake.socket_connections == 1)
        again = payloads.socket_envelope("slash_commands", payloads.slash_command("/tm", "dog"))
        assert (await fake.socket_send(again))["payload"] == {"text": "Working on: dog"}
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert mentioned == ["<@U0BOT0000> hi"]
    assert len(fake.calls_to("apps.connections.open")) == 2
    assert [c.params["envelope_id"] for c in fake.calls_to(SOCKET_ACK)] == [
        command["envelope_id"],
        event_envelope["envelope_id"],
        again["envelope_id"],
    ]


async def test_bolt_thread_messages_reactions_and_its_own_messages(fake: FakeSlack) -> None:
    app = bolt_app(fake)
    messages: list[dict[str, str]] = []
    reactions: list[dict[str, object]] = []

    @app.event("message")
    async def message(event: dict[str, str]) -> None:
        messages.append(event)

    @app.event("reaction_added")
    async def reaction(event: dict[str, object]) -> None:
        reactions.append(event)

    card = await web_client(fake).chat_postMessage(channel=GENERAL, text="card")
    reply = fake.add_user_message(GENERAL, "U0ALICE00", "make it blue", thread_ts=card["ts"])
    in_thread = payloads.message_event("make it blue", ts=reply.ts, thread_ts=card["ts"])
    own = payloads.bot_message_event("card", ts=card["ts"])  # bolt drops the app's own events
    other_bot = payloads.bot_message_event("hi", ts=fake.next_ts(), bot_id="B0OTHER00", user=None)
    regen = payloads.reaction_added_event("repeat", item_ts=card["ts"], user="U0BOB0000")
    async with bolt_http(app) as events_url:
        for event in (in_thread, own, other_bot, regen):
            signed = payloads.signed_event(SECRET, payloads.event_callback(event))
            assert (await post_signed(events_url, signed)).status == 200
        await fake.wait_for(lambda _: len(messages) == 2 and len(reactions) == 1)
    assert messages[0]["thread_ts"] == card["ts"]
    assert messages[0]["user"] == "U0ALICE00"
    assert messages[1]["subtype"] == "bot_message"
    assert messages[1]["bot_id"] == "B0OTHER00"
    assert reactions[0]["item"] == {"type": "message", "channel": GENERAL, "ts": card["ts"]}
    assert reactions[0]["user"] == "U0BOB0000"
    assert reactions[0]["item_user"] == "U0BOT0000"


SUBPROCESS_CLIENT = """
import asyncio, os, sys
from slack_sdk.web.async_client import AsyncWebClient

async def main() -> None:
    token, base_url = os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"]
    client = AsyncWebClient(token=token, base_url=base_url)
    card = await client.chat_postMessage(channel="C0GENERAL", text="from a subprocess")
    await client.files_upload_v2(
        channel="C0GENERAL", thread_ts=card["ts"], content=b"png", filename="x.png"
    )
    print(card["ts"])

asyncio.run(main())
"""


async def test_a_subprocess_reaches_the_fake_over_http(fake: FakeSlack) -> None:
    env = {**os.environ, "SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": fake.bot_token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SUBPROCESS_CLIENT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    card_ts = out.decode().strip()
    parent, file_message = fake.thread(GENERAL, card_ts)
    assert parent.text == "from a subprocess"
    assert fake.file_bytes(file_message.files[0]) == b"png"
