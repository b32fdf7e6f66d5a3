"""The HTTP plumbing both provider clients share.

This is the one place that turns transport failures and HTTP error answers into the
:mod:`tmbot.errors` tree. Every message is one sentence, carries no key (the key goes only
into the ``Authorization`` header; anything key-like a provider echoes back is redacted) and
at most a short excerpt of the provider's own text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import ssl
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Final, Protocol
from urllib.parse import urlencode

import certifi
import httpx

from tmbot.domain import ApiKey
from tmbot.errors import (
    BadRequest,
    ConfigError,
    DownloadFailed,
    InsufficientCredits,
    KeyRejected,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from tmbot.providers.parsing import (
    as_float,
    as_mapping,
    message_from,
    provider_text,
    sentence,
    walk,
)
from tmbot.providers.transport import (
    AiohttpTransport,
    Failure,
    HttpxTransport,
    Transport,
    WireFailure,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 30.0
#: Requests one provider client has on the wire at once. The bot may have 1,000 tasks in
#: flight; past this they wait on a local semaphore (cheap). Every connection is kept
#: alive, so steady polling reuses them. When 1,000 tasks end at once the loop is busy with
#: every request on the wire in turn: measured with httpx, at 64 (and 16 downloads) the
#: in-flight run's loop lag p99 was 63-78 ms, at 48 and 12 50-53 ms, at 32 and 8 42-47 ms.
#: A provider 300 ms away still gets about 100 requests a second.
MAX_IN_FLIGHT: Final = 32
#: Image downloads (the provider's CDN) have connections of their own, so a burst of
#: downloads never queues the API's polls behind it; fewer at once (a download is large, and
#: a burst of them starved the polls that free slots: measured, 64 was worse than 16; see
#: MAX_IN_FLIGHT for why 8).
MAX_DOWNLOADS: Final = 8
MAX_DOWNLOAD_BYTES: Final = 50 * 1024 * 1024
USER_AGENT: Final = "tmbot/0.1"

EXPIRED_MESSAGE: Final = "The image link expired before it could be fetched."

# A header value must be printable ASCII; anything else would make an HTTP library raise
# with the value (the key) in the exception text.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")

_REQUIRED_KEYS = frozenset(
    {
        "required",
        "requiredcredits",
        "creditsrequired",
        "requiredamount",
        "amountrequired",
        "cost",
        "price",
        "needed",
        "need",
        "creditsneeded",
    }
)
_AVAILABLE_KEYS = frozenset(
    {
        "available",
        "availablecredits",
        "creditsavailable",
        "remaining",
        "remainingcredits",
        "creditsremaining",
        "creditsleft",
        "balance",
        "currentbalance",
        "availablebalance",
    }
)
_REQUIRED_TEXT = re.compile(
    r"(?i)\b(?:requires?|required|needs?|needed|costs?)\b\D{0,24}?(\d+(?:\.\d+)?)"
)
_AVAILABLE_TEXT = re.compile(
    r"(?i)\b(?:available|remaining|balance)\b\D{0,24}?(\d+(?:\.\d+)?)"
    r"|(\d+(?:\.\d+)?)\s+(?:credits?\s+)?(?:left|remaining|available)\b"
)
_BALANCE_WORDS = re.compile(r"(?i)balance|credit|insufficient|quota|fund|payment|billing")


# --- configuration ---------------------------------------------------------------------


def resolve_base_url(explicit: str | None, *, env_var: str, default: str) -> str:
    """The base URL: ``explicit``, else the environment variable, else ``default``; without
    a trailing slash. Raises ConfigError for anything that is not an http(s) URL."""
    raw = explicit if explicit is not None else (os.environ.get(env_var) or default)
    raw = raw.strip().rstrip("/")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{env_var} must be an http(s) URL such as {default}.")
    return raw


def tls_context() -> ssl.SSLContext:
    """A TLS context that checks servers against the CA bundle httpx itself uses."""
    return ssl.create_default_context(cafile=certifi.where())


# --- reading error answers -------------------------------------------------------------


class Reply(Protocol):
    """An answer read whole: a transport's :class:`Answer`, or an ``httpx.Response``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...


def _json_or_none(response: Reply) -> object:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def error_message(data: object, text: str | None, key: ApiKey | None) -> str | None:
    """The provider's own explanation from an error body, made safe and short.

    Accepts ``{"error": {"code": …, "error_message"|"message": …}}``, ``{"error": "…"}``,
    a top-level ``message``/``detail`` and plain non-HTML text."""
    found: str | None = None
    mapping = as_mapping(data)
    if mapping is not None:
        error = mapping.get("error")
        if error is not None:
            found = message_from(error)
        if found is None:
            found = message_from({k: v for k, v in mapping.items() if k != "error"})
    elif data is not None:
        found = message_from(data)
    if found is None and data is None and text:
        stripped = text.strip()
        if stripped and not stripped.startswith("<"):
            found = stripped
    return provider_text(found, key)


def find_amounts(data: object, text: str | None = None) -> tuple[float | None, float | None]:
    """(required, available) credits from a 402/403 body, searched loosely: any nesting,
    several key spellings, numbers as strings; falls back to the message text."""
    required: float | None = None
    available: float | None = None
    for raw_key, value in walk(data):
        norm = raw_key.lower().replace("_", "").replace("-", "")
        number = as_float(value)
        if number is None:
            continue
        if required is None and norm in _REQUIRED_KEYS:
            required = number
        elif available is None and norm in _AVAILABLE_KEYS:
            available = number
    if text:
        if required is None and (m := _REQUIRED_TEXT.search(text)):
            required = as_float(m.group(1))
        if available is None and (m := _AVAILABLE_TEXT.search(text)):
            available = as_float(m.group(1) or m.group(2))
    return required, available


def parse_retry_after(response: Reply, data: object = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP-date, measured against
    the answer's own ``Date`` header when present), else a ``retry_after`` body field."""
    header = response.headers.get("retry-after")
    if header is not None:
        value = header.strip()
        seconds = as_float(value)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            now = time.time()
            date_header = response.headers.get("date")
            if date_header:
                try:
                    now = parsedate_to_datetime(date_header).timestamp()
                except (TypeError, ValueError, IndexError, OverflowError):
                    now = time.time()
            return max(0.0, when - now)
    mapping = as_mapping(data)
    if mapping is not None:
        for key in ("retry_after", "retry_after_seconds", "retryAfter"):
            seconds = as_float(mapping.get(key))
            if seconds is not None:
                return max(0.0, seconds)
        error = as_mapping(mapping.get("error"))
        if error is not None:
            seconds = as_float(error.get("retry_after"))
            if seconds is not None:
                return max(0.0, seconds)
    return None


def _with_detail(head: str, detail: str | None) -> str:
    return sentence(f"{head}: {detail}" if detail else head)


def _whole(value: float | None, *, up: bool) -> int | None:
    if value is None:
        return None
    return math.ceil(value) if up else math.floor(value)


def _credits_error(
    label: str, status: int, required: float | None, available: float | None
) -> InsufficientCredits:
    need = _whole(required, up=True)
    have = _whole(available, up=False)
    head = f"{label} says this key does not have enough credits ({status})"
    if need is not None and have is not None:
        text = f"{head}: the image needs {need} and {have} are left."
    elif need is not None:
        text = f"{head}: the image needs {need}."
    elif have is not None:
        text = f"{head}: {have} are left."
    else:
        text = f"{head}."
    return InsufficientCredits(text, status=status, required=need, available=have)


def error_for_response(response: Reply, *, label: str, key: ApiKey | None = None) -> ProviderError:
    """The error for a non-2xx answer (also used for tests of the mapping itself)."""
    status = response.status_code
    data = _json_or_none(response)
    try:
        text: str | None = response.text
    except (ValueError, LookupError):
        text = None
    detail = error_message(data, text, key)

    if status == 400:
        return BadRequest(_with_detail(f"{label} refused the request (400)", detail), status=400)
    if status == 401:
        return KeyRejected(f"{label} rejected this API key (401).", status=401)
    if status == 402:
        required, available = find_amounts(data, detail)
        return _credits_error(label, 402, required, available)
    if status == 403:
        haystack = " ".join(filter(None, (detail, (text or "")[:2000])))
        if _BALANCE_WORDS.search(haystack):
            required, available = find_amounts(data, detail)
            return _credits_error(label, 403, required, available)
        return KeyRejected(
            _with_detail(
                f"{label} refused this API key permission (403)",
                detail,
            ),
            status=403,
        )
    if status == 429:
        retry_after = parse_retry_after(response, data)
        head = f"{label} is rate-limiting this key (429)"
        if retry_after is not None:
            head += f" and asked to wait {math.ceil(retry_after)} s"
        return RateLimited(sentence(head), status=429, retry_after=retry_after)
    if status in (408, 425) or status >= 500:
        what = "timed out" if status in (408, 504) else "is unavailable right now"
        return ProviderUnavailable(
            _with_detail(f"{label} {what} (HTTP {status})", detail),
            status=status,
            maybe_received=status == 504,  # a gateway gave up; the service may have acted
        )
    if 400 <= status < 500:
        return BadRequest(
            _with_detail(f"{label} refused the request (HTTP {status})", detail), status=status
        )
    return MalformedResponse(f"{label} answered with an unexpected HTTP {status}.", status=status)


# --- the shared client -----------------------------------------------------------------


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a base URL: never its user, password, path or query."""
    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{parsed.host}{port}"
    except (httpx.InvalidURL, ValueError):
        return "its configured address"


def auth_headers(key: ApiKey, label: str) -> dict[str, str]:
    if not _HEADER_SAFE.fullmatch(key.secret):
        raise KeyRejected(f"This {label} API key contains characters that cannot be sent.")
    return {"Authorization": f"Bearer {key.secret}", "Accept": "application/json"}


class ProviderHttp:
    """One provider's base URL and transports, with error mapping built in."""

    def __init__(
        self,
        *,
        label: str,
        base_url: str,
        client: httpx.AsyncClient | None,
        timeout: float,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.label = label
        self.base_url = base_url
        self.max_download_bytes = max_download_bytes
        self._api: Transport
        self._downloads: Transport
        # an injected client (tests, a proxy) serves every request, downloads too
        if client is not None:
            self._api = self._downloads = HttpxTransport(client, timeout=timeout)
        else:
            tls = tls_context()
            self._api = AiohttpTransport(
                limit=MAX_IN_FLIGHT, timeout=timeout, tls=tls, user_agent=USER_AGENT
            )
            self._downloads = AiohttpTransport(
                limit=MAX_DOWNLOADS, timeout=timeout, tls=tls, user_agent=USER_AGENT
            )
        self._api_slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._download_slots = asyncio.Semaphore(MAX_DOWNLOADS)

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._downloads.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: ApiKey,
        json_body: Mapping[str, object] | None = None,
        params: Mapping[str, str] | None = None,
        task_id: str | None = None,
    ) -> Mapping[str, object]:
        """Send one API request; return the JSON object of a 2xx answer or raise a
        ProviderError (never a transport library's error)."""
        headers = auth_headers(key, self.label)
        content: bytes | None = None
        if json_body is not None:
            content = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            headers["Content-Type"] = "application/json"
        url = self.base_url + path + (f"?{urlencode(params)}" if params else "")
        what = f"{method} {path}" + (f" task={task_id}" if task_id else "")
        try:
            async with self._api_slots:
                response = await self._api.send(method, url, headers=headers, content=content)
        except WireFailure as failure:
            log.debug("%s -> %s", what, failure.cause)
            raise self._unavailable(failure) from None
        status = response.status_code
        log.debug("%s -> %s", what, status)
        if not 200 <= status < 300:
            raise error_for_response(response, label=self.label, key=key)
        data = as_mapping(_json_or_none(response))
        if data is None:
            raise MalformedResponse(
                f"{self.label} sent an answer the bot could not read (HTTP {status}, not a "
                "JSON object).",
                status=status,
            )
        return data

    def _unavailable(self, failure: WireFailure) -> ProviderUnavailable:
        if failure.kind is Failure.UNSENT:
            # the request never left: safe to send again, and nothing can have been charged
            return ProviderUnavailable(
                f"Could not reach {self.label} at {_origin(self.base_url)} (connection failed); "
                "nothing was sent, so nothing was charged.",
                unreachable=True,
            )
        if failure.kind is Failure.CLOSED:
            log.warning("%s client closed under a request", self.label)
            return ProviderUnavailable(f"Could not reach {self.label} (client closed).")
        if failure.kind is Failure.TIMEOUT:
            return ProviderUnavailable(f"{self.label} did not answer in time.", maybe_received=True)
        return ProviderUnavailable(
            f"Could not reach {self.label} (connection failed).", maybe_received=True
        )

    async def download(self, url: str) -> bytes:
        """GET ``url`` without auth, following redirects, at most ``max_download_bytes``."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise _permanent(DownloadFailed("The image link is not a web address."))
        where = f"GET {parsed.host}{parsed.path}"  # no query: it may hold a signature
        try:
            async with self._download_slots, self._downloads.stream(url) as response:
                status = response.status_code
                log.debug("%s -> %s", where, status)
                if status in (403, 404, 410):
                    raise DownloadFailed(EXPIRED_MESSAGE, status=status, expired=True)
                if not 200 <= status < 300:
                    raise DownloadFailed(
                        f"The image could not be fetched (HTTP {status}).", status=status
                    )
                declared = as_float(response.headers.get("content-length"))
                if declared is not None and declared > self.max_download_bytes:
                    raise _too_big(self.max_download_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.chunks():
                    size += len(chunk)
                    if size > self.max_download_bytes:
                        raise _too_big(self.max_download_bytes)
                    chunks.append(chunk)
        except WireFailure as failure:
            log.debug("%s -> %s", where, failure.cause)
            if failure.kind is Failure.TIMEOUT:
                raise DownloadFailed("The image download timed out.") from None
            raise DownloadFailed("The image could not be fetched (connection failed).") from None
        body = b"".join(chunks)
        if not body:
            raise DownloadFailed("The image link returned an empty file.", status=status)
        return body


def _permanent(error: DownloadFailed) -> DownloadFailed:
    error.transient = False
    return error


def _too_big(limit: int) -> DownloadFailed:
    return _permanent(
        DownloadFailed(f"The image is larger than the {limit // (1024 * 1024)} MB the bot fetches.")
    )
