"""Logging for a process: one line per event, as text or JSON lines, never a secret.

``TMBOT_LOG_FORMAT=json`` writes one JSON object per line (stdlib ``logging`` with
:class:`JsonFormatter`; nothing builds JSON by hand): ``time``, ``level``, ``logger``,
``message``, and the context a line was logged with (``extra={"generation": …, "key": …,
"state": …, "seconds": …}``). The redacting filter sits on every handler, so lines from the
SDKs' own loggers (slack_sdk, discord, httpx) are redacted too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from tmbot.redact import RedactingFilter, install_redaction

#: context fields a log call may pass in ``extra`` and the JSON line carries
CONTEXT_FIELDS = ("generation", "key", "state", "seconds", "platform", "event")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    *, level: str, fmt: str = "text", stream: TextIO | None = None
) -> RedactingFilter:
    """Route every logger to one handler on ``stream`` (stderr) in ``fmt``, with the
    redacting filter on it; returns the filter (keys are registered with it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every URL at INFO; signed download links do not belong in logs
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return install_redaction()
