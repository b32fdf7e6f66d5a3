"""What Slack sends to an app: slash commands, Events API envelopes, interactivity payloads,
signed as Slack signs them, and Socket Mode envelopes carrying the same payloads.

Builders return plain dicts shaped like Slack's; `signed_*` turn them into the exact bytes and
headers of an HTTP request to the app's `POST /slack/events`; `post_signed` sends one.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .model import APP_ID, BOT_ID, BOT_USER_ID, ENTERPRISE_ID, TEAM_DOMAIN, TEAM_ID, JsonDict

_event_ids = itertools.count(1)
_trigger_ids = itertools.count(1)


def new_trigger_id() -> str:
    return f"{next(_trigger_ids)}.{TEAM_ID}.{uuid.uuid4().hex[:24]}"


# ------------------------------------------------------------------ signing


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`, as `SignatureVerifier` checks it."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: Mapping[str, str]


def _signed(
    signing_secret: str,
    body: bytes,
    content_type: str,
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> SignedRequest:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(signing_secret, stamp, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    return SignedRequest(body, headers)


def signed_form(
    signing_secret: str, fields: Mapping[str, str], *, timestamp: int | None = None
) -> SignedRequest:
    """A form-encoded request: slash commands."""
    body = urlencode(fields).encode()
    return _signed(signing_secret, body, "application/x-www-form-urlencoded", timestamp=timestamp)


def signed_event(
    signing_secret: str,
    envelope: JsonDict,
    *,
    timestamp: int | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
) -> SignedRequest:
    """A JSON request: Events API envelopes; retries carry `X-Slack-Retry-Num`/`-Reason`."""
    body = json.dumps(envelope).encode()
    return _signed(
        signing_secret,
        body,
        "application/json",
        timestamp=timestamp,
        retry_num=retry_num,
        retry_reason=retry_reason,
    )


def signed_interaction(
    signing_secret: str, payload: JsonDict, *, timestamp: int | None = None
) -> SignedRequest:
    """An interactivity request: form-encoded with the JSON in one `payload` field."""
    return signed_form(signing_secret, {"payload": json.dumps(payload)}, timestamp=timestamp)


@dataclass(frozen=True)
class AppAnswer:
    status: int
    body: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


async def post_signed(url: str, request: SignedRequest) -> AppAnswer:
    """POST a signed request to the app (e.g. "http://127.0.0.1:PORT/slack/events")."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=request.body, headers=dict(request.headers)) as answer,
    ):
        return AppAnswer(answer.status, await answer.text(), dict(answer.headers))


# ------------------------------------------------------------------ slash commands


def slash_command(
    command: str,
    text: str = "",
    *,
    user_id: str = "U0ALICE00",
    user_name: str = "alice",
    channel_id: str = "C0GENERAL",
    channel_name: str = "general",
    response_url: str = "https://hooks.slack.com/commands/T0FAKE000/1/fake",
    trigger_id: str | None = None,
) -> dict[str, str]:
    """The form fields of a slash command (every value a string, as Slack sends them)."""
    fields = {
        "token": "fake-verification-token",
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    if ENTERPRISE_ID is not None:
        fields["enterprise_id"] = ENTERPRISE_ID
    return fields


# ------------------------------------------------------------------ Events API


def event_callback(
    event: JsonDict, *, event_id: str | None = None, event_time: int | None = None
) -> JsonDict:
    """The outer envelope Slack wraps every event in (`type: event_callback`)."""
    return {
        "token": "fake-verification-token",
        "team_id": TEAM_ID,
        "enterprise_id": ENTERPRISE_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):010d}",
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": ENTERPRISE_ID,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event.get('type', 'event')}-{TEAM_ID}-{event.get('channel', '')}",
    }


def _rich_text(text: str) -> list[JsonDict]:
    return [
        {
            "type": "rich_text",
            "block_id": uuid.uuid4().hex[:5],
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]


def message_event(
    text: str,
    *,
    ts: str,
    user: str = "U0ALICE00",
    channel: str = "C0GENERAL",
    thread_ts: str | None = None,
    parent_user_id: str = BOT_USER_ID,
    channel_type: str = "channel",
) -> JsonDict:
    """A person's message in a channel; with `thread_ts` a reply in the thread of a message
    by `parent_user_id`."""
    event: JsonDict = {
        "type": "message",
        "client_msg_id": str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "team": TEAM_ID,
        "blocks": _rich_text(text),
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = parent_user_id
    return event


def bot_message_event(
    text: str,
    *,
    ts: str,
    bot_id: str = BOT_ID,
    user: str | None = BOT_USER_ID,
    channel: str = "C0GENERAL",
    thread_ts: str | None = None,
    subtype: str | None = None,
) -> JsonDict:
    """A bot's message: `bot_id` set; `subtype: bot_message` only for bots without a user."""
    event: JsonDict = {
        "type": "message",
        "text": text,
        "ts": ts,
        "bot_id": bot_id,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "channel",
    }
    if user is not None:
        event["user"] = user
    if subtype is not None or user is None:
        event["subtype"] = subtype or "bot_message"
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def app_mention_event(
    text: str,
    *,
    ts: str,
    user: str = "U0ALICE00",
    channel: str = "C0GENERAL",
    thread_ts: str | None = None,
) -> JsonDict:
    """`<@BOT> text` in a channel or a thread (text should contain the mention)."""
    event: JsonDict = {
        "type": "app_mention",
        "client_msg_id": str(uuid.uuid4()),
        "text": text,
        "user": user,
        "ts": ts,
        "team": TEAM_ID,
        "blocks": _rich_text(text),
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def reaction_added_event(
    reaction: str,
    *,
    item_ts: str,
    user: str = "U0ALICE00",
    channel: str = "C0GENERAL",
    item_user: str = BOT_USER_ID,
    event_ts: str | None = None,
) -> JsonDict:
    return {
        "type": "reaction_added",
        "user": user,
        "reaction": reaction,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": item_ts},
        "event_ts": event_ts or f"{time.time():.6f}",
    }


# ------------------------------------------------------------------ interactivity


def _user(user_id: str, user_name: str) -> JsonDict:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID}


def block_actions(
    action_id: str,
    *,
    value: str | None = None,
    block_id: str = "actions",
    message_ts: str,
    channel: str = "C0GENERAL",
    user_id: str = "U0ALICE00",
    user_name: str = "alice",
    thread_ts: str | None = None,
    message: JsonDict | None = None,
    response_url: str = "https://hooks.slack.com/actions/T0FAKE000/1/fake",
    trigger_id: str | None = None,
) -> JsonDict:
    """A button click on a message (container type `message`)."""
    action_ts = f"{time.time():.6f}"
    action: JsonDict = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "action_ts": action_ts,
    }
    if value is not None:
        action["value"] = value
    container: JsonDict = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": False,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": _user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": "fake-verification-token",
        "container": container,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel.lower()},
        "message": message or {"type": "message", "ts": message_ts, "user": BOT_USER_ID},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def view_submission(
    callback_id: str,
    values: JsonDict,
    *,
    private_metadata: str = "",
    view_id: str = "V0FAKE0001",
    user_id: str = "U0ALICE00",
    user_name: str = "alice",
) -> JsonDict:
    """A modal submitted; `values` is `view.state.values`: {block_id: {action_id: {...}}}."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name),
        "api_app_id": APP_ID,
        "token": "fake-verification-token",
        "trigger_id": new_trigger_id(),
        "view": {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": values},
            "hash": f"{int(time.time())}.fakehash",
            "title": {"type": "plain_text", "text": "tmbot"},
            "root_view_id": view_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def plain_text_input_value(value: str) -> JsonDict:
    """One entry of `view.state.values[block_id][action_id]` for a plain_text_input."""
    return {"type": "plain_text_input", "value": value}


# ------------------------------------------------------------------ Socket Mode


def socket_envelope(
    kind: str,
    payload: JsonDict,
    *,
    envelope_id: str | None = None,
    accepts_response_payload: bool | None = None,
    retry_attempt: int = 0,
    retry_reason: str = "",
) -> JsonDict:
    """A Socket Mode envelope: kind is "slash_commands", "events_api" or "interactive"."""
    envelope: JsonDict = {
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "payload": payload,
        "type": kind,
        "accepts_response_payload": (
            kind != "events_api" if accepts_response_payload is None else accepts_response_payload
        ),
    }
    if kind == "events_api":
        envelope["retry_attempt"] = retry_attempt
        envelope["retry_reason"] = retry_reason
    return envelope
