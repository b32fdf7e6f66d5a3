"""Keep secrets out of log output.

:class:`RedactingFilter` rewrites every record that reaches a handler it is attached to: the
message is formatted once, anything shaped like a secret is replaced, and the result is stored
back with no arguments. Exception tracebacks and stack info are formatted and redacted the
same way. What counts as a secret:

* Taste Machine keys (``tm_live_…``, ``tm_test_…``), Slack tokens (``xoxb-…``, ``xapp-…``),
  Discord bot tokens and JWTs (three base64url parts joined by dots) and ``Bearer`` tokens:
  replaced by their fingerprint ``…abcd`` (the last four characters, as
  :attr:`tmbot.domain.ApiKey.fingerprint` shows keys);
* the value of an ``Authorization:`` (or ``x-api-key``, ``api_key=``, ``password=`` …)
  header or field: ``[redacted]``;
* every secret registered with :meth:`RedactingFilter.register` (the engine registers each
  key it decrypts, so keys without a fixed shape, like Vtrix's, are covered): its fingerprint.
  A short-lived secret (a link code) is registered with a ``ttl`` and dropped once it has
  passed, so the registered set, and the one pattern matching them all, stay small.

Usage: ``cli.py`` calls :func:`install_redaction` right after ``logging.basicConfig(...)``; the
filter is attached to the handlers that exist at that moment (a handler added later, or one on
a logger that does not propagate, needs ``handler.addFilter(the_filter)`` too).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

#: Registered secrets shorter than this are ignored: redacting every "abc" would garble logs.
MIN_SECRET_LENGTH = 8

REDACTED = "[redacted]"

#: Shapes replaced by their fingerprint, applied in order.
_TOKEN_SHAPES = (
    # Taste Machine API keys.
    re.compile(r"tm_(?:live|test)_[A-Za-z0-9_-]+"),
    # Slack bot/user/app/config tokens.
    re.compile(r"(?<![A-Za-z0-9])(?:xox[abposr]|xapp)-[A-Za-z0-9-]+"),
    # Discord bot tokens (and JWTs): three base64url parts, the first at least 20 long.
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}"),
)
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])(bearer\s+)([A-Za-z0-9._~+/-]{8,}=*)")
_FIELD = re.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"((?:proxy-)?authorization|x-api-key|api[_-]?key|access[_-]?token|client[_-]?secret"
    r"|secret[_-]?key|signing[_-]?secret|password)"
    r"([\"']?\s*[:=]\s*[\"']?)"
    r"((?:[A-Za-z]+\s+)?[^\s\"',;&}]+)"  # an optional scheme ("Bearer ") and one token
)
#: A field value that is already redacted (``Bearer …abcd``, ``[redacted]``): left alone.
_ALREADY_REDACTED = re.compile(r"(?:[A-Za-z]+\s+)?(?:…\S{0,4}|\[redacted\])")


class SecretSink(Protocol):
    """Where the core hands secrets to keep out of logs (:meth:`RedactingFilter.register`):
    for good, or for ``ttl`` seconds."""

    def __call__(self, secret: str, /, ttl: float | None = None) -> None: ...


def fingerprint_of(secret: str) -> str:
    """``…abcd``: what a secret looks like in logs (same as ``ApiKey.fingerprint``)."""
    return "…" + secret[-4:]


def _fingerprint_match(match: re.Match[str]) -> str:
    return fingerprint_of(match.group(0))


def _bearer_match(match: re.Match[str]) -> str:
    return match.group(1) + fingerprint_of(match.group(2))


def _field_match(match: re.Match[str]) -> str:
    name, separator, value = match.group(1), match.group(2), match.group(3)
    if _ALREADY_REDACTED.fullmatch(value):
        return match.group(0)
    return f"{name}{separator}{REDACTED}"


def redact(text: str, registered: re.Pattern[str] | None = None) -> str:
    """``text`` with every secret-shaped part (and every match of ``registered``) replaced."""
    if registered is not None:
        text = registered.sub(_fingerprint_match, text)
    for shape in _TOKEN_SHAPES:
        text = shape.sub(_fingerprint_match, text)
    text = _BEARER.sub(_bearer_match, text)
    return _FIELD.sub(_field_match, text)


class RedactingFilter(logging.Filter):
    """A handler filter that removes secrets from records (see the module docstring)."""

    def __init__(self, name: str = "", *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name)
        #: secret -> the clock's time it stops being redacted (inf: never)
        self._secrets: dict[str, float] = {}
        self._pattern: re.Pattern[str] | None = None
        self._next_expiry = math.inf
        self._clock = clock
        self._lock = threading.Lock()
        self._formatter = logging.Formatter()

    def register(self, secret: str, ttl: float | None = None) -> None:
        """Redact this exact text from now on (as its fingerprint): for good, or for ``ttl``
        seconds of the clock (a short-lived secret, e.g. a link code). Thread-safe."""
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            return
        now = self._clock()
        until = math.inf if ttl is None else now + ttl
        with self._lock:
            if self._secrets.get(secret, -math.inf) >= until:
                return
            self._secrets[secret] = until
            self._compile(now)

    @property
    def registered(self) -> int:
        """How many registered secrets are redacted now."""
        now = self._clock()
        with self._lock:
            return sum(1 for until in self._secrets.values() if until > now)

    def _compile(self, now: float) -> None:
        """Drop the expired secrets and rebuild the pattern (under the lock)."""
        self._secrets = {s: until for s, until in self._secrets.items() if until > now}
        longest_first = sorted(self._secrets, key=len, reverse=True)
        # One alternation, longest first, so a secret containing another is replaced whole.
        pattern = "|".join(re.escape(s) for s in longest_first)
        self._pattern = re.compile(pattern) if pattern else None
        self._next_expiry = min(self._secrets.values(), default=math.inf)

    def _current(self) -> re.Pattern[str] | None:
        now = self._clock()
        if now >= self._next_expiry:
            with self._lock:
                if now >= self._next_expiry:
                    self._compile(now)
        return self._pattern

    def redact(self, text: str) -> str:
        return redact(text, self._current())

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, still redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            # Formatters print exc_text; dropping the live exception keeps any formatter that
            # would format it afresh from printing the unredacted text.
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach one :class:`RedactingFilter` to every handler of ``logger`` (the root logger by
    default) and return it, for the engine to :meth:`~RedactingFilter.register` keys with.

    Call it after ``logging.basicConfig(...)``. Calling it again reuses the filter already
    installed (so registered secrets are kept) and covers handlers added since.
    """
    target = logger if logger is not None else logging.getLogger()
    installed = next(
        (f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)), None
    )
    redacting = installed if installed is not None else RedactingFilter()
    for handler in target.handlers:
        handler.addFilter(redacting)
    return redacting
