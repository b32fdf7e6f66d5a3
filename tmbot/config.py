"""Settings from the environment, read once by the composition root (tmbot.cli)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tmbot.errors import ConfigError


@dataclass(frozen=True)
class Config:
    # TMBOT_DATABASE_URL; None: storage's embedded default. Not in repr: it may hold a password
    database_url: str | None = field(default=None, repr=False)
    tastemachine_url: str | None = None  # TASTEMACHINE_API_URL
    vtrix_url: str | None = None  # VTRIX_API_URL
    time_scale: float = 1.0  # TMBOT_TIME_SCALE: must equal the simulator's when testing
    deadline_seconds: float = 600.0  # TMBOT_TASK_DEADLINE: provider seconds before giving up
    http_timeout: float = 30.0  # TMBOT_HTTP_TIMEOUT: real seconds per API request
    log_level: str = "WARNING"  # TMBOT_LOG_LEVEL
    log_format: str = "text"  # TMBOT_LOG_FORMAT: text or json (one JSON object per line)
    shutdown_grace: float = 10.0  # TMBOT_SHUTDOWN_GRACE: seconds running work gets on a stop

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        return cls(
            database_url=_database_url(env),
            tastemachine_url=env.get("TASTEMACHINE_API_URL") or None,
            vtrix_url=env.get("VTRIX_API_URL") or None,
            time_scale=_positive(env, "TMBOT_TIME_SCALE", 1.0),
            deadline_seconds=_positive(env, "TMBOT_TASK_DEADLINE", 600.0),
            http_timeout=_positive(env, "TMBOT_HTTP_TIMEOUT", 30.0),
            log_level=_log_level(env),
            log_format=_log_format(env),
            shutdown_grace=_positive(env, "TMBOT_SHUTDOWN_GRACE", 10.0),
        )


#: The kinds of database TMBOT_DATABASE_URL may name (the URL's scheme); storage reads the rest.
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def _database_url(env: Mapping[str, str]) -> str | None:
    """``sqlite:///…`` (one process) or ``postgresql://…`` (the shared store). A bad one is a
    sentence that never repeats the URL: it may hold a password."""
    url = (env.get("TMBOT_DATABASE_URL") or "").strip()
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        if not scheme:
            what = "it is not a URL"
        elif re.fullmatch(r"[a-z][a-z0-9+.-]{0,19}", scheme):
            what = f"'{scheme}' databases are not supported"
        else:  # not a scheme at all: say nothing of it (it may hold part of a password)
            what = "it names neither"
        raise ConfigError(
            "TMBOT_DATABASE_URL must be sqlite:///path.db (the default: one process) or "
            f"postgresql://user:password@host:5432/database; {what}."
        )
    return url


#: The levels TMBOT_LOG_LEVEL accepts (any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(env: Mapping[str, str]) -> str:
    raw = (env.get("TMBOT_LOG_LEVEL") or "WARNING").strip()
    level = raw.upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
        raise ConfigError(
            f"TMBOT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {_shown(raw)}."
        )
    return level


#: The formats TMBOT_LOG_FORMAT accepts (any case).
LOG_FORMATS = ("text", "json")


def _log_format(env: Mapping[str, str]) -> str:
    raw = (env.get("TMBOT_LOG_FORMAT") or "text").strip()
    if raw.lower() not in LOG_FORMATS:
        raise ConfigError(f"TMBOT_LOG_FORMAT must be text or json, not {_shown(raw)}.")
    return raw.lower()


def _shown(raw: str) -> str:
    """A bad value for a message: printable, short, quoted."""
    text = "".join(ch if ch.isprintable() else "?" for ch in raw[:20])
    return repr(text)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {_shown(raw)}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number greater than zero, not {_shown(raw)}.")
    return value
