"""Gateway event payloads the tests inject, in the exact shapes Discord sends them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from .model import (
    DEFAULT_FILESIZE_LIMIT,
    JSON,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeUser,
    Snowflakes,
    iso_now,
)

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents)
GUILDS = 1 << 0
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15

# Interaction types and option types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5
OPTION_SUBCOMMAND = 1
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_NUMBER = 10


def intent_allows(intents: int, event: str, data: JSON, bot_id: int) -> JSON | None:
    """``data`` as a client with ``intents`` receives it, or None when it would not."""
    in_guild = "guild_id" in data and data["guild_id"] is not None
    need = 0
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"):
        need = GUILD_MESSAGES if in_guild else DIRECT_MESSAGES
    elif event.startswith("MESSAGE_REACTION_"):
        need = GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS
    elif event.startswith(("THREAD_", "CHANNEL_", "GUILD_ROLE_")) or event in (
        "GUILD_CREATE",
        "GUILD_UPDATE",
        "GUILD_DELETE",
    ):
        need = GUILDS
    if need and not intents & need:
        return None
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & MESSAGE_CONTENT:
        own = data.get("author", {}).get("id") == str(bot_id)
        mentioned = any(m.get("id") == str(bot_id) for m in data.get("mentions", []))
        if not (own or mentioned or not in_guild):
            blank = {"content": "", "embeds": [], "attachments": [], "components": []}
            return {**data, **blank}
    return data


def parse_emoji(text: str) -> JSON:
    """``👍`` or ``name:id`` (a custom emoji) as Discord's emoji object."""
    if ":" in text:
        name, _, emoji_id = text.rpartition(":")
        return {"id": emoji_id, "name": name, "animated": False}
    return {"id": None, "name": text}


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    if isinstance(value, FakeUser):
        return OPTION_USER
    return OPTION_STRING


class EventBuilders:
    """Payload builders mixed into FakeDiscord; they read (and register in) its world."""

    application_id: int
    bot: FakeUser
    owner: FakeUser
    users: dict[int, FakeUser]
    guilds: dict[int, FakeGuild]
    guild: FakeGuild | None
    messages: dict[int, JSON]
    interactions: dict[int, FakeInteraction]
    global_commands: list[JSON]
    guild_commands: dict[int, list[JSON]]
    snowflake: Snowflakes

    def channel(self, channel_id: int) -> FakeChannel:
        raise NotImplementedError

    # -- where an event happens

    def _where(
        self, channel: FakeChannel | int | None, user: FakeUser | None
    ) -> tuple[FakeChannel, FakeGuild | None, FakeUser]:
        if channel is None:
            if self.guild is None:
                raise ValueError("no default guild: pass channel=")
            found = next(c for c in self.guild.channels.values() if not c.is_thread)
        else:
            found = self.channel(channel if isinstance(channel, int) else channel.id)
        guild = self.guilds.get(found.guild_id) if found.guild_id else None
        return found, guild, user or self.owner

    def _member(self, guild: FakeGuild, user: FakeUser) -> JSON:
        member = guild.members.get(user.id)
        if member is None:
            member = guild.add_member(user)
        return member.payload(with_user=False)

    # -- interactions

    def _interaction(
        self,
        kind: int,
        data: JSON,
        channel: FakeChannel | int | None,
        user: FakeUser | None,
        message: JSON | None = None,
    ) -> JSON:
        where, guild, who = self._where(channel, user)
        inter = FakeInteraction(
            self.snowflake(), "fake-itoken-" + secrets.token_urlsafe(24), kind, where.id,
            guild.id if guild else None, who,
            message_id=int(message["id"]) if message else None,
        )  # fmt: skip
        self.interactions[inter.id] = inter
        payload: JSON = {
            "id": str(inter.id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": inter.token,
            "version": 1,
            "data": data,
            "channel_id": str(where.id),
            "channel": where.payload(),
            "locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": guild.filesize_limit if guild else DEFAULT_FILESIZE_LIMIT,
        }
        if guild is not None:
            self._member(guild, who)
            member = guild.members[who.id]
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=member.payload(permissions=guild.permissions_for(who.id)),
                app_permissions=str(guild.permissions_for(self.bot.id)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            payload.update(
                user=who.payload(),
                app_permissions="0",
                authorizing_integration_owners={"1": str(who.id)},
                context=1,
            )
        if message is not None:
            payload["message"] = message
        return payload

    def _command(self, name: str, guild: FakeGuild | None) -> JSON | None:
        candidates = (self.guild_commands.get(guild.id, []) if guild else []) + self.global_commands
        return next((c for c in candidates if c["name"] == name and c.get("type", 1) == 1), None)

    def _options(
        self, values: Mapping[str, Any], declared: list[JSON], focused: str | None
    ) -> tuple[list[JSON], JSON]:
        types = {o["name"]: o["type"] for o in declared}
        options: list[JSON] = []
        resolved: JSON = {}
        for name, value in values.items():
            kind = types.get(name, _option_type(value))
            option: JSON = {"name": name, "type": kind, "value": value}
            if isinstance(value, FakeUser):
                option["value"] = str(value.id)
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
                if self.guild is not None and value.id in self.guild.members:
                    member = self.guild.members[value.id].payload(with_user=False)
                    resolved.setdefault("members", {})[str(value.id)] = member
            if name == focused:
                option["focused"] = True
                option["value"] = str(value)
            options.append(option)
        return options, resolved

    def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        user: FakeUser | None = None,
        channel: FakeChannel | int | None = None,
        focused: str | None = None,
    ) -> JSON:
        """INTERACTION_CREATE data for ``/name [subcommand] option:value ...``.

        Option types come from the synced command JSON when the bot synced it (so
        ``choices`` and integers arrive typed as Discord sends them); otherwise from the
        Python values. ``focused`` names the option being typed: an autocomplete request.
        """
        where, guild, _ = self._where(channel, user)
        command = self._command(name, guild)
        declared: list[JSON] = command.get("options", []) if command else []
        if subcommand is not None:
            sub = next((o for o in declared if o["name"] == subcommand), None)
            declared = sub.get("options", []) if sub else []
        values, resolved = self._options(options or {}, declared, focused)
        if subcommand is not None:
            values = [{"name": subcommand, "type": OPTION_SUBCOMMAND, "options": values}]
        data: JSON = {
            "id": command["id"] if command else str(self.snowflake()),
            "name": name,
            "type": 1,
            "options": values,
        }
        if command is not None and "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        kind = AUTOCOMPLETE if focused else APPLICATION_COMMAND
        return self._interaction(kind, data, where, user)

    def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        **where: Any,
    ) -> JSON:
        return self.slash_command(name, options, focused=focused, **where)

    def button_press(
        self,
        message: JSON | int,
        custom_id: str,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
        user: FakeUser | None = None,
    ) -> JSON:
        """A component interaction (button by default; pass ``values`` for a select)."""
        stored = self.messages[message] if isinstance(message, int) else message
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        channel = int(stored["channel_id"])
        return self._interaction(MESSAGE_COMPONENT, data, channel, user, message=stored)

    def modal_submit(
        self,
        custom_id: str,
        values: Mapping[str, str],
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | int | None = None,
    ) -> JSON:
        """A modal submit: ``values`` maps each text input's custom_id to what was typed."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
            for key, value in values.items()
        ]
        data: JSON = {"custom_id": custom_id, "components": rows}
        return self._interaction(MODAL_SUBMIT, data, channel, user)

    # -- messages and reactions

    def message(
        self,
        content: str,
        *,
        author: FakeUser | None = None,
        channel: FakeChannel | int | None = None,
        reply_to: JSON | int | None = None,
    ) -> JSON:
        """MESSAGE_CREATE data for a user's message; mentions are parsed from ``<@id>``.

        The message is stored in the fake, so the bot can fetch, reply to or react to it.
        """
        where, guild, who = self._where(channel, author)
        mentions = []
        for raw in dict.fromkeys(re.findall(r"<@!?(\d+)>", content)):
            mentioned = self.users.get(int(raw))
            if mentioned is None:
                continue
            entry = mentioned.payload()
            if guild is not None and mentioned.id in guild.members:
                entry["member"] = guild.members[mentioned.id].payload(with_user=False)
            mentions.append(entry)
        data: JSON = {
            "id": str(self.snowflake()),
            "channel_id": str(where.id),
            "author": who.payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": "@everyone" in content,
            "mentions": mentions,
            "mention_roles": re.findall(r"<@&(\d+)>", content),
            "attachments": [],
            "embeds": [],
            "components": [],
            "reactions": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
            data["member"] = self._member(guild, who)
        if reply_to is not None:
            referenced = self.messages[reply_to] if isinstance(reply_to, int) else reply_to
            data["type"] = 19
            data["message_reference"] = {
                "type": 0,
                "message_id": referenced["id"],
                "channel_id": referenced["channel_id"],
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            data["referenced_message"] = referenced
        self.messages[int(data["id"])] = data
        return data

    def reaction(
        self, message: JSON | int, emoji: str | JSON = "👍", user: FakeUser | None = None
    ) -> JSON:
        """MESSAGE_REACTION_ADD data: ``user`` (the owner by default) reacts to ``message``."""
        stored = self.messages[message] if isinstance(message, int) else message
        who = user or self.owner
        data: JSON = {
            "user_id": str(who.id),
            "channel_id": stored["channel_id"],
            "message_id": stored["id"],
            "emoji": parse_emoji(emoji) if isinstance(emoji, str) else emoji,
            "type": 0,
            "burst": False,
            "burst_colors": [],
            "message_author_id": stored["author"]["id"],
        }
        guild = self.guilds.get(int(stored["guild_id"])) if stored.get("guild_id") else None
        if guild is not None:
            data["guild_id"] = str(guild.id)
            data["member"] = {**self._member(guild, who), "user": who.payload()}
        return data
