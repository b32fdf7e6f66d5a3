"""What people do in Slack, turned into calls on the engine: the slash command, mentions,
request channels' messages, reactions, the card's buttons and the key modal.

Errors from the core become text in exactly one place, :func:`error_text`. Slack's retries
(the same ``event_id``, ``trigger_id`` or action) are deduplicated through the engine's
durable ``first_time``, so they hold across a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.notifier import PLATFORM, slack_error
from tmbot import (
    Actor,
    ApiKey,
    DeleteAccepted,
    Engine,
    GenerationAccepted,
    KeyBound,
    KeyFormRequested,
    KeyScope,
    Place,
    ProviderName,
    Reply,
    TmbotError,
    render,
    tenant_of,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]
T = TypeVar("T")
Say = Callable[[str], Awaitable[None]]

REGENERATE = frozenset({"repeat", "arrows_counterclockwise", "arrows_clockwise"})
REMOVE = frozenset({"x", "wastebasket"})
#: first words of the grammar's account commands (they answer privately, cost nothing)
ACCOUNT_WORDS = frozenset(
    {"key", "logout", "credits", "settings", "history", "help", "team", "delete", "link", "unlink"}
)
ADMIN_TTL = 300.0
MEMBER_TTL = 300.0

INVITE_HELP = (
    "I'm not in this channel yet, so I can't post here. Invite me with `/invite @Taste` "
    "(or from the channel's settings → Integrations), then ask again. Nothing was charged."
)
ROTATE_HINT = (
    " The key is never shown or posted. If you typed it somewhere others can see, rotate "
    "it at the provider and bind the new one with `/taste key`."
)
ACK_TEXT = ":hourglass_flowing_sand: Working on it…"
RESTARTING = "tmbot is restarting; try again in a minute."


def error_text(err: TmbotError) -> str:
    """The one place where the Slack adapter turns a core error into text."""
    return f":warning: {blocks.escape(err.user_message)}"


def reply_text(reply: Reply, *, typed_key: bool = False) -> str:
    text = blocks.escape(render(reply))
    if isinstance(reply, KeyBound) and typed_key:
        text += ROTATE_HINT
    return text


def tenant_for(team_id: str, enterprise_id: str | None) -> str:
    """The workspace (Enterprise Grid: the enterprise id plus the team id)."""
    return tenant_of(PLATFORM, f"{enterprise_id}:{team_id}" if enterprise_id else team_id)


def first_word(text: str) -> str:
    words = text.strip().lower().split()
    while words and words[0] in ("/taste", "taste"):
        words = words[1:]
    return words[0] if words else ""


@dataclass
class _Person:
    expires: float
    is_admin: bool
    name: str


class SlackHandlers:
    """The bolt listeners; :meth:`register` attaches them to an AsyncApp."""

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        *,
        command: str = "/taste",
        monotonic: Callable[[], float] = time.monotonic,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """``stopping``: True once the process is shutting down; new requests are then
        answered "restarting" and nothing new is started."""
        self.engine = engine
        self.stopping = stopping
        self.client = client
        self.command = command
        self._monotonic = monotonic
        self._people: dict[tuple[str, str], _Person] = {}
        self._members: dict[str, float] = {}
        self._asking: dict[tuple[str, ...], asyncio.Future[Any]] = {}

    def register(self, app: AsyncApp) -> None:
        app.command(self.command)(self.on_command)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("reaction_added")(self.on_reaction)
        app.action(blocks.AGAIN)(self.on_again)
        app.action(blocks.DELETE)(self.on_delete)
        app.view(blocks.KEY_VIEW)(self.on_key_submitted)

    # --- who and where -------------------------------------------------------------------

    async def actor(self, team_id: str, enterprise_id: str | None, user_id: str) -> Actor:
        """Admin = workspace admin or owner (users.info, cached for a few minutes)."""
        tenant = tenant_for(team_id, enterprise_id)
        person = self._people.get((tenant, user_id))
        if person is None or person.expires < self._monotonic():
            person = await self._once(
                ("user", tenant, user_id), lambda: self._person(tenant, user_id)
            )
        return Actor(
            platform=PLATFORM,
            tenant=tenant,
            user_id=user_id,
            is_admin=person.is_admin,
            display_name=person.name,
        )

    async def _person(self, tenant: str, user_id: str) -> _Person:
        """Asks Slack, and caches the answer before anyone waiting for it resumes (so a
        request arriving in between finds it)."""
        is_admin, name = False, user_id
        try:
            info = await self.client.users_info(user=user_id)
            user = info["user"]
            is_admin = bool(user.get("is_admin") or user.get("is_owner"))
            profile = user.get("profile") or {}
            name = str(
                profile.get("display_name") or user.get("real_name") or user.get("name") or ""
            )
            name = name or user_id
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, slack_error(exc))
        person = self._people[(tenant, user_id)] = _Person(
            self._monotonic() + ADMIN_TTL, is_admin, name
        )
        return person

    async def _once(self, key: tuple[str, ...], ask: Callable[[], Awaitable[T]]) -> T:
        """One look-up per ``key`` at a time: requests arriving together (a burst) share
        the one in flight instead of each asking Slack."""
        running = self._asking.get(key)
        if running is None:
            running = asyncio.ensure_future(ask())
            self._asking[key] = running

            def done(finished: asyncio.Future[Any]) -> None:
                if self._asking.get(key) is finished:
                    del self._asking[key]

            running.add_done_callback(done)
        answer: T = await asyncio.shield(running)
        return answer

    async def is_member(self, channel: str) -> bool:
        """Whether the bot can post in ``channel`` (DMs with the app: always)."""
        if channel.startswith("D"):
            return True
        until = self._members.get(channel)
        if until is not None and until > self._monotonic():
            return True
        return await self._once(("channel", channel), lambda: self._ask_member(channel))

    async def _ask_member(self, channel: str) -> bool:
        try:
            info = await self.client.conversations_info(channel=channel)
        except SlackApiError as exc:
            if slack_error(exc) in ("channel_not_found", "not_in_channel"):
                return False
            raise
        found = info["channel"]
        member = bool(found.get("is_member") or found.get("is_im"))
        if member:
            self._members[channel] = self._monotonic() + MEMBER_TTL
        return member

    async def _run(
        self, say: Say, action: Callable[[], Awaitable[Reply]], *, typed_key: bool = False
    ) -> Reply | None:
        try:
            reply = await action()
        except TmbotError as err:
            log.info("refused (%s); told privately", type(err).__name__)
            await say(error_text(err))
            return None
        if isinstance(reply, GenerationAccepted) and reply.duplicate:
            log.info("generation %s was already asked for; counted once", reply.generation.id)
        if isinstance(reply, GenerationAccepted | DeleteAccepted):
            return reply  # the card says it
        if not isinstance(reply, KeyFormRequested):
            await say(reply_text(reply, typed_key=typed_key))
        return reply

    def _ephemeral(self, channel: str, user: str, thread_ts: str | None = None) -> Say:
        async def say(text: str) -> None:
            kwargs: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
            try:
                await self.client.chat_postEphemeral(
                    channel=channel, user=user, text=text, **kwargs
                )
            except SlackApiError as exc:
                log.warning("could not answer %s privately: %s", user, slack_error(exc))

        return say

    # --- /taste ----------------------------------------------------------------------------

    async def on_command(self, ack: AsyncAck, command: Body, respond: AsyncRespond) -> None:
        if self.stopping():
            await ack(response_type="ephemeral", text=RESTARTING)
            return
        text = str(command.get("text") or "")
        word = first_word(text)
        generates = word not in ACCOUNT_WORDS
        if generates:
            await ack(response_type="ephemeral", text=ACK_TEXT)
        else:
            await ack()
        trigger = str(command.get("trigger_id") or "")
        if trigger and not await self._first_time("slack-trigger", trigger):
            return

        async def say(message: str) -> None:
            await respond(text=message, response_type="ephemeral", replace_original=False)

        channel = str(command["channel_id"])
        if generates and not await self.is_member(channel):
            await say(INVITE_HELP)
            return
        actor = await self.actor(
            str(command["team_id"]), command.get("enterprise_id") or None, str(command["user_id"])
        )
        place = Place(platform=PLATFORM, channel=channel)
        reply = await self._run(
            say, lambda: self.engine.execute(actor, text, place), typed_key=word == "key"
        )
        if isinstance(reply, KeyFormRequested):
            await self._open_key_form(trigger, reply, channel, say)

    async def _open_key_form(
        self, trigger: str, reply: KeyFormRequested, channel: str, say: Say
    ) -> None:
        view = blocks.key_modal(
            str(reply.provider), str(reply.scope), channel, blocks.escape(render(reply))
        )
        try:
            await self.client.views_open(trigger_id=trigger, view=view)
        except SlackApiError as exc:
            log.warning("views.open failed: %s", slack_error(exc))
            await say("The key form could not be opened; please run `/taste key` again.")

    async def on_key_submitted(self, ack: AsyncAck, body: Body, view: Body) -> None:
        values = view.get("state", {}).get("values", {})
        secret = str(
            (values.get(blocks.KEY_BLOCK, {}).get(blocks.KEY_INPUT, {}) or {}).get("value") or ""
        ).strip()
        provider_name, _, rest = str(view.get("private_metadata") or "").partition("|")
        scope_name, _, channel = rest.partition("|")
        try:
            provider = ProviderName(provider_name)
            scope = KeyScope(scope_name)
        except ValueError:
            await ack(response_action="errors", errors={blocks.KEY_BLOCK: "Please start again."})
            return
        actor = await self._interaction_actor(body)
        try:
            reply = await self.engine.bind_key(actor, provider, ApiKey(secret), scope=scope)
        except TmbotError as err:
            await ack(response_action="errors", errors={blocks.KEY_BLOCK: err.user_message[:150]})
            return
        await ack()
        if channel:
            await self._ephemeral(channel, actor.user_id)(reply_text(reply))

    async def _restarting(self, event: Body) -> None:
        """While shutting down: tell the person privately, start nothing."""
        channel, user = event.get("channel"), event.get("user")
        if channel and user:
            thread = event.get("thread_ts") or event.get("ts")
            await self._ephemeral(str(channel), str(user), thread and str(thread))(RESTARTING)

    # --- the Events API --------------------------------------------------------------------

    async def _first_time(self, scope: str, key: str, *, shown: str | None = None) -> bool:
        """Whether this request is new: the store remembers it (across restarts and every
        process sharing the store), so a retry or a double delivery does nothing twice.
        ``shown``: how the log names it (a trigger id is not logged)."""
        if await self.engine.first_time(scope, key):
            return True
        log.info("%s %s seen before; not acted on again", scope, shown or "request")
        return False

    async def _first(self, body: Body) -> bool:
        event_id = str(body.get("event_id") or "")
        return not event_id or await self._first_time("slack-event", event_id, shown=event_id)

    async def _event_actor(self, body: Body, event: Body) -> Actor:
        team = str(body.get("team_id") or event.get("team") or "")
        return await self.actor(team, body.get("enterprise_id") or None, str(event["user"]))

    @staticmethod
    def _from_a_bot(event: Body) -> bool:
        return bool(event.get("bot_id") or event.get("subtype") == "bot_message")

    async def on_mention(self, body: Body, event: Body, context: AsyncBoltContext) -> None:
        if self._from_a_bot(event) or not event.get("user"):
            return
        if self.stopping():
            await self._restarting(event)
            return
        if not await self._first(body):
            return
        bot = context.bot_user_id or ""
        text = re.sub(rf"<@{re.escape(bot)}(\|[^>]*)?>", " ", str(event.get("text") or ""))
        text = " ".join(text.split())
        channel, ts = str(event["channel"]), str(event["ts"])
        thread = event.get("thread_ts")
        actor = await self._event_actor(body, event)
        say = self._ephemeral(channel, actor.user_id, thread)
        if thread and thread != ts:
            original = await self.engine.generation_for_message(PLATFORM, channel, str(thread))
            if original is not None and first_word(text) not in ACCOUNT_WORDS:
                place = Place(platform=PLATFORM, channel=channel, thread=str(thread))
                await self._run(say, lambda: self.engine.refine(actor, original.id, text, place))
                return
        place = Place(platform=PLATFORM, channel=channel, thread=str(thread or ts))
        await self._run(
            say,
            lambda: self.engine.execute(actor, text, place),
            typed_key=first_word(text) == "key",
        )

    async def on_message(self, body: Body, event: Body, context: AsyncBoltContext) -> None:
        """A request channel's new top-level message is a brief (its card goes in the
        message's thread). Edits, replies, bots' messages and mentions are not."""
        if event.get("subtype") or self._from_a_bot(event) or not event.get("user"):
            return
        ts = str(event.get("ts") or "")
        if event.get("thread_ts") and event.get("thread_ts") != ts:
            return
        text = str(event.get("text") or "")
        bot = context.bot_user_id or ""
        if bot and f"<@{bot}" in text:
            return  # app_mention handles it
        channel = str(event.get("channel") or "")
        team = str(body.get("team_id") or event.get("team") or "")
        tenant = tenant_for(team, body.get("enterprise_id") or None)
        if not await self.engine.is_request_channel(tenant, channel):
            return
        if self.stopping():
            await self._restarting(event)
            return
        if not await self._first(body):
            return
        actor = await self._event_actor(body, event)
        place = Place(platform=PLATFORM, channel=channel, thread=ts)
        await self._run(
            self._ephemeral(channel, actor.user_id, ts),
            lambda: self.engine.execute(actor, text, place),
            typed_key=first_word(text) == "key",
        )

    async def on_reaction(self, body: Body, event: Body, context: AsyncBoltContext) -> None:
        name = str(event.get("reaction") or "").split("::")[0]
        if name not in REGENERATE | REMOVE:
            return
        item = event.get("item") or {}
        if item.get("type") != "message":
            return
        bot = context.bot_user_id
        if bot and event.get("item_user") not in (None, bot):
            return
        if self.stopping():
            await self._restarting({"channel": item.get("channel"), "user": event.get("user")})
            return
        if not await self._first(body):
            return
        channel, ts = str(item["channel"]), str(item["ts"])
        generation_id = await self._generation_at(channel, ts)
        if generation_id is None:
            return
        actor = await self._event_actor(body, event)
        say = self._ephemeral(channel, actor.user_id)
        if name in REGENERATE:
            await self._run(say, lambda: self.engine.regenerate(actor, generation_id))
        else:
            await self._run(say, lambda: self.engine.delete(actor, generation_id))

    async def _generation_at(self, channel: str, ts: str) -> str | None:
        """The generation a message shows: its card or image by ts, else (an image message
        whose ts was never learned) the card at its thread's parent."""
        gen = await self.engine.generation_for_message(PLATFORM, channel, ts)
        if gen is not None:
            return gen.id
        try:
            found = await self.client.conversations_replies(channel=channel, ts=ts, limit=1)
        except SlackApiError:
            return None
        messages = found.get("messages") or []
        parent = messages[0].get("thread_ts") if messages else None
        if not parent or parent == ts:
            return None
        gen = await self.engine.generation_for_message(PLATFORM, channel, str(parent))
        return gen.id if gen is not None else None

    # --- buttons -----------------------------------------------------------------------------

    async def _interaction_actor(self, body: Body) -> Actor:
        user = body.get("user") or {}
        team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
        enterprise = (body.get("enterprise") or {}).get("id")
        return await self.actor(str(team), enterprise, str(user.get("id") or ""))

    async def _button(self, body: Body, action: Body, again: bool) -> None:
        if self.stopping():
            channel = (body.get("channel") or {}).get("id")
            await self._restarting({"channel": channel, "user": (body.get("user") or {}).get("id")})
            return
        key = f"{body.get('trigger_id')}|{action.get('action_ts')}"
        if not await self._first_time("slack-action", key):
            return
        generation_id = str(action.get("value") or "")
        actor = await self._interaction_actor(body)
        channel = str((body.get("channel") or {}).get("id") or "")
        say = self._ephemeral(channel, actor.user_id)
        if again:
            await self._run(say, lambda: self.engine.regenerate(actor, generation_id))
        else:
            await self._run(say, lambda: self.engine.delete(actor, generation_id))

    async def on_again(self, ack: AsyncAck, body: Body, action: Body) -> None:
        await ack()
        await self._button(body, action, again=True)

    async def on_delete(self, ack: AsyncAck, body: Body, action: Body) -> None:
        await ack()
        await self._button(body, action, again=False)
