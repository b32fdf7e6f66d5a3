"""The in-memory world of the fake Discord: users, guilds, channels and the recorded calls.

Everything here is plain data plus the JSON shapes Discord sends for it. The shapes were
checked by having the real discord.py parse them (tests/test_fake_discord.py).
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024  # 10 MiB, Discord's limit for unboosted guilds

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types)
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12

# Permission bits the fake checks or hands out by default.
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 51) - 1

EVERYONE_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)


class Snowflakes:
    """Increasing snowflake ids built from the wall clock, as Discord makes them."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            now = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17)
            self._last = max(self._last + 1, now)
            return self._last


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class FakeMember:
    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeChannel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    position: int = 0
    topic: str | None = None
    recipients: list[FakeUser] = field(default_factory=list)
    archived: bool = False
    auto_archive_duration: int = 1440

    @property
    def is_thread(self) -> bool:
        return self.type in (PUBLIC_THREAD, PRIVATE_THREAD, 10)

    def payload(self) -> JSON:
        data: JSON = {"id": str(self.id), "type": self.type, "last_message_id": None, "flags": 0}
        if self.type == DM:
            data["recipients"] = [u.payload() for u in self.recipients]
            return data
        data.update(
            name=self.name,
            guild_id=str(self.guild_id) if self.guild_id else None,
            parent_id=str(self.parent_id) if self.parent_id else None,
            nsfw=False,
            rate_limit_per_user=0,
        )
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id) if self.owner_id else None,
                member_count=1,
                message_count=0,
                total_message_sent=0,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": iso_now(),
                    "locked": False,
                    "create_timestamp": iso_now(),
                },
            )
        else:
            data.update(position=self.position, topic=self.topic, permission_overwrites=[])
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    snowflake: Snowflakes
    premium_tier: int = 0
    filesize_limit: int = DEFAULT_FILESIZE_LIMIT
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]  # @everyone shares the guild's id

    def add_role(self, name: str, permissions: int) -> FakeRole:
        role = FakeRole(self.snowflake(), name, permissions, position=len(self.roles))
        self.roles[role.id] = role
        return role

    def add_member(self, user: FakeUser, roles: list[FakeRole] | None = None) -> FakeMember:
        member = FakeMember(user, [r.id for r in roles or []])
        self.members[user.id] = member
        return member

    def add_text_channel(self, name: str, *, topic: str | None = None) -> FakeChannel:
        channel = FakeChannel(
            self.snowflake(), GUILD_TEXT, name, self.id, position=len(self.channels), topic=topic
        )
        self.channels[channel.id] = channel
        return channel

    def text_channel(self, name: str) -> FakeChannel:
        for channel in self.channels.values():
            if channel.name == name and not channel.is_thread:
                return channel
        raise KeyError(name)

    def permissions_for(self, user_id: int) -> int:
        """Guild-level permissions (no channel overwrites are modelled)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        if member is None:
            return 0
        value = self.everyone.permissions
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def payload(self) -> JSON:
        """The full GUILD_CREATE payload."""
        return {
            "id": str(self.id),
            "name": self.name,
            "owner_id": str(self.owner_id),
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "afk_timeout": 300,
            "afk_channel_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "preferred_locale": "en-US",
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "vanity_url_code": None,
            "application_id": None,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),  # equal to len(members): no chunking needed
            "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload() for c in self.channels.values() if not c.is_thread],
            "threads": [c.payload() for c in self.channels.values() if c.is_thread],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": iso_now(),
            "max_members": 500000,
        }


@dataclass(frozen=True)
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    field: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Call:
    """One REST request the fake received, in arrival order.

    ``route`` is the template (``/channels/{channel_id}/messages``), ``path`` the concrete
    path, both without the ``/api/v10`` prefix. ``json`` is the JSON body, or for multipart
    requests the decoded ``payload_json`` part. Headers exclude ``Authorization``.
    """

    seq: int
    method: str
    route: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    json: Any
    files: tuple[UploadedFile, ...]
    status: int

    @property
    def audit_log_reason(self) -> str | None:
        from urllib.parse import unquote

        value = self.headers.get("X-Audit-Log-Reason")
        return None if value is None else unquote(value)

    def matches(self, method: str, route: str) -> bool:
        return self.method == method and self.route == route


def frozen_mapping(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


@dataclass
class FakeInteraction:
    """What the fake remembers about an interaction it handed to the bot."""

    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    user: FakeUser
    message_id: int | None = None  # the message a component sits on
    original_message_id: int | None = None
    responded: int | None = None  # the callback type, once answered
    callbacks: list[JSON] = field(default_factory=list)


@dataclass
class Fault:
    method: str | None
    route: str
    status: int
    body: JSON
    headers: dict[str, str]
