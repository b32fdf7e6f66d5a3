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

Usage: ``cli.py`` calls :func:`install_redaction` right after ``logging.basicConfig(...)``; the
filter is attached to the handlers that exist at that moment (a handler added later, or one on
a logger that does not propagate, needs ``handler.addFilter(the_filter)`` too).
"""

from __future__ import annotations

import logging
import re
import threading

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

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self._formatter = logging.Formatter()

    def register(self, secret: str) -> None:
        """Redact this exact text from now on (as its fingerprint). Thread-safe."""
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets.add(secret)
            longest_first = sorted(self._secrets, key=len, reverse=True)
            # One alternation, longest first, so a secret containing another is replaced whole.
            self._pattern = re.compile("|".join(re.escape(s) for s in longest_first))

    def redact(self, text: str) -> str:
        return redact(text, self._pattern)

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
