"""The Web API methods the fake answers, as Slack answers them (shape and error codes).

A handler takes the workspace, the merged request parameters and the server context, and
returns the body of an `ok: true` answer, or raises `SlackError` for an `ok: false` one.
`METHODS` maps a method name ("chat.postMessage") to its handler; a method that is not in
it answers `unknown_method`. Extend by adding a function and an entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import (
    APP_ID,
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    ENTERPRISE_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    Ephemeral,
    File,
    JsonDict,
    Share,
    SlackError,
    View,
    Workspace,
)


class Params:
    """Request parameters from the query string, a form body or a JSON body, merged."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def string(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def required(self, name: str) -> str:
        value = self.string(name)
        if value is None:
            raise SlackError("invalid_arguments", detail=f"missing {name}")
        return value

    def json(self, name: str) -> Any:
        """A structured parameter: JSON in a form field or query string, or already decoded."""
        value = self.values.get(name)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise SlackError(f"invalid_{name}") from error
        return value

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        return value in (True, 1, "1", "true", "True")


@dataclass
class Context:
    base_url: str  # "http://127.0.0.1:PORT" without a trailing slash
    files_info_shares_lag: int  # files.info calls per file that show no shares yet


Handler = Callable[[Workspace, Params, Context], JsonDict]


def _text_and_blocks(p: Params) -> tuple[str, list[JsonDict] | None]:
    text = p.string("text") or ""
    blocks = p.json("blocks")
    attachments = p.json("attachments")
    if not text and not blocks and not attachments:
        raise SlackError("no_text")
    return text, blocks


def auth_test(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": TEAM_NAME,
        "user": BOT_NAME,
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "enterprise_id": ENTERPRISE_ID,
        "is_enterprise_install": False,
    }


def chat_post_message(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.writable_channel(p.string("channel"))
    text, blocks = _text_and_blocks(p)
    thread_ts = ws.thread_parent_ts(channel.id, p.string("thread_ts"))
    message = ws.post(
        channel.id, text=text, blocks=blocks, thread_ts=thread_ts, metadata=p.json("metadata")
    )
    return {"channel": channel.id, "ts": message.ts, "message": message.to_api()}


def chat_update(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    message = ws.message(channel.id, p.string("ts"))
    if message.bot_id != BOT_ID:
        raise SlackError("cant_update_message")
    text = p.string("text")
    blocks = p.json("blocks")
    if text is None and blocks is None and p.json("attachments") is None:
        raise SlackError("no_text")
    if text is not None:
        message.text = text
    if blocks is not None:
        message.blocks = blocks
    message.edited_ts = ws.clock.next_ts()
    return {
        "channel": channel.id,
        "ts": message.ts,
        "text": message.text,
        "message": message.to_api(),
    }


def chat_delete(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    message = ws.message(channel.id, p.string("ts"))
    if message.bot_id != BOT_ID:
        raise SlackError("cant_delete_message")
    message.deleted = True
    return {"channel": channel.id, "ts": message.ts}


def chat_post_ephemeral(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.writable_channel(p.string("channel"))
    user = ws.user(p.string("user"))
    text, blocks = _text_and_blocks(p)
    thread_ts = p.string("thread_ts")
    ephemeral_ts = ws.clock.next_ts()
    ws.ephemerals.append(Ephemeral(channel.id, user.id, ephemeral_ts, text, blocks, thread_ts))
    return {"message_ts": ephemeral_ts}


def chat_get_permalink(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    message = ws.message(channel.id, p.string("message_ts"))
    link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


def files_get_upload_url_external(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    filename = p.required("filename")
    length = p.required("length")
    if not length.isdigit() or int(length) <= 0:
        raise SlackError("invalid_arguments", detail="length")
    file = File(ws.new_id("F"), filename, int(length), alt_txt=p.string("alt_txt"))
    ws.files[file.id] = file
    return {"upload_url": f"{ctx.base_url}/upload/v1/{file.id}", "file_id": file.id}


def files_complete_upload_external(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    entries = p.json("files")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments", detail="files")
    files: list[File] = []
    for entry in entries:
        file = ws.files.get(str(entry.get("id")))
        if file is None or file.deleted or file.completed or file.data is None:
            raise SlackError("file_not_found")
        files.append(file)
    targets = [p.string("channel_id")] if p.string("channel_id") else []
    targets += [c for c in (p.string("channels") or "").split(",") if c]
    thread_ts = p.string("thread_ts")
    if thread_ts is not None and len(targets) != 1:
        raise SlackError("invalid_arguments", detail="thread_ts needs exactly one channel")
    channels = [ws.writable_channel(target) for target in targets]
    parents = [ws.thread_parent_ts(c.id, thread_ts) for c in channels]
    for file, entry in zip(files, entries, strict=True):
        file.completed = True
        file.title = str(entry.get("title") or file.filename)
    comment = p.string("initial_comment") or ""
    for channel, parent in zip(channels, parents, strict=True):
        message = ws.post(
            channel.id,
            text=comment,
            thread_ts=parent,
            files=[f.id for f in files],
            blocks=None if comment else p.json("blocks"),
        )
        for file in files:
            file.shares.append(Share(channel.id, message.ts, parent))
    # Slack shares the files asynchronously: this answer never carries the message ts;
    # files.info (shares.public|private[channel][].ts) is where it turns up.
    return {"files": [{"id": f.id, "title": f.title} for f in files]}


def files_info(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    file = ws.files.get(p.required("file"))
    if file is None or not file.completed:
        raise SlackError("file_not_found")
    if file.deleted:
        raise SlackError("file_deleted")
    file.info_calls += 1
    shares_visible = file.info_calls > ctx.files_info_shares_lag
    out = file.to_api(with_shares=True)
    if not shares_visible:
        out["shares"] = {}
        out["channels"] = []
    return {"file": out, "comments": [], "response_metadata": {"next_cursor": ""}}


def files_delete(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    file = ws.files.get(p.required("file"))
    if file is None or not file.completed:
        raise SlackError("file_not_found")
    if file.deleted:
        raise SlackError("file_deleted")
    if file.user != BOT_USER_ID:
        raise SlackError("cant_delete_file")
    file.deleted = True
    for message in ws.iter_messages():
        if file.id in message.files:
            message.files.remove(file.id)
            if not message.files and not message.text:
                message.deleted = True
    return {}


def _view_from(p: Params) -> JsonDict:
    view = p.json("view")
    if not isinstance(view, dict) or "type" not in view:
        raise SlackError("invalid_arguments", detail="view")
    return view


def views_open(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    trigger_id = p.string("trigger_id")
    if trigger_id is None:
        raise SlackError("invalid_trigger_id")
    view = View(ws.new_id("V"), _view_from(p), trigger_id, ws.clock.next_ts())
    view.external_id = view.view.get("external_id")
    ws.views[view.id] = view
    return {"view": view.to_api()}


def views_update(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    view_id = p.string("view_id")
    external_id = p.string("external_id")
    found = ws.views.get(view_id or "")
    if found is None and external_id is not None:
        found = next((v for v in ws.views.values() if v.external_id == external_id), None)
    if found is None:
        raise SlackError("not_found")
    given_hash = p.string("hash")
    if given_hash is not None and given_hash != found.hash:
        raise SlackError("hash_conflict")
    found.view = _view_from(p)
    found.hash = ws.clock.next_ts()
    return {"view": found.to_api()}


def users_info(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    return {"user": ws.user(p.string("user")).to_api()}


def conversations_info(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel_id = p.string("channel")
    if channel_id not in ws.channels:
        raise SlackError("channel_not_found")
    return {"channel": ws.channels[channel_id].to_api()}


def conversations_history(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    newest_first = [ws.thread_summary(m) for m in reversed(ws.history(channel.id))]
    return {"messages": newest_first, "has_more": False, "pin_count": 0}


def conversations_replies(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    ts = p.required("ts")
    thread = ws.thread(channel.id, ts)
    if not thread or thread[0].ts != ts:
        raise SlackError("thread_not_found")
    messages = [ws.thread_summary(thread[0]), *(m.to_api() for m in thread[1:])]
    return {"messages": messages, "has_more": False}


def reactions_add(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    message = ws.message(channel.id, p.string("timestamp"))
    name = p.required("name")
    users = message.reactions.setdefault(name, [])
    if BOT_USER_ID in users:
        raise SlackError("already_reacted")
    users.append(BOT_USER_ID)
    return {}


def reactions_remove(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    channel = ws.channel(p.string("channel"))
    message = ws.message(channel.id, p.string("timestamp"))
    users = message.reactions.get(p.required("name"), [])
    if BOT_USER_ID not in users:
        raise SlackError("no_reaction")
    users.remove(BOT_USER_ID)
    return {}


def bots_info(ws: Workspace, p: Params, ctx: Context) -> JsonDict:
    return {"bot": {"id": BOT_ID, "app_id": APP_ID, "name": BOT_NAME, "user_id": BOT_USER_ID}}


METHODS: dict[str, Handler] = {
    "auth.test": auth_test,
    "bots.info": bots_info,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.completeUploadExternal": files_complete_upload_external,
    "files.info": files_info,
    "files.delete": files_delete,
    "views.open": views_open,
    "views.update": views_update,
    "users.info": users_info,
    "conversations.info": conversations_info,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "reactions.add": reactions_add,
    "reactions.remove": reactions_remove,
}
