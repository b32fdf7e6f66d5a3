"""What the fake records: one frozen `Call` per request, and the faults queued for methods."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .model import JsonDict

# Names under which calls that are not Web API methods are recorded (and faults queued).
UPLOAD = "upload"  # the bytes posted to an upload URL from files.getUploadURLExternal
RESPONSE_URL = "response_url"  # a POST to a response_url (bolt's respond())
SOCKET_ACK = "socket_ack"  # an acknowledgement the app sent over Socket Mode

APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


def frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(copy.deepcopy(dict(value)))


@dataclass(frozen=True)
class Call:
    """One request the fake received, and what it answered."""

    seq: int
    method: str  # "chat.postMessage", or UPLOAD / RESPONSE_URL / SOCKET_ACK
    params: Mapping[str, Any]  # query + form/JSON body, merged; JSON-ish values as sent
    headers: Mapping[str, str]  # request headers without Authorization
    token: str | None  # the bearer token (or `token` parameter) the call carried
    body: bytes  # the raw body (the file bytes for UPLOAD)
    status: int  # the HTTP status answered
    response: Mapping[str, Any]  # the JSON answered (or {"text": ...} for text answers)
    file_bytes: bytes | None = None  # bytes of an uploaded file (UPLOAD or multipart)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return str(error) if error is not None else None

    def param_json(self, name: str) -> Any:
        """A structured parameter decoded whether it came as JSON text (form) or JSON."""
        value = self.params.get(name)
        return json.loads(value) if isinstance(value, str) and value else value

    def everything(self) -> str:
        """All text the call carried, for "this secret is in no call" assertions."""
        return "\n".join(
            [
                self.method,
                json.dumps(dict(self.params), default=str),
                json.dumps(dict(self.headers)),
                self.body.decode("utf-8", "replace"),
            ]
        )


@dataclass(frozen=True)
class Fault:
    error: str
    status: int = 200
    retry_after: int | None = None


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def headers_without_auth(request: web.Request) -> Mapping[str, str]:
    return MappingProxyType(
        {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
    )


async def read_params(request: web.Request) -> tuple[JsonDict, bytes, bytes | None]:
    """Query string + body (JSON, form or multipart) as one dict; the raw body; file bytes."""
    params: JsonDict = dict(request.query)
    file_bytes: bytes | None = None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                file_bytes = value.file.read()
                params.setdefault("filename", value.filename)
            else:
                params[name] = value
        return params, b"", file_bytes
    raw = await request.read()
    if request.content_type == "application/json" and raw:
        body = json.loads(raw)
        if isinstance(body, dict):
            params.update(body)
    elif request.content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(raw.decode(), keep_blank_values=True))
    return params, raw, file_bytes
