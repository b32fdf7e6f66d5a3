"""The fake's gateway: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, dispatches.

**Shards.** ``shard_count`` (what ``GET /gateway/bot`` recommends) and each IDENTIFY's
``shard: [id, count]`` route events as Discord does: a guild's dispatches (READY's guild
list, GUILD_CREATE, INTERACTION_CREATE, MESSAGE_CREATE, reactions …) go only to the sessions
identified for shard ``(guild_id >> 22) % count``, DMs to shard 0. An IDENTIFY without
``shard`` is shard ``[0, 1]`` (every guild). An IDENTIFY for a shard that a connected session
already holds is refused with close code 4005 and counted in ``shard_conflicts``: real
Discord accepts a second session on one shard (``num_shards`` only routes traffic), but that
is what tmbot's shard leases exist to prevent, so the fake makes it visible. A shard id not
below its count is refused with 4010 (Invalid shard), as Discord does. ``shard_holders()``
says which connected sessions hold which shards.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .events import intent_allows
from .model import JSON, FakeGuild, FakeUser

PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content


@dataclass
class GatewaySession:
    session_id: str
    intents: int
    shard: list[int]
    ws: web.WebSocketResponse | None
    seq: int = 0
    sent: list[JSON] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: bool = False


class Gateway:
    """The gateway half of FakeDiscord (mixed in; the attributes are FakeDiscord's)."""

    token: str
    heartbeat_interval_ms: int
    privileged_intents: int
    application_id: int
    bot: FakeUser
    guilds: dict[int, FakeGuild]
    identifies: list[JSON]
    sessions: dict[str, GatewaySession]
    shard_count: int
    shard_conflicts: list[list[int]]
    identify_times: list[float]
    _changed: asyncio.Condition
    #: cleared: a client's IDENTIFY waits (no READY) until it is set again
    identify_gate: asyncio.Event
    _sockets: set[web.WebSocketResponse]

    @property
    def gateway_url(self) -> str:
        raise NotImplementedError

    def _me(self) -> JSON:
        raise NotImplementedError

    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:
        """Wait until a client has identified and been sent READY and every GUILD_CREATE."""

        def ready() -> GatewaySession | None:
            return next((s for s in self.sessions.values() if s.ready and s.ws), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: ready() is not None)
        session = ready()
        assert session is not None
        return session

    @staticmethod
    def shard_of(guild_id: int | None, count: int) -> int:
        """Discord's sharding formula; DMs are shard 0."""
        return 0 if guild_id is None else (guild_id >> 22) % count

    @staticmethod
    def _guild_id(event: str, data: JSON) -> int | None:
        raw = data.get("id") if event.startswith("GUILD_") and "guild_id" not in data else None
        raw = data.get("guild_id", raw)
        return int(raw) if raw is not None else None

    def _routes_to(self, session: GatewaySession, guild_id: int | None) -> bool:
        shard, count = session.shard
        return self.shard_of(guild_id, count) == shard

    def shard_holders(self) -> dict[int, list[str]]:
        """Shard id -> the connected, ready sessions identified for it (with this fake's
        ``shard_count``)."""
        held: dict[int, list[str]] = {}
        for session in self.sessions.values():
            if session.ready and session.ws is not None and not session.ws.closed:
                held.setdefault(session.shard[0], []).append(session.session_id)
        return held

    def identified_shards(self) -> list[int]:
        """The shard of every IDENTIFY accepted so far, in order."""
        return [int((d.get("shard") or [0, 1])[0]) for d in self.identifies]

    async def wait_shards(
        self, predicate: Callable[[dict[int, list[str]]], bool], timeout: float = 30.0
    ) -> dict[int, list[str]]:
        """Wait until ``predicate(shard_holders())`` holds; the holders then."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.shard_holders()))
        return self.shard_holders()

    async def dispatch(self, event: str, data: JSON, *, raw: bool = False) -> int:
        """Send a DISPATCH to every connected, ready client; returns how many got it.

        Unless ``raw``, Discord's intent rules apply: events the client's intents do not
        cover are dropped, and without MESSAGE_CONTENT a message's content, embeds,
        attachments and components are blanked unless it is a DM, the bot's own
        message, or mentions the bot.
        """
        if not any(s.ready and s.ws for s in self.sessions.values()):
            raise RuntimeError("no client is connected to the fake gateway")
        return await self._emit(event, data, raw=raw)

    async def _emit(self, event: str, data: JSON, *, raw: bool = False) -> int:
        delivered = 0
        guild_id = self._guild_id(event, data)
        for session in list(self.sessions.values()):
            if not (session.ready and session.ws) or not self._routes_to(session, guild_id):
                continue
            payload = data if raw else intent_allows(session.intents, event, data, self.bot.id)
            if payload is None:
                continue
            await self._send_dispatch(session, event, payload)
            delivered += 1
        return delivered

    async def send_op(self, op: int, d: Any = None) -> None:
        """Send a raw opcode (7 RECONNECT, 9 INVALID_SESSION, ...) to every connected client."""
        for session in list(self.sessions.values()):
            if session.ws is not None and not session.ws.closed:
                async with session.lock:
                    await session.ws.send_str(json.dumps({"op": op, "d": d, "s": None, "t": None}))

    async def _send_dispatch(self, session: GatewaySession, event: str, data: JSON) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": 0, "s": session.seq, "t": event, "d": data}
            session.sent.append(frame)
            if session.ws is not None and not session.ws.closed:
                await session.ws.send_str(json.dumps(frame))

    @property
    def gateway_sockets(self) -> int:
        """Gateway websockets open now (identified or not); a change wakes ``_changed``."""
        return len(self._sockets)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        async with self._changed:
            self._changed.notify_all()
        session: GatewaySession | None = None
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake"]}
            await ws.send_str(json.dumps({"op": 10, "d": hello, "s": None, "t": None}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, d = frame.get("op"), frame.get("d")
                if op == 1:
                    await self._send_raw(ws, session, {"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self.identify_gate.wait()
                    gone = request.transport is None or request.transport.is_closing()
                    if ws.closed or gone:  # the client went away while IDENTIFY was held
                        break
                    session = await self._identify(ws, d)
                elif op == 6:
                    session = await self._resume(ws, d)
                elif op == 8 and session is not None:
                    await self._member_chunk(session, d)
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            async with self._changed:
                self._changed.notify_all()
        return ws

    async def _send_raw(
        self, ws: web.WebSocketResponse, session: GatewaySession | None, frame: JSON
    ) -> None:
        if ws.closed:
            return
        if session is None:
            await ws.send_str(json.dumps(frame))
            return
        async with session.lock:
            await ws.send_str(json.dumps(frame))

    async def _identify(self, ws: web.WebSocketResponse, d: JSON) -> GatewaySession | None:
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        if int(d.get("intents", 0)) & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = [int(n) for n in d.get("shard") or [0, 1]]
        if not 0 <= shard[0] < shard[1]:
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        if any(
            other.shard == shard and other.ready and other.ws is not None and not other.ws.closed
            for other in self.sessions.values()
        ):
            self.shard_conflicts.append(shard)
            await ws.close(code=4005, message=b"Shard already connected.")
            return None
        self.identifies.append({k: v for k, v in d.items() if k != "token"})
        self.identify_times.append(time.monotonic())
        session = GatewaySession(secrets.token_hex(16), int(d.get("intents", 0)), shard, ws)
        self.sessions[session.session_id] = session
        ready = {
            "v": 10,
            "user": self._me(),
            "guilds": [
                {"id": str(g), "unavailable": True}
                for g in self.guilds
                if self._routes_to(session, g)
            ],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": shard,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake"],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild in self.guilds.values():
            if self._routes_to(session, guild.id):
                await self._send_dispatch(session, "GUILD_CREATE", guild.payload())
        async with self._changed:
            session.ready = True
            self._changed.notify_all()
        return session

    async def _resume(self, ws: web.WebSocketResponse, d: JSON) -> GatewaySession | None:
        session = self.sessions.get(str(d.get("session_id")))
        if d.get("token") != self.token or session is None:
            await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
            return None
        async with session.lock:
            session.ws = ws
            missed = [f for f in session.sent if f["s"] > int(d.get("seq") or 0)]
            for frame in missed:
                await ws.send_str(json.dumps(frame))
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake"]})
        async with self._changed:
            self._changed.notify_all()
        return session

    async def _member_chunk(self, session: GatewaySession, d: JSON) -> None:
        guild = self.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)
