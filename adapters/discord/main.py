"""``tmbot discord``: the composition for Discord (runtime + client) and the invite URL.

Environment: ``DISCORD_TOKEN`` (required), ``DISCORD_API_URL`` (REST base URL, e.g. a local
fake; the gateway URL then comes from ``GET /gateway/bot``), ``DISCORD_GUILD_ID`` (sync the
commands to one guild, instantly, while testing), ``DISCORD_MESSAGE_CONTENT=1`` (the bot
asks for the privileged Message Content intent: request channels and refinements without a
mention need it), ``DISCORD_CLIENT_ID`` (for ``invite-url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import discord
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters import runner
from adapters.discord import PLATFORM
from adapters.discord.bot import TasteBot
from tmbot import ConfigError, Engine
from tmbot.config import Config
from tmbot.doctor import Finding
from tmbot.redact import RedactingFilter
from tmbot.shards import ShardKeeper
from tmbot.shutdown import Stopper

log = logging.getLogger(__name__)

#: exactly what the code uses: see the README's Discord section for why each is needed
PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the channels it answers in
    send_messages=True,  # request cards, replies
    send_messages_in_threads=True,  # images, failures, follow-up cards in result threads
    create_public_threads=True,  # a thread from each card or brief message
    embed_links=True,  # the request card is an embed
    attach_files=True,  # the image as a file
    read_message_history=True,  # replying to a brief message
)
SCOPES = ("bot", "applications.commands")
#: Discord allows ``max_concurrency`` IDENTIFYs per this many seconds
IDENTIFY_WINDOW = 5.0


def invite_url(client_id: str) -> str:
    if not client_id.strip().isdigit():
        raise ConfigError(
            "The application id is needed for the invite URL: pass --client-id or set "
            "DISCORD_CLIENT_ID (Developer Portal → your application → Application ID)."
        )
    return discord.utils.oauth_url(int(client_id), permissions=PERMISSIONS, scopes=SCOPES)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _guild_id(env: Mapping[str, str]) -> int | None:
    raw = env.get("DISCORD_GUILD_ID", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ConfigError("DISCORD_GUILD_ID must be a guild's numeric id.")
    return int(raw)


def make_bot(env: Mapping[str, str], **options: Any) -> TasteBot:
    return TasteBot(
        guild_id=_guild_id(env), message_content=_flag(env, "DISCORD_MESSAGE_CONTENT"), **options
    )


def configured(env: Mapping[str, str]) -> bool:
    return bool(env.get("DISCORD_TOKEN", "").strip())


def _token(env: Mapping[str, str]) -> str:
    token = env.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN is not set: copy the bot token from the Developer Portal "
            "(your application → Bot → Reset Token) into DISCORD_TOKEN."
        )
    return token


def _shards(env: Mapping[str, str]) -> int | None:
    """``TMBOT_DISCORD_SHARDS``: the shard count (default 1), None for ``auto``."""
    raw = env.get("TMBOT_DISCORD_SHARDS", "").strip().lower() or "1"
    if raw == "auto":
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            "TMBOT_DISCORD_SHARDS must be a whole number of gateway shards (1 or more), or "
            "auto for the count Discord recommends."
        )
    return int(raw)


def _api_url(env: Mapping[str, str]) -> str:
    return env.get("DISCORD_API_URL", "").strip().rstrip("/")


class DiscordAdapter:
    """The discord.py clients for :func:`adapters.runner.serve`: logs in, connects the
    gateway (or this process's share of the shards) in tasks it owns, is ready once Discord
    says READY on each; stopping closes the gateway (no new events) while REST stays open
    for the work finishing in the grace period."""

    platform = PLATFORM

    def __init__(self, env: Mapping[str, str], *, redactor: RedactingFilter | None) -> None:
        self.token = _token(env)
        if redactor is not None:
            redactor.register(self.token)
        self.env = dict(env)
        self.shards = _shards(env)
        self.api_url = _api_url(env)
        if self.api_url:
            Route.BASE = self.api_url  # discord.py keeps it in a class attribute: before login
        # discord.py logs whole gateway payloads and request bodies at DEBUG: a key typed
        # into the form would be among them before the redactor has learnt it
        for name in ("discord.gateway", "discord.http", "discord.client", "discord.state"):
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
        self.bot = make_bot(env)
        self.notifier = self.bot.notifier
        self._engine: Engine | None = None
        self._gateway: asyncio.Task[None] | None = None
        self._keeper: ShardKeeper | None = None
        self._count = 1
        self._identify_lock = asyncio.Lock()
        self._identify_gap = IDENTIFY_WINDOW
        self._last_identify = -IDENTIFY_WINDOW
        #: shard -> its client and the task running its gateway
        self._shard_clients: dict[int, tuple[TasteBot, asyncio.Task[None]]] = {}
        self._broken = asyncio.Event()  # a shard's gateway ended by itself
        self._stopping = False
        self._client = contextlib.AsyncExitStack()  # the client's own async context

    def attach(self, engine: Engine, stopping: Callable[[], bool]) -> None:
        self._engine = engine
        self.bot.use(engine)

    def web_app(self) -> web.Application | None:
        return None

    async def start(self) -> str:
        bot = self.bot
        await self._client.enter_async_context(bot)
        try:
            await bot.login(self.token)
        except discord.LoginFailure:
            raise ConfigError(
                "Discord refused DISCORD_TOKEN: copy the bot token again from the "
                "Developer Portal (your application → Bot)."
            ) from None
        engine = self._engine
        if engine is None:
            raise RuntimeError("DiscordAdapter.attach(engine) was not called")
        count = self.shards
        if self.api_url or count != 1 or not engine.coordinator.sole:
            recommended, url, limit = await bot.http.get_bot_gateway()
            if self.api_url:
                DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            count = count or max(1, int(recommended))
            self._identify_gap = IDENTIFY_WINDOW / max(1, int(limit["max_concurrency"]))
        self._count = count
        if engine.coordinator.sole and count == 1:
            return await self._start_gateway()
        self._keeper = ShardKeeper(
            engine.coordinator,
            group=PLATFORM,
            count=count,
            connect=self._connect_shard,
            disconnect=self._disconnect_shard,
        )
        await self._keeper.step()  # this process's share as the store sees it now
        self._keeper.start()
        held = sorted(self._keeper.held)
        if not held:
            return f"REST only: the {count} shard{'s' if count > 1 else ''} held elsewhere"
        return f"gateway: shard {', '.join(map(str, held))} of {count}"

    async def _start_gateway(self) -> str:
        bot = self.bot
        self._gateway = asyncio.create_task(bot.connect(), name="discord-gateway")
        ready = asyncio.ensure_future(bot.wait_until_ready())
        try:
            await asyncio.wait({ready, self._gateway}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._gateway.done():
            self._refused(self._gateway)
            raise ConfigError("Discord's gateway closed before the bot was ready.")
        return "gateway"

    async def _connect_shard(self, shard: int) -> None:
        """A client for ``shard`` alone; returns once Discord said READY on it."""
        client = make_bot(
            self.env,
            shard_id=shard,
            shard_count=self._count,
            sync_commands=False,
            identify_turn=self._identify_turn,
        )
        if self._engine is not None:
            client.use(self._engine)
        try:
            await client.login(self.token)
        except BaseException:
            await client.close()
            raise
        task = asyncio.create_task(client.connect(), name=f"discord-shard-{shard}")
        ready = asyncio.ensure_future(client.wait_until_ready())
        try:
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if task.done():
            await client.close()
            self._refused(task)
            raise ConfigError(f"Discord's gateway closed shard {shard} before it was ready.")
        self._shard_clients[shard] = (client, task)
        task.add_done_callback(functools.partial(self._ended, shard, client))
        print(f"tmbot: discord shard {shard} of {self._count} connected", flush=True)

    async def _identify_turn(self) -> None:
        """Space this process's IDENTIFYs by 5 s / ``max_concurrency`` (Discord's limit; an
        IDENTIFY too soon is answered INVALID_SESSION and retried by discord.py 5 s later)."""
        async with self._identify_lock:
            loop = asyncio.get_running_loop()
            wait = self._last_identify + self._identify_gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_identify = loop.time()

    def _ended(self, shard: int, client: TasteBot, _task: object) -> None:
        held = self._shard_clients.get(shard)
        if held is not None and held[0] is client and not self._stopping:
            log.error("the gateway connection of Discord shard %d ended", shard)
            self._broken.set()

    async def _disconnect_shard(self, shard: int) -> None:
        held = self._shard_clients.pop(shard, None)
        if held is None:
            return
        client, task = held
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        print(f"tmbot: discord shard {shard} of {self._count} disconnected", flush=True)

    @staticmethod
    def _refused(task: asyncio.Task[None]) -> None:
        error = task.exception() if not task.cancelled() else None
        if isinstance(error, discord.PrivilegedIntentsRequired):
            raise ConfigError(
                "DISCORD_MESSAGE_CONTENT is on but the Message Content intent is not "
                "switched on for the application (Developer Portal → Bot → Privileged "
                "Gateway Intents)."
            ) from None
        if error is not None:
            raise ConfigError(
                f"Discord's gateway could not be reached ({type(error).__name__})."
            ) from None

    async def connected(self) -> bool:
        if self._stopping:
            return False
        if self._keeper is not None:  # REST is up; every shard held here said READY
            return not self.bot.is_closed() and all(
                client.is_ready() and client.ws is not None and client.ws.open
                for client, _ in self._shard_clients.values()
            )
        ws = self.bot.ws
        return self.bot.is_ready() and not self.bot.is_closed() and ws is not None and ws.open

    @property
    def held_shards(self) -> list[int]:
        return sorted(self._shard_clients)

    async def stop_taking(self) -> None:
        """Close the gateway (no new interactions or messages) and give the shards up
        (another process takes them at once); REST stays open so the notifier can still
        post what finishes in the grace period."""
        self._stopping = True
        if self._keeper is not None:
            await self._keeper.close()
        if self._gateway is not None and not self._gateway.done():
            self._gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._gateway
        ws = self.bot.ws
        if ws is not None and ws.open:
            await ws.close(code=1000)

    async def failed(self) -> None:
        if self._keeper is not None:
            await self._broken.wait()
            return
        if self._gateway is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._gateway)

    async def close(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            with contextlib.suppress(Exception):
                await self._keeper.close()
        for shard in list(self._shard_clients):
            await self._disconnect_shard(shard)
        if self._gateway is not None and not self._gateway.done():
            self._gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._gateway
        await self.bot.close()
        await self._client.aclose()


async def serve(
    config: Config,
    env: Mapping[str, str],
    redactor: RedactingFilter,
    *,
    health_port: int | None = None,
    host: str = "127.0.0.1",
) -> int:
    """``tmbot discord``: run the bot until SIGTERM or Ctrl-C."""
    stopper = Stopper()
    stopper.install()
    return await runner.serve(
        config,
        [DiscordAdapter(env, redactor=redactor)],
        redactor=redactor,
        name="discord",
        host=host,
        port=health_port,
        stopper=stopper,
    )


async def doctor_check(env: Mapping[str, str]) -> Finding:
    """The token against Discord (``GET /users/@me`` through discord.py's HTTP client, at
    ``DISCORD_API_URL`` when set); never prints the token."""
    api_url = _api_url(env)
    saved = Route.BASE
    if api_url:
        Route.BASE = api_url
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        me = await http.static_login(env.get("DISCORD_TOKEN", "").strip())
    except discord.LoginFailure:
        return Finding(
            "Discord auth",
            False,
            "Discord refused DISCORD_TOKEN (401)",
            "copy the bot token again from the Developer Portal (your application → Bot → "
            "Reset Token) into DISCORD_TOKEN",
        )
    except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
        return Finding(
            "Discord auth",
            False,
            f"Discord cannot be reached ({type(exc).__name__})",
            "check the network, or DISCORD_API_URL",
        )
    finally:
        await http.close()
        Route.BASE = saved
    return Finding("Discord auth", True, f"valid for the bot {me.get('username', '?')}")
