"""`FakeSlack`: a local Slack (Web API, file upload URLs, response URLs, Socket Mode) on
127.0.0.1 and a free port, recording every call it receives.

The real `slack_sdk` / `slack_bolt` talk to it over HTTP and WebSocket; nothing of theirs
is mocked. A subprocess can use it too (pass `api_url` as its Slack API base URL), as
long as the test that owns it keeps its event loop running (awaits something).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Self, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from .calls import (
    APP_TOKEN_METHODS,
    RESPONSE_URL,
    SOCKET_ACK,
    UPLOAD,
    Call,
    Fault,
    bearer,
    frozen,
    headers_without_auth,
    read_params,
)
from .model import APP_ID, Channel, JsonDict, Message, SlackError, User, Workspace
from .webapi import METHODS, Context, Params

T = TypeVar("T")

#: the bot scopes of adapters/slack/manifest.yml: what an installed app's token has
BOT_SCOPES = (
    "commands",
    "chat:write",
    "files:write",
    "files:read",
    "app_mentions:read",
    "channels:history",
    "reactions:read",
    "users:read",
    "channels:read",
    "groups:read",
)


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    ticket: str
    acks: dict[str, asyncio.Future[JsonDict]] = field(default_factory=dict)


class FakeSlack:
    """A local fake of Slack. Use as `async with FakeSlack() as fake:`."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",  # noqa: S107 - a test token
        app_token: str = "xapp-1-fake-app-token",  # noqa: S107
        files_info_shares_lag: int = 0,
        strict_threads: bool = False,
    ) -> None:
        """`files_info_shares_lag`: how many files.info calls per file show no shares yet
        (Slack shares uploads asynchronously). `strict_threads`: a thread_ts the fake has
        never seen is `thread_not_found` instead of being taken as given."""
        self.bot_token = bot_token
        self.app_token = app_token
        self.files_info_shares_lag = files_info_shares_lag
        self.workspace = Workspace(strict_threads=strict_threads)
        self.calls: list[Call] = []
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._seq = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._tickets = itertools.count(1)
        self._open_tickets: set[str] = set()
        self._sockets: list[_Socket] = []
        self.socket_connections_opened = 0  # every Socket Mode connection accepted, ever
        # cleared: apps.connections.open waits (counted in `connections_held`) until set again
        self.connections_gate = asyncio.Event()
        self.connections_gate.set()
        self.connections_held = 0
        # the bot token's scopes, sent as `x-oauth-scopes` on its answers (as Slack does)
        self.scopes: list[str] = list(BOT_SCOPES)
        self._response_ids = itertools.count(1)

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_post("/response/{response_id}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close the Socket Mode connections (close the app's client first), then the server."""
        for sock in list(self._sockets):
            await sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """The server root, "http://127.0.0.1:PORT"."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL for `AsyncWebClient(base_url=...)`; ends in "/api/"."""
        return f"{self.url}/api/"

    # ---------------------------------------------------------------- workspace

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
    ) -> User:
        return self.workspace.add_user(
            user_id, name, is_admin=is_admin, is_owner=is_owner, is_bot=is_bot
        )

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        bot_is_member: bool = True,
        is_private: bool = False,
        members: Sequence[str] = (),
    ) -> Channel:
        return self.workspace.add_channel(
            channel_id,
            name,
            bot_is_member=bot_is_member,
            is_private=is_private,
            members=set(members),
        )

    def add_user_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A message a person posted (as if typed in Slack); returns it with its new ts."""
        parent = self.workspace.thread_parent_ts(channel, thread_ts)
        return self.workspace.post(channel, text=text, user=user, bot_id=None, thread_ts=parent)

    def next_ts(self) -> str:
        return self.workspace.clock.next_ts()

    def message(self, channel: str, ts: str) -> Message:
        return self.workspace.message(channel, ts)

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return self.workspace.history(channel)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent message and its replies, oldest first."""
        return self.workspace.thread(channel, ts)

    def file_bytes(self, file_id: str) -> bytes | None:
        file = self.workspace.files.get(file_id)
        return file.data if file is not None else None

    def new_response_url(self) -> str:
        """A response_url served by the fake; POSTs to it are recorded as RESPONSE_URL calls."""
        return f"{self.url}/response/{next(self._response_ids)}"

    # ---------------------------------------------------------------- faults

    def fail_next(
        self, method: str, error: str = "internal_error", *, times: int = 1, status: int = 200
    ) -> None:
        """The next `times` calls to `method` answer `{"ok": false, "error": error}`."""
        self._faults[method].extend([Fault(error, status)] * times)

    def rate_limit_next(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls answer HTTP 429, `Retry-After`, `{"error": "ratelimited"}`."""
        self._faults[method].extend([Fault("ratelimited", 429, retry_after)] * times)

    def _take_fault(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        return queue.popleft() if queue else None

    # ---------------------------------------------------------------- records

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def calls_containing(self, text: str) -> list[Call]:
        """Every call that carried `text` anywhere (params, headers, body): for secrets."""
        return [c for c in self.calls if text in c.everything()]

    def mark(self) -> int:
        """The seq of the latest call; pass as `after=` to wait only for newer calls."""
        return self.calls[-1].seq if self.calls else 0

    async def wait_for(
        self, predicate: Callable[[Sequence[Call]], T | None], timeout: float = 5.0
    ) -> T:
        """Wait until `predicate(calls)` is truthy and return its value.

        It is checked now and again after every recorded call or Socket Mode (dis)connect,
        so it may look at the workspace model as well as at the calls.
        """
        try:
            async with asyncio.timeout(timeout), self._changed:
                result = await self._changed.wait_for(lambda: predicate(tuple(self.calls)))
        except TimeoutError:
            seen = ", ".join(f"{c.method}:{c.error or 'ok'}" for c in self.calls[-20:])
            message = f"fake Slack: condition not met in {timeout}s; calls: {seen}"
            raise AssertionError(message) from None
        assert result is not None  # wait_for returns only once the predicate is truthy
        return result

    async def wait_for_call(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> Call:
        """The first call to `method` (with seq > `after`, matching `where`)."""

        def first(calls: Sequence[Call]) -> Call | None:
            for call in calls:
                if call.seq > after and call.method == method and (where is None or where(call)):
                    return call
            return None

        return await self.wait_for(first, timeout)

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- HTTP

    @staticmethod
    def _json(
        status: int, body: JsonDict, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, raw, file_bytes = await read_params(request)
        token = bearer(request) or (params.pop("token", None) or None)
        if method == "apps.connections.open" and not self.connections_gate.is_set():
            self.connections_held += 1
            await self._notify()
            await self.connections_gate.wait()
        status, body, headers = self._answer(method, params, token)
        if token == self.bot_token:
            headers["x-oauth-scopes"] = ",".join(self.scopes)
        await self._record(
            Call(
                seq=next(self._seq),
                method=method,
                params=frozen(params),
                headers=headers_without_auth(request),
                token=token,
                body=raw,
                status=status,
                response=frozen(body),
                file_bytes=file_bytes,
            )
        )
        return self._json(status, body, headers)

    def _answer(
        self, method: str, params: JsonDict, token: str | None
    ) -> tuple[int, JsonDict, dict[str, str]]:
        wanted = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if token != wanted:
            if method in APP_TOKEN_METHODS and token == self.bot_token:
                return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        fault = self._take_fault(method)
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            return fault.status, {"ok": False, "error": fault.error}, headers
        if method == "apps.connections.open":
            ticket = f"fake-ticket-{next(self._tickets)}"
            self._open_tickets.add(ticket)
            url = f"ws://127.0.0.1:{self._port}/socket?ticket={ticket}&app_id={APP_ID}"
            return 200, {"ok": True, "url": url}, {}
        handler = METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        context = Context(self.url, self.files_info_shares_lag)
        try:
            result = handler(self.workspace, Params(params), context)
        except SlackError as refused:
            return 200, {"ok": False, "error": refused.error, **refused.extra}, {}
        return 200, {"ok": True, **result}, {}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: takes the raw bytes (or a multipart `file` part), answers text."""
        file_id = request.match_info["file_id"]
        params, raw, file_bytes = await read_params(request)
        data = file_bytes if file_bytes is not None else raw
        file = self.workspace.files.get(file_id)
        fault = self._take_fault(UPLOAD)
        if fault is not None:
            status, text = fault.status, fault.error
        elif file is None or file.completed:
            status, text = 404, "file not found"
        else:
            file.data = data
            status, text = 200, f"OK - {len(data)}"
        await self._record(
            Call(
                seq=next(self._seq),
                method=UPLOAD,
                params=frozen({**params, "file_id": file_id}),
                headers=headers_without_auth(request),
                token=bearer(request),
                body=raw,
                status=status,
                response=frozen({"ok": status == 200, "text": text}),
                file_bytes=data,
            )
        )
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _response_url(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            params = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            params = {"raw": raw.decode("utf-8", "replace")}
        params["response_id"] = request.match_info["response_id"]
        fault = self._take_fault(RESPONSE_URL)
        status, text = (fault.status, fault.error) if fault is not None else (200, "ok")
        await self._record(
            Call(
                seq=next(self._seq),
                method=RESPONSE_URL,
                params=frozen(params),
                headers=headers_without_auth(request),
                token=bearer(request),
                body=raw,
                status=status,
                response=frozen({"ok": status == 200, "text": text}),
            )
        )
        return web.Response(status=status, text=text, content_type="text/plain")

    # ---------------------------------------------------------------- Socket Mode

    @property
    def socket_connections(self) -> int:
        return sum(1 for s in self._sockets if not s.ws.closed)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._open_tickets:
            return web.Response(status=401, text="invalid ticket")
        self._open_tickets.discard(ticket)
        ws = web.WebSocketResponse()  # autoping: answers the client's pings with pongs
        await ws.prepare(request)
        sock = _Socket(ws, ticket)
        self._sockets.append(sock)
        self.socket_connections_opened += 1
        hello = {
            "type": "hello",
            "num_connections": self.socket_connections,
            "debug_info": {"host": "fake-applink", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        await self._notify()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    ack = json.loads(msg.data)
                except json.JSONDecodeError:
                    ack = {"raw": msg.data}
                envelope_id = str(ack.get("envelope_id", ""))
                await self._record(
                    Call(
                        seq=next(self._seq),
                        method=SOCKET_ACK,
                        params=frozen(ack),
                        headers=MappingProxyType({}),
                        token=None,
                        body=msg.data.encode(),
                        status=200,
                        response=MappingProxyType({"ok": True}),
                    )
                )
                waiter = sock.acks.pop(envelope_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(sock)
            for waiter in sock.acks.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("socket closed before the ack"))
            await self._notify()
        return ws

    async def wait_socket_connected(
        self, count: int = 1, *, opened: int = 0, timeout: float = 5.0
    ) -> None:
        """Until `count` connections are open and `opened` were accepted in all."""
        await self.wait_for(
            lambda _: self.socket_connections >= count and self.socket_connections_opened >= opened,
            timeout,
        )

    async def socket_send(
        self, envelope: JsonDict, *, timeout: float = 5.0, connection: int | None = None
    ) -> JsonDict:
        """Deliver an envelope on the newest connection (``connection``: the n-th open one,
        oldest first, as Slack spreads an app's envelopes over its connections) and return
        the app's ack for it."""
        await self.wait_socket_connected(count=(connection or 0) + 1, timeout=timeout)
        open_now = [s for s in self._sockets if not s.ws.closed]
        sock = open_now[-1] if connection is None else open_now[connection]
        envelope_id = str(envelope["envelope_id"])
        waiter: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        sock.acks[envelope_id] = waiter
        await sock.ws.send_str(json.dumps(envelope))
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            sock.acks.pop(envelope_id, None)
            message = f"fake Slack: no ack for envelope {envelope_id} in {timeout}s"
            raise AssertionError(message) from None

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the connected clients to reconnect, as Slack does every few hours."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        for sock in list(self._sockets):
            if not sock.ws.closed:
                await sock.ws.send_str(json.dumps(message))


__all__ = ["RESPONSE_URL", "SOCKET_ACK", "UPLOAD", "Call", "FakeSlack", "Fault"]
