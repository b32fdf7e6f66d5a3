"""``tmbot discord``: the composition for Discord (runtime + client) and the invite URL.

Environment: ``DISCORD_TOKEN`` (required), ``DISCORD_API_URL`` (REST base URL, e.g. a local
fake; the gateway URL then comes from ``GET /gateway/bot``), ``DISCORD_GUILD_ID`` (sync the
commands to one guild, instantly, while testing), ``DISCORD_MESSAGE_CONTENT=1`` (the bot
asks for the privileged Message Content intent: request channels and refinements without a
mention need it), ``DISCORD_CLIENT_ID`` (for ``invite-url``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import PLATFORM
from adapters.discord.bot import TasteBot
from tmbot import ConfigError
from tmbot.config import Config
from tmbot.redact import RedactingFilter
from tmbot.runtime import open_runtime

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


def make_bot(env: Mapping[str, str], **options: object) -> TasteBot:
    return TasteBot(
        guild_id=_guild_id(env), message_content=_flag(env, "DISCORD_MESSAGE_CONTENT"), **options
    )


async def serve(config: Config, env: Mapping[str, str], redactor: RedactingFilter) -> int:
    """Run the bot until it is closed (Ctrl-C, SIGTERM)."""
    token = env.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN is not set: copy the bot token from the Developer Portal "
            "(your application → Bot → Reset Token) into DISCORD_TOKEN."
        )
    api_url = env.get("DISCORD_API_URL", "").strip().rstrip("/")
    if api_url:
        Route.BASE = api_url  # discord.py keeps it in a class attribute: set before login
    # discord.py logs whole gateway payloads and request bodies at DEBUG: a key typed into
    # the form would be among them before the redactor has learnt it
    for name in ("discord.gateway", "discord.http", "discord.client", "discord.state"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    bot = make_bot(env)
    async with open_runtime(config, {PLATFORM: bot.notifier}, redactor=redactor) as runtime:
        bot.use(runtime.engine)
        async with bot:
            try:
                await bot.login(token)
            except discord.LoginFailure:
                raise ConfigError(
                    "Discord refused DISCORD_TOKEN: copy the bot token again from the "
                    "Developer Portal (your application → Bot)."
                ) from None
            if api_url:
                _, url, _ = await bot.http.get_bot_gateway()
                DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            try:
                await bot.connect()
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "DISCORD_MESSAGE_CONTENT is on but the Message Content intent is not "
                    "switched on for the application (Developer Portal → Bot → Privileged "
                    "Gateway Intents)."
                ) from None
    return 0
