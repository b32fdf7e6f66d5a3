"""The fake Discord itself: an aiohttp server with the REST API and the gateway websocket."""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import BodyPartReader, hdrs, web

from .events import EventBuilders, parse_emoji
from .gateway import PRIVILEGED_INTENTS, Gateway, GatewaySession
from .model import (
    ATTACH_FILES,
    CREATE_PUBLIC_THREADS,
    DM,
    EVERYONE_PERMISSIONS,
    GUILD_TEXT,
    JSON,
    PUBLIC_THREAD,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    Call,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeRole,
    FakeUser,
    Fault,
    Snowflakes,
    UploadedFile,
    frozen_mapping,
    iso_now,
)

API_PREFIX = "/api/v10"
NONCE_WINDOW_SECONDS = 300.0  # Discord: "a few minutes"
MAX_CONTENT = 2000
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Interaction callback types.
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9


class ApiError(Exception):
    """Raised by a handler to answer with Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Request:
    """What a handler sees: route params, query, the JSON body (or payload_json) and files."""

    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    json: Any
    files: tuple[UploadedFile, ...]

    def snowflake(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise ApiError(404, 0, "404: Not Found") from None

    @property
    def body(self) -> JSON:
        return self.json if isinstance(self.json, dict) else {}


Handler = Callable[[Request], Awaitable[tuple[int, Any]]]


def json_response(status: int, data: Any) -> web.Response:
    """A JSON answer with ``Content-Type: application/json`` exactly (no charset suffix).

    discord.py compares the header with ``==``; ``web.json_response`` would add
    ``; charset=utf-8`` and discord.py would then hand the raw text to its callers.
    """
    if status == 204 or data is None:
        return web.Response(status=204 if data is None else status, headers={"Via": "1.1 google"})
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={hdrs.CONTENT_TYPE: "application/json", "Via": "1.1 google"},
    )


class FakeDiscord(Gateway, EventBuilders):
    """A local Discord: REST under ``api_url`` and a gateway at ``gateway_url``.

    ``async with FakeDiscord() as fake:`` starts it on 127.0.0.1, port 0. Point discord.py
    at it with :meth:`patch_discord` (sets ``Route.BASE`` and the default gateway URL).
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",  # noqa: S107 - the fake's own test token
        bot_name: str = "tmbot",
        default_guild: bool = True,
        heartbeat_interval_ms: int = 41250,
        shards: int = 1,
        max_concurrency: int = 1,
    ) -> None:
        self.token = token
        #: what GET /gateway/bot recommends; sessions route by their own IDENTIFY's count
        self.shard_count = shards
        self.shard_conflicts: list[list[int]] = []
        self.max_concurrency = max_concurrency
        #: time.monotonic() of every accepted IDENTIFY (beside ``identifies``)
        self.identify_times: list[float] = []
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # The privileged intents switched on for the app in the developer portal.
        self.privileged_intents = PRIVILEGED_INTENTS
        self.snowflake = Snowflakes()
        self.application_id = self.snowflake()
        self.bot = FakeUser(self.snowflake(), bot_name, bot=True)
        self.owner = FakeUser(self.snowflake(), "owner", global_name="Owner")
        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, JSON] = {}
        self.attachments: dict[int, bytes] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.calls: list[Call] = []
        self.identifies: list[JSON] = []
        self.sessions: dict[str, GatewaySession] = {}
        self._nonces: dict[tuple[int, str], tuple[int, float]] = {}
        self._faults: list[Fault] = []
        self._changed = asyncio.Condition()
        self.identify_gate = asyncio.Event()
        self.identify_gate.set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.guild: FakeGuild | None = None
        if default_guild:
            self.guild = self.add_guild("Test Guild")
            self.guild.add_text_channel("general")
            bot_role = self.guild.add_role(bot_name, EVERYONE_PERMISSIONS)
            self.guild.add_member(self.bot, [bot_role])
            self.guild.add_member(self.owner)

    # ----------------------------------------------------------------- world set-up

    def add_user(self, username: str, *, bot: bool = False) -> FakeUser:
        user = FakeUser(self.snowflake(), username, bot=bot, global_name=username.title())
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        *,
        owner: FakeUser | None = None,
        premium_tier: int = 0,
        filesize_limit: int | None = None,
        shard: int | None = None,
    ) -> FakeGuild:
        """A guild; ``shard``: one whose id falls on that shard of ``shard_count``."""
        guild_id = self.snowflake()
        while shard is not None and self.shard_of(guild_id, self.shard_count) != shard:
            guild_id = self.snowflake()
        guild = FakeGuild(guild_id, name, (owner or self.owner).id, self.snowflake)
        guild.premium_tier = premium_tier
        if filesize_limit is not None:
            guild.filesize_limit = filesize_limit
        guild.roles[guild.id] = FakeRole(guild.id, "@everyone", EVERYONE_PERMISSIONS)
        self.guilds[guild.id] = guild
        return guild

    def channel(self, channel_id: int) -> FakeChannel:
        found = self.channels.get(channel_id)
        if found is None:
            for guild in self.guilds.values():
                if channel_id in guild.channels:
                    found = self.channels[channel_id] = guild.channels[channel_id]
        if found is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return found

    def channel_messages(self, channel_id: int) -> list[JSON]:
        """Messages in a channel, oldest first."""
        return [m for m in self.messages.values() if int(m["channel_id"]) == channel_id]

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=512 * 1024 * 1024)
        for method, route, handler, auth in self._routes():
            app.router.add_route(method, API_PREFIX + route, self._wrap(route, handler, auth))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._wrap("?", self._unknown, False))
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake discord stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def patch_discord(self) -> _Patch:
        """Context manager pointing discord.py's class-level URLs at this fake.

        Sets ``discord.http.Route.BASE`` (every REST and webhook call) and
        ``DiscordWebSocket.DEFAULT_GATEWAY`` (a plain ``Client`` never asks
        ``/gateway/bot``; it connects to this class attribute). Restores both on exit.
        """
        return _Patch(self.api_url, self.gateway_url)

    # ----------------------------------------------------------------- recorded calls

    def calls_to(self, method: str, route: str) -> list[Call]:
        return [c for c in self.calls if c.matches(method, route)]

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """The first recorded call (past or future) matching ``predicate``."""

        def found() -> Call | None:
            return next((c for c in self.calls if predicate(c)), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

    async def wait_for_call(self, method: str, route: str, timeout: float = 10.0) -> Call:
        return await self.wait_for(lambda c: c.matches(method, route), timeout)

    def fail_next(
        self,
        route: str,
        status: int,
        code: int = 0,
        message: str = "injected failure",
        *,
        method: str | None = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: JSON | None = None,
    ) -> None:
        """The next ``times`` calls to ``route`` (a template) answer ``status`` with that error."""
        payload = body if body is not None else {"message": message, "code": code}
        for _ in range(times):
            self._faults.append(Fault(method, route, status, payload, dict(headers or {})))

    def rate_limit_next(
        self,
        route: str,
        retry_after: float = 0.05,
        *,
        method: str | None = None,
        is_global: bool = False,
        times: int = 1,
    ) -> None:
        """The next calls to ``route`` get a 429 shaped like Discord's (headers and body)."""
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket" + secrets.token_hex(4),
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after}
        body["global"] = is_global
        self.fail_next(
            route, 429, method=method, times=times, headers=headers, body={**body, "code": 0}
        )

    def _wrap(self, route: str, handler: Handler, auth: bool) -> Callable[..., Any]:
        async def endpoint(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            params = frozen_mapping(dict(request.match_info))
            query = frozen_mapping(dict(request.query))
            body: Any = None
            files: list[UploadedFile] = []
            status: int
            answer: Any
            try:
                body, files = await _read_body(request)
                if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                    raise ApiError(401, 0, "401: Unauthorized")
                fault = self._take_fault(request.method, route)
                if fault is not None:
                    status, answer = fault.status, fault.body
                    response = json_response(status, answer)
                    response.headers.update(fault.headers)
                else:
                    req = Request(params, query, headers, body, tuple(files))
                    status, answer = await handler(req)
                    response = json_response(status, answer)
            except ApiError as exc:
                status = exc.status
                response = json_response(status, {"message": exc.message, "code": exc.code})
            path = request.path[len(API_PREFIX) :]
            call = Call(
                len(self.calls), request.method, route, path, params, query,
                frozen_mapping(headers), body, tuple(files), status,
            )  # fmt: skip
            async with self._changed:
                self.calls.append(call)
                self._changed.notify_all()
            return response

        return endpoint

    def _take_fault(self, method: str, route: str) -> Fault | None:
        for fault in self._faults:
            if fault.route == route and fault.method in (None, method):
                self._faults.remove(fault)
                return fault
        return None

    async def _unknown(self, req: Request) -> tuple[int, Any]:
        raise ApiError(404, 0, "404: Not Found")

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self.attachments.get(int(request.match_info["attachment_id"]))
        if data is None:
            raise web.HTTPNotFound()
        kind = mimetypes.guess_type(request.match_info["filename"])[0]
        return web.Response(body=data, content_type=kind or "application/octet-stream")

    # ----------------------------------------------------------------- REST routes

    def _routes(self) -> list[tuple[str, str, Handler, bool]]:
        wh = "/webhooks/{webhook_id}/{webhook_token}"
        msg = "/channels/{channel_id}/messages/{message_id}"
        return [
            ("GET", "/gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", self._get_gateway_bot, True),
            ("GET", "/users/@me", self._get_me, True),
            ("GET", "/users/{user_id}", self._get_user, True),
            ("POST", "/users/@me/channels", self._create_dm, True),
            ("GET", "/oauth2/applications/@me", self._get_application, True),
            ("GET", "/applications/@me", self._get_application, True),
            ("GET", "/applications/{application_id}/commands", self._get_commands, True),
            ("PUT", "/applications/{application_id}/commands", self._put_commands, True),
            ("POST", "/applications/{application_id}/commands", self._post_command, True),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands",
             self._get_commands, True),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands",
             self._put_commands, True),
            ("POST", "/applications/{application_id}/guilds/{guild_id}/commands",
             self._post_command, True),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback",
             self._interaction_callback, False),
            ("POST", wh, self._webhook_execute, False),
            ("GET", wh + "/messages/@original", self._webhook_get, False),
            ("PATCH", wh + "/messages/@original", self._webhook_edit, False),
            ("DELETE", wh + "/messages/@original", self._webhook_delete, False),
            ("GET", wh + "/messages/{message_id}", self._webhook_get, False),
            ("PATCH", wh + "/messages/{message_id}", self._webhook_edit, False),
            ("DELETE", wh + "/messages/{message_id}", self._webhook_delete, False),
            ("GET", "/channels/{channel_id}", self._get_channel, True),
            ("GET", "/channels/{channel_id}/messages", self._list_messages, True),
            ("POST", "/channels/{channel_id}/messages", self._send_message, True),
            ("POST", "/channels/{channel_id}/typing", self._typing, True),
            ("GET", msg, self._get_message, True),
            ("PATCH", msg, self._edit_message, True),
            ("DELETE", msg, self._delete_message, True),
            ("POST", msg + "/threads", self._thread_from_message, True),
            ("POST", "/channels/{channel_id}/threads", self._thread_without_message, True),
            ("PUT", msg + "/reactions/{emoji}/@me", self._add_reaction, True),
            ("DELETE", msg + "/reactions/{emoji}/@me", self._remove_reaction, True),
            ("GET", "/guilds/{guild_id}", self._get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member, True),
        ]  # fmt: skip

    async def _get_gateway(self, req: Request) -> tuple[int, Any]:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, req: Request) -> tuple[int, Any]:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0}
        limit["max_concurrency"] = self.max_concurrency
        return 200, {
            "url": self.gateway_url,
            "shards": self.shard_count,
            "session_start_limit": limit,
        }

    def _me(self) -> JSON:
        return {
            **self.bot.payload(),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "locale": "en-US",
        }

    async def _get_me(self, req: Request) -> tuple[int, Any]:
        return 200, self._me()

    async def _get_user(self, req: Request) -> tuple[int, Any]:
        user = self.users.get(req.snowflake("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return 200, user.payload()

    async def _create_dm(self, req: Request) -> tuple[int, Any]:
        user = self.users.get(int(req.body.get("recipient_id", 0)))
        if user is None:
            raise ApiError(400, 50035, "Invalid Form Body")
        return 200, self.dm_channel(user).payload()

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The bot's DM channel with ``user`` (created on first use, as Discord does)."""
        for channel in self.channels.values():
            if channel.type == DM and channel.recipients == [user]:
                return channel
        channel = FakeChannel(self.snowflake(), DM, None, recipients=[user])
        self.channels[channel.id] = channel
        return channel

    def application_payload(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "",
            "summary": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": self.bot.payload(),
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
            "tags": [],
            "redirect_uris": [],
        }

    async def _get_application(self, req: Request) -> tuple[int, Any]:
        return 200, self.application_payload()

    def _command_list(self, req: Request) -> tuple[list[JSON], int | None]:
        if req.snowflake("application_id") != self.application_id:
            raise ApiError(403, 50001, "Missing Access")
        if "guild_id" not in req.params:
            return self.global_commands, None
        guild_id = req.snowflake("guild_id")
        if guild_id not in self.guilds:
            raise ApiError(403, 50001, "Missing Access")
        return self.guild_commands.setdefault(guild_id, []), guild_id

    def _stored_command(self, data: JSON, guild_id: int | None, old: list[JSON]) -> JSON:
        kind = data.get("type", 1)
        previous = next((c for c in old if c["name"] == data["name"] and c["type"] == kind), None)
        stored: JSON = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **data,
            "id": previous["id"] if previous else str(self.snowflake()),
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
        }
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    async def _get_commands(self, req: Request) -> tuple[int, Any]:
        commands, _ = self._command_list(req)
        return 200, commands

    async def _put_commands(self, req: Request) -> tuple[int, Any]:
        commands, guild_id = self._command_list(req)
        if not isinstance(req.json, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        new = [self._stored_command(c, guild_id, commands) for c in req.json]
        commands[:] = new
        return 200, new

    async def _post_command(self, req: Request) -> tuple[int, Any]:
        commands, guild_id = self._command_list(req)
        stored = self._stored_command(req.body, guild_id, commands)
        commands[:] = [c for c in commands if c["id"] != stored["id"]] + [stored]
        return 201, stored

    # -- interactions and their webhooks

    def _find_interaction(self, req: Request, id_param: str, token_param: str) -> FakeInteraction:
        token = req.params[token_param]
        found = next((i for i in self.interactions.values() if i.token == token), None)
        if found is None or (id_param == "interaction_id" and found.id != req.snowflake(id_param)):
            raise ApiError(404, 10062, "Unknown interaction")
        if id_param == "webhook_id" and req.snowflake(id_param) != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        return found

    async def _interaction_callback(self, req: Request) -> tuple[int, Any]:
        inter = self._find_interaction(req, "interaction_id", "interaction_token")
        if inter.responded is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind = req.body.get("type")
        data: JSON = req.body.get("data") or {}
        message: JSON | None = None
        if kind == CHANNEL_MESSAGE:
            message = await self._create_message(inter.channel_id, data, req.files, inter=inter)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            flags = LOADING | (data.get("flags", 0) & EPHEMERAL)
            message = await self._create_message(
                inter.channel_id, {"content": "", "flags": flags}, (), inter=inter, allow_empty=True
            )
        elif kind == UPDATE_MESSAGE and inter.message_id is not None:
            message = await self._apply_edit(self._message(inter.message_id), data, req.files)
        elif kind not in (DEFERRED_UPDATE, AUTOCOMPLETE_RESULT, MODAL):
            raise ApiError(400, 50035, "Invalid Form Body")
        inter.responded = kind
        inter.callbacks.append(req.body)
        if message is not None and kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            inter.original_message_id = int(message["id"])
        if req.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        flags = message.get("flags", 0) if message else 0
        answer: JSON = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": kind, **({"message": message} if message else {})},
        }
        return 200, answer

    def _webhook_message(self, req: Request, inter: FakeInteraction) -> JSON:
        if "message_id" in req.params:
            message = self._message(req.snowflake("message_id"))
            if message.get("webhook_id") != str(self.application_id):
                raise ApiError(404, 10008, "Unknown Message")
            return message
        if inter.original_message_id is None:
            raise ApiError(404, 10008, "Unknown Message")
        return self._message(inter.original_message_id)

    async def _webhook_execute(self, req: Request) -> tuple[int, Any]:
        inter = self._find_interaction(req, "webhook_id", "webhook_token")
        if inter.responded is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        original = self.messages.get(inter.original_message_id or 0)
        if original is not None and original.get("flags", 0) & LOADING:
            # The first followup after a deferred response replaces the "thinking" message.
            body = {**req.body, "flags": (original["flags"] & EPHEMERAL) | req.body.get("flags", 0)}
            message = await self._apply_edit(original, body, req.files)
        else:
            message = await self._create_message(inter.channel_id, req.body, req.files, inter=inter)
        return (200, message) if req.query.get("wait") in ("1", "true", "True") else (204, None)

    async def _webhook_get(self, req: Request) -> tuple[int, Any]:
        inter = self._find_interaction(req, "webhook_id", "webhook_token")
        return 200, self._webhook_message(req, inter)

    async def _webhook_edit(self, req: Request) -> tuple[int, Any]:
        inter = self._find_interaction(req, "webhook_id", "webhook_token")
        return 200, await self._apply_edit(self._webhook_message(req, inter), req.body, req.files)

    async def _webhook_delete(self, req: Request) -> tuple[int, Any]:
        inter = self._find_interaction(req, "webhook_id", "webhook_token")
        await self._remove_message(self._webhook_message(req, inter))
        return 204, None

    # -- channels and messages

    def _guild_of(self, channel: FakeChannel) -> FakeGuild | None:
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def _require(self, channel: FakeChannel, permission: int) -> None:
        guild = self._guild_of(channel)
        if guild is not None and not guild.permissions_for(self.bot.id) & permission:
            raise ApiError(403, 50013, "Missing Permissions")

    def _message(self, message_id: int, channel_id: int | None = None) -> JSON:
        message = self.messages.get(message_id)
        if message is None or (channel_id is not None and int(message["channel_id"]) != channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, req: Request) -> tuple[int, Any]:
        return 200, self.channel(req.snowflake("channel_id")).payload()

    async def _list_messages(self, req: Request) -> tuple[int, Any]:
        messages = self.channel_messages(self.channel(req.snowflake("channel_id")).id)
        if "before" in req.query:
            messages = [m for m in messages if int(m["id"]) < int(req.query["before"])]
        if "after" in req.query:
            messages = [m for m in messages if int(m["id"]) > int(req.query["after"])]
        limit = int(req.query.get("limit", 50))
        return 200, list(reversed(messages))[:limit]

    async def _typing(self, req: Request) -> tuple[int, Any]:
        self.channel(req.snowflake("channel_id"))
        return 204, None

    async def _send_message(self, req: Request) -> tuple[int, Any]:
        channel = self.channel(req.snowflake("channel_id"))
        self._require(channel, SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES)
        if req.files:
            self._require(channel, ATTACH_FILES)
        nonce = req.body.get("nonce")
        if nonce is not None and req.body.get("enforce_nonce"):
            seen = self._nonces.get((channel.id, str(nonce)))
            if seen is not None and time.monotonic() - seen[1] < NONCE_WINDOW_SECONDS:
                original = self.messages.get(seen[0])
                if original is not None:
                    return 200, original
        message = await self._create_message(channel.id, req.body, req.files)
        if nonce is not None and req.body.get("enforce_nonce"):
            self._nonces[(channel.id, str(nonce))] = (int(message["id"]), time.monotonic())
        return 200, message

    async def _get_message(self, req: Request) -> tuple[int, Any]:
        return 200, self._message(req.snowflake("message_id"), req.snowflake("channel_id"))

    async def _edit_message(self, req: Request) -> tuple[int, Any]:
        message = self._message(req.snowflake("message_id"), req.snowflake("channel_id"))
        if message["author"]["id"] != str(self.bot.id) and set(req.body) - {"flags"}:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        return 200, await self._apply_edit(message, req.body, req.files)

    async def _delete_message(self, req: Request) -> tuple[int, Any]:
        message = self._message(req.snowflake("message_id"), req.snowflake("channel_id"))
        await self._remove_message(message)
        return 204, None

    async def _thread_from_message(self, req: Request) -> tuple[int, Any]:
        parent = self.channel(req.snowflake("channel_id"))
        message = self._message(req.snowflake("message_id"), parent.id)
        if parent.type != GUILD_TEXT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require(parent, CREATE_PUBLIC_THREADS)
        if message["id"] in (str(c) for c in self.channels):
            raise ApiError(400, 160004, "A thread has already been created for this message")
        thread = self._new_thread(parent, int(message["id"]), req.body, PUBLIC_THREAD)
        message["thread"] = thread.payload()
        return 201, await self._announce_thread(thread)

    async def _thread_without_message(self, req: Request) -> tuple[int, Any]:
        parent = self.channel(req.snowflake("channel_id"))
        self._require(parent, CREATE_PUBLIC_THREADS)
        kind = int(req.body.get("type", PUBLIC_THREAD + 1))
        thread = self._new_thread(parent, self.snowflake(), req.body, kind)
        return 201, await self._announce_thread(thread)

    def _new_thread(
        self, parent: FakeChannel, thread_id: int, body: JSON, kind: int
    ) -> FakeChannel:
        if not body.get("name"):
            raise ApiError(400, 50035, "Invalid Form Body")
        thread = FakeChannel(
            thread_id, kind, str(body["name"]), parent.guild_id, parent.id, self.bot.id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )  # fmt: skip
        guild = self._guild_of(parent)
        assert guild is not None
        guild.channels[thread.id] = thread
        self.channels[thread.id] = thread
        return thread

    async def _announce_thread(self, thread: FakeChannel) -> JSON:
        payload = thread.payload()
        member = {"id": str(thread.id), "user_id": str(self.bot.id), "join_timestamp": iso_now()}
        payload["member"] = {**member, "flags": 0}
        await self._emit("THREAD_CREATE", {**payload, "newly_created": True})
        return payload

    async def _add_reaction(self, req: Request) -> tuple[int, Any]:
        channel = self.channel(req.snowflake("channel_id"))
        message = self._message(req.snowflake("message_id"), channel.id)
        emoji = parse_emoji(req.params["emoji"])
        reactions: list[JSON] = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["emoji"] == emoji), None)
        if entry is None:
            entry = {"emoji": emoji, "count": 0, "me": False, "me_burst": False, "burst_colors": []}
            entry["count_details"] = {"burst": 0, "normal": 0}
            reactions.append(entry)
        if not entry["me"]:
            entry["me"] = True
            entry["count"] += 1
            entry["count_details"]["normal"] += 1
            await self._emit("MESSAGE_REACTION_ADD", self.reaction(message, emoji, self.bot))
        return 204, None

    async def _remove_reaction(self, req: Request) -> tuple[int, Any]:
        message = self._message(req.snowflake("message_id"), req.snowflake("channel_id"))
        emoji = parse_emoji(req.params["emoji"])
        for entry in message.get("reactions", []):
            if entry["emoji"] == emoji and entry["me"]:
                entry["me"] = False
                entry["count"] -= 1
        message["reactions"] = [r for r in message.get("reactions", []) if r["count"] > 0]
        return 204, None

    def _guild(self, req: Request) -> FakeGuild:
        guild = self.guilds.get(req.snowflake("guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def _get_guild(self, req: Request) -> tuple[int, Any]:
        payload = self._guild(req).payload()
        for key in ("members", "channels", "threads", "voice_states", "presences"):
            payload.pop(key)
        return 200, payload

    async def _get_guild_channels(self, req: Request) -> tuple[int, Any]:
        return 200, [c.payload() for c in self._guild(req).channels.values() if not c.is_thread]

    async def _get_roles(self, req: Request) -> tuple[int, Any]:
        return 200, [r.payload() for r in self._guild(req).roles.values()]

    async def _get_member(self, req: Request) -> tuple[int, Any]:
        member = self._guild(req).members.get(req.snowflake("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, member.payload()

    # -- message bodies

    async def _create_message(
        self,
        channel_id: int,
        body: JSON,
        files: tuple[UploadedFile, ...] | list[UploadedFile],
        *,
        inter: FakeInteraction | None = None,
        allow_empty: bool = False,
    ) -> JSON:
        channel = self.channel(channel_id)
        guild = self._guild_of(channel)
        self._check_files(channel, files)
        if not allow_empty and not (
            body.get("content") or body.get("embeds") or files or body.get("components")
        ):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message: JSON = {
            "id": str(self.snowflake()),
            "channel_id": str(channel.id),
            "author": self.bot.payload(),
            "content": "",
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": int(body.get("flags") or 0),
            "reactions": [],
        }
        if guild is not None:
            message["guild_id"] = str(guild.id)
            message["member"] = guild.members[self.bot.id].payload(with_user=False)
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if inter is not None:
            message["webhook_id"] = str(self.application_id)
            message["application_id"] = str(self.application_id)
            message["type"] = 20 if inter.type == 2 else 0
            message["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "user": inter.user.payload(),
                "authorizing_integration_owners": {},
            }
        reference = body.get("message_reference")
        if reference:
            referenced = self.messages.get(int(reference.get("message_id", 0)))
            if referenced is None and reference.get("fail_if_not_exists", True):
                raise ApiError(400, 50035, "Invalid Form Body: Unknown message")
            message["type"] = 19
            message["message_reference"] = {
                "type": 0,
                "message_id": str(reference.get("message_id")),
                "channel_id": str(reference.get("channel_id") or channel.id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            message["referenced_message"] = referenced
        await self._apply_edit(message, body, files, new=True)
        self.messages[int(message["id"])] = message
        await self._emit("MESSAGE_CREATE", message)
        return message

    def _check_files(self, channel: FakeChannel, files: Any) -> None:
        guild = self._guild_of(channel)
        limit = guild.filesize_limit if guild else 10 * 1024 * 1024
        if any(len(f.data) > limit for f in files):
            raise ApiError(413, 40005, "Request entity too large")

    async def _apply_edit(
        self,
        message: JSON,
        body: JSON,
        files: tuple[UploadedFile, ...] | list[UploadedFile],
        *,
        new: bool = False,
    ) -> JSON:
        channel = self.channel(int(message["channel_id"]))
        self._check_files(channel, files)
        content = body.get("content")
        if content is not None and len(str(content)) > MAX_CONTENT:
            raise ApiError(
                400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length."
            )
        if "content" in body:
            message["content"] = content or ""
            message["mentions"] = self._mentions(message["content"], body.get("allowed_mentions"))
        if "embeds" in body:
            message["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = body["components"] or []
        if "flags" in body and not new:
            message["flags"] = int(body["flags"] or 0)
        if "attachments" in body or files:
            message["attachments"] = self._attachments(channel, message, body, files)
        if not new:
            message["edited_timestamp"] = iso_now()
            await self._emit("MESSAGE_UPDATE", message)
        return message

    def _attachments(
        self, channel: FakeChannel, message: JSON, body: JSON, files: Any
    ) -> list[JSON]:
        by_field = {f.field: f for f in files}
        kept = {a["id"]: a for a in message.get("attachments", [])}
        result: list[JSON] = []
        described = body.get("attachments")
        if described is None:
            described = [{"id": i, "filename": f.filename} for i, f in enumerate(files)]
        for item in described:
            upload = by_field.get(f"files[{item.get('id')}]")
            if upload is None:
                if str(item.get("id")) in kept:
                    result.append(kept[str(item["id"])])
                continue
            attachment_id = self.snowflake()
            self.attachments[attachment_id] = upload.data
            filename = item.get("filename") or upload.filename
            url = f"{self.base_url}/attachments/{channel.id}/{attachment_id}/{filename}"
            entry: JSON = {
                "id": str(attachment_id),
                "filename": filename,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
                "content_type": mimetypes.guess_type(filename)[0],
                "flags": 0,
            }
            if item.get("description"):
                entry["description"] = item["description"]
            result.append(entry)
        return result

    def _mentions(self, content: str, allowed: JSON | None) -> list[JSON]:
        ids = [int(m) for m in re.findall(r"<@!?(\d+)>", content)]
        if allowed is not None:
            explicit = {int(u) for u in allowed.get("users", [])}
            if "users" not in allowed.get("parse", []):
                ids = [i for i in ids if i in explicit]
        return [self.users[i].payload() for i in dict.fromkeys(ids) if i in self.users]

    async def _remove_message(self, message: JSON) -> None:
        self.messages.pop(int(message["id"]), None)
        data = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
        await self._emit("MESSAGE_DELETE", data)


async def _read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    files: list[UploadedFile] = []
    if request.content_type.startswith("multipart/"):
        body: Any = None
        fields: JSON = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            if part.filename is not None:
                data = bytes(await part.read())
                kind = part.headers.get(hdrs.CONTENT_TYPE)
                files.append(UploadedFile(name, part.filename, kind, data))
            elif name == "payload_json":
                body = _loads(await part.text())
            else:
                fields[name] = await part.text()
        return (body if body is not None else fields), files
    raw = await request.read()
    return (_loads(raw.decode()) if raw else None), files


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


class _Patch:
    """Points discord.py's class attributes at the fake; restores them on exit."""

    def __init__(self, api_url: str, gateway_url: str) -> None:
        self.api_url, self.gateway_url = api_url, gateway_url
        self._saved: tuple[str, Any] | None = None

    def __enter__(self) -> Self:
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        self._saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        Route.BASE = self.api_url
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        return self

    def __exit__(self, *exc: object) -> None:
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        assert self._saved is not None
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved
