"""The fake workspace: users, channels, messages, threads, files and views, in memory.

Everything here is plain mutable state owned by one `FakeSlack`; the Web API handlers in
`webapi.py` read and change it, and tests read it to assert what a channel or thread holds.
"""

from __future__ import annotations

import itertools
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0FAKE000"
TEAM_DOMAIN = "fake"
TEAM_NAME = "Fake Workspace"
APP_ID = "A0FAKE000"
BOT_USER_ID = "U0BOT0000"
BOT_ID = "B0BOT0000"
BOT_NAME = "tmbot"
ENTERPRISE_ID: str | None = None
GENERAL = "C0GENERAL"

JsonDict = dict[str, Any]


class SlackError(Exception):
    """A Web API method refused: answered as `{"ok": false, "error": error}` (HTTP 200)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class User:
    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False
    real_name: str = ""
    deleted: bool = False

    def to_api(self) -> JsonDict:
        real_name = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": real_name,
            "tz": "Europe/Amsterdam",
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {"real_name": real_name, "display_name": self.name, "team": TEAM_ID},
        }


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    bot_is_member: bool = True
    members: set[str] = field(default_factory=set)
    archived: bool = False

    def to_api(self) -> JsonDict:
        if self.is_im:
            user = next(iter(self.members - {BOT_USER_ID}), "")
            return {"id": self.id, "is_im": True, "user": user, "is_open": True}
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.archived,
            "is_general": self.id == GENERAL,
            "is_member": self.bot_is_member,
            "context_team_id": TEAM_ID,
            "num_members": len(self.members | ({BOT_USER_ID} if self.bot_is_member else set())),
        }


@dataclass
class Message:
    channel: str
    ts: str
    text: str = ""
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    blocks: list[JsonDict] | None = None
    thread_ts: str | None = None
    files: list[str] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    subtype: str | None = None
    edited_ts: str | None = None
    deleted: bool = False
    metadata: JsonDict | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self) -> JsonDict:
        out: JsonDict = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts}
        if self.subtype:
            out["subtype"] = self.subtype
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = APP_ID
            out["bot_profile"] = {"id": self.bot_id, "app_id": APP_ID, "name": BOT_NAME}
        out["team"] = TEAM_ID
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = [{"id": f} for f in self.files]
            out["upload"] = False
        if self.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        if self.edited_ts:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    """An ephemeral message: seen by one user only, never stored in the channel."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[JsonDict] | None
    thread_ts: str | None


@dataclass
class Share:
    channel: str
    ts: str
    thread_ts: str | None


@dataclass
class File:
    id: str
    filename: str
    length: int
    title: str = ""
    alt_txt: str | None = None
    user: str = BOT_USER_ID
    created: int = 1_700_000_000
    data: bytes | None = None
    completed: bool = False
    deleted: bool = False
    shares: list[Share] = field(default_factory=list)
    info_calls: int = 0

    @property
    def mimetype(self) -> str:
        return mimetypes.guess_type(self.filename)[0] or "application/octet-stream"

    def to_api(self, *, with_shares: bool) -> JsonDict:
        ext = self.filename.rsplit(".", 1)[-1].lower() if "." in self.filename else ""
        out: JsonDict = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.filename,
            "title": self.title or self.filename,
            "mimetype": self.mimetype,
            "filetype": ext,
            "pretty_type": ext.upper(),
            "user": self.user,
            "user_team": TEAM_ID,
            "editable": False,
            "size": len(self.data) if self.data is not None else self.length,
            "mode": "hosted",
            "is_external": False,
            "is_public": False,
            "display_as_bot": False,
            "url_private": f"https://files.fake.slack/files-pri/{TEAM_ID}-{self.id}/{self.filename}",
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{self.user}/{self.id}/{self.filename}",
        }
        if self.alt_txt:
            out["alt_txt"] = self.alt_txt
        if with_shares:
            public: dict[str, list[JsonDict]] = {}
            for share in self.shares:
                entry: JsonDict = {
                    "reply_users": [],
                    "reply_users_count": 0,
                    "reply_count": 0,
                    "ts": share.ts,
                    "channel_name": share.channel,
                    "team_id": TEAM_ID,
                    "share_user_id": self.user,
                    "source": "UNKNOWN",
                }
                if share.thread_ts is not None:
                    entry["thread_ts"] = share.thread_ts
                public.setdefault(share.channel, []).append(entry)
            out["shares"] = {"public": public} if public else {}
            out["channels"] = sorted(public)
            out["groups"] = []
            out["ims"] = []
        return out


@dataclass
class View:
    id: str
    view: JsonDict
    trigger_id: str | None
    hash: str
    external_id: str | None = None

    def to_api(self) -> JsonDict:
        out: JsonDict = {
            "id": self.id,
            "team_id": TEAM_ID,
            "type": self.view.get("type", "modal"),
            "blocks": self.view.get("blocks", []),
            "private_metadata": self.view.get("private_metadata", ""),
            "callback_id": self.view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.hash,
            "title": self.view.get("title"),
            "submit": self.view.get("submit"),
            "close": self.view.get("close"),
            "external_id": self.external_id or "",
            "root_view_id": self.id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        }
        return out


class Clock:
    """Slack-style timestamps: strings like "1700000000.000100", strictly increasing."""

    def __init__(self, start: int = 1_700_000_000) -> None:
        self._start = start
        self._counter = itertools.count(100, 100)

    def next_ts(self) -> str:
        n = next(self._counter)
        return f"{self._start + n // 1_000_000}.{n % 1_000_000:06d}"


class Workspace:
    """All state of one fake workspace."""

    def __init__(self, *, strict_threads: bool = False) -> None:
        self.strict_threads = strict_threads
        self.clock = Clock()
        self._ids = itertools.count(1)
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, File] = {}
        self.views: dict[str, View] = {}
        self.add_user(BOT_USER_ID, BOT_NAME, is_bot=True)
        self.add_channel(GENERAL, "general")

    def new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08d}"

    def add_user(self, user_id: str, name: str, **flags: Any) -> User:
        user = User(user_id, name, **flags)
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str, **flags: Any) -> Channel:
        channel = Channel(channel_id, name, **flags)
        self.channels[channel_id] = channel
        return channel

    def user(self, user_id: str | None) -> User:
        if not user_id or user_id not in self.users:
            raise SlackError("user_not_found")
        return self.users[user_id]

    def channel(self, channel_id: str | None) -> Channel:
        """The channel a post goes to; a user id opens (or reuses) the bot's DM with them."""
        if not channel_id:
            raise SlackError("channel_not_found")
        if channel_id in self.users and channel_id != BOT_USER_ID:
            return self.im_with(channel_id)
        if channel_id not in self.channels:
            raise SlackError("channel_not_found")
        return self.channels[channel_id]

    def writable_channel(self, channel_id: str | None) -> Channel:
        channel = self.channel(channel_id)
        if channel.archived:
            raise SlackError("is_archived")
        if not channel.bot_is_member:
            raise SlackError("not_in_channel")
        return channel

    def im_with(self, user_id: str) -> Channel:
        for channel in self.channels.values():
            if channel.is_im and user_id in channel.members:
                return channel
        channel = self.add_channel(self.new_id("D"), user_id, is_im=True)
        channel.members = {user_id, BOT_USER_ID}
        return channel

    def message(self, channel_id: str, ts: str | None) -> Message:
        found = self.messages.get((channel_id, ts or ""))
        if found is None or found.deleted:
            raise SlackError("message_not_found")
        return found

    def thread_parent_ts(self, channel_id: str, thread_ts: str | None) -> str | None:
        """Where a reply lands: replying to a reply joins its parent's thread, as Slack does.

        A thread_ts the fake has never seen (a message a test put only in an event payload)
        is taken as given, unless `strict_threads` is set: then it is `thread_not_found`.
        """
        if thread_ts is None or thread_ts == "":
            return None
        parent = self.messages.get((channel_id, thread_ts))
        if parent is None or parent.deleted:
            if self.strict_threads:
                raise SlackError("thread_not_found")
            return thread_ts
        return parent.thread_ts if parent.is_reply else parent.ts

    def post(self, channel_id: str, **fields: Any) -> Message:
        message = Message(channel=channel_id, ts=self.clock.next_ts(), **fields)
        self.messages[(channel_id, message.ts)] = message
        return message

    def history(self, channel_id: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        return [
            m
            for (c, _), m in self.messages.items()
            if c == channel_id and not m.deleted and not m.is_reply
        ]

    def thread(self, channel_id: str, ts: str) -> list[Message]:
        """The parent and its replies, oldest first; only the replies when the fake never saw
        the parent (see `thread_parent_ts`)."""
        parent = self.messages.get((channel_id, ts))
        replies = [
            m
            for (c, _), m in self.messages.items()
            if c == channel_id and not m.deleted and m.is_reply and m.thread_ts == ts
        ]
        if parent is None or parent.deleted:
            return replies
        return [parent, *replies]

    def iter_messages(self) -> Iterator[Message]:
        return (m for m in self.messages.values() if not m.deleted)

    def thread_summary(self, parent: Message) -> JsonDict:
        replies = self.thread(parent.channel, parent.ts)[1:]
        if not replies:
            return parent.to_api()
        out = parent.to_api()
        out["thread_ts"] = parent.ts
        out["reply_count"] = len(replies)
        out["reply_users"] = sorted({r.user for r in replies})
        out["reply_users_count"] = len(out["reply_users"])
        out["latest_reply"] = replies[-1].ts
        return out
