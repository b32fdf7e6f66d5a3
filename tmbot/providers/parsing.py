"""Tolerant readers for provider JSON.

Providers send numbers as strings, drop fields, add fields and nest things in more than one
way. These helpers take ``object`` (whatever ``json.loads`` produced) and return a typed value
or ``None``; none of them raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from tmbot.domain import ApiKey

#: Longest piece of provider text we put into a message.
MAX_PROVIDER_TEXT = 200

_WS = re.compile(r"\s+")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_TM_KEY = re.compile(r"\btm_(?:live|test)_[A-Za-z0-9_\-]+")


def as_mapping(value: object) -> Mapping[str, object] | None:
    """``value`` when it is a JSON object, else None."""
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return value
    return None


def as_list(value: object) -> list[object]:
    """``value`` when it is a JSON array, ``[value]`` for a lone object, else ``[]``."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return [value]
    return []


def as_float(value: object) -> float | None:
    """A finite number from a JSON number or a numeric string (``"30"``, ``" 0.04 "``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_text(value: object) -> str | None:
    """A non-blank string, stripped; numbers become their text form."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return None


def as_word(value: object) -> str | None:
    """A status word: a non-blank string, stripped and lower-cased (numbers do not count)."""
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    return word or None


def first_text(data: Mapping[str, object] | None, *keys: str) -> str | None:
    """The first non-blank string among ``keys`` of ``data``."""
    if data is None:
        return None
    for key in keys:
        text = as_text(data.get(key))
        if text is not None:
            return text
    return None


MESSAGE_KEYS: tuple[str, ...] = (
    "error_message",
    "message",
    "detail",
    "reason",
    "error_description",
    "description",
    "msg",
)


def message_from(value: object) -> str | None:
    """A message from a string, an object with a message-like key, or a list of either
    (e.g. FastAPI's ``detail: [{"msg": …}]``)."""
    if isinstance(value, str):
        return as_text(value)
    mapping = as_mapping(value)
    if mapping is not None:
        found = first_text(mapping, *MESSAGE_KEYS)
        if found is not None:
            return found
        for key in ("detail", "error", "errors"):
            nested = mapping.get(key)
            if nested is not None and not isinstance(nested, str):
                found = message_from(nested)
                if found is not None:
                    return found
        return None
    if isinstance(value, list):
        for item in value[:3]:
            found = message_from(item)
            if found is not None:
                return found
    return None


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds from ISO 8601 (``2026-04-14T00:00:00Z``; naive means UTC) or from a
    number of epoch seconds (milliseconds when implausibly large). None when garbled or
    implausibly early."""
    number = as_float(value)
    if number is not None:
        if number > 1e11:  # milliseconds
            number /= 1000.0
        # before 2001 is not a plausible expiry: a relative duration or garbage
        return number if number >= 1e9 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def walk(data: object, *, max_depth: int = 6) -> Iterator[tuple[str, object]]:
    """Every (key, value) pair in nested JSON, breadth first (shallow keys come first)."""
    level: list[object] = [data]
    for _ in range(max_depth):
        following: list[object] = []
        for node in level:
            mapping = as_mapping(node)
            if mapping is not None:
                for key, value in mapping.items():
                    yield key, value
                    following.append(value)
            elif isinstance(node, list):
                following.extend(node)
        if not following:
            return
        level = following


def redact(text: str, key: ApiKey | None) -> str:
    """Provider text with anything key-like replaced, so an echoed key never reaches a
    message or a log line."""
    if key is not None and key.secret:
        text = text.replace(key.secret, key.fingerprint)
    text = _BEARER.sub("Bearer …", text)
    return _TM_KEY.sub("tm_…", text)


def clip(text: str, limit: int = MAX_PROVIDER_TEXT) -> str:
    """One line of at most ``limit`` characters."""
    text = _WS.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def provider_text(text: str | None, key: ApiKey | None) -> str | None:
    """Provider-supplied text made safe for a user message: redacted, one line, short,
    without trailing sentence punctuation (callers add their own full stop)."""
    if text is None:
        return None
    cleaned = clip(redact(text, key)).rstrip(" .!;:")
    return cleaned or None


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (or the ``?``/``!`` it already has)."""
    text = text.rstrip()
    if text.endswith((".", "!", "?", "…")):
        return text
    return text + "."
