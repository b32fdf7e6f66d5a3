"""The shared provider plumbing: status mapping, loose body reading, Retry-After, downloads,
base URLs and key hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate

import httpx
import pytest

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
from tmbot.providers import TasteMachineClient, VtrixClient
from tmbot.providers.http import (
    EXPIRED_MESSAGE,
    ProviderHttp,
    error_for_response,
    error_message,
    find_amounts,
    parse_retry_after,
    resolve_base_url,
)
from tmbot.providers.parsing import as_float, clip, parse_timestamp, redact

KEY = ApiKey("tm_live_S3cretKeyValue0123456789")
LABEL = "The Taste Machine"


def resp(
    status: int, body: object = None, *, text: str | None = None, **headers: str
) -> httpx.Response:
    """An httpx.Response with a JSON body (or raw text) and the given headers."""
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if text is not None:
        return httpx.Response(status, text=text, headers=hdrs)
    if body is None:
        return httpx.Response(status, headers=hdrs)
    return httpx.Response(status, json=body, headers=hdrs)


def mapped(response: httpx.Response, key: ApiKey | None = KEY) -> ProviderError:
    return error_for_response(response, label=LABEL, key=key)


# --- status mapping ----------------------------------------------------------------------


def test_400_is_bad_request_with_provider_message() -> None:
    err = mapped(resp(400, {"error": {"code": 40001, "message": "aspect_ratio is invalid."}}))
    assert type(err) is BadRequest
    assert err.status == 400
    assert (
        err.user_message == "The Taste Machine refused the request (400): aspect_ratio is invalid."
    )
    assert not err.transient


def test_400_without_body() -> None:
    err = mapped(resp(400))
    assert type(err) is BadRequest
    assert err.user_message == "The Taste Machine refused the request (400)."


def test_401_is_key_rejected() -> None:
    err = mapped(resp(401, {"message": "Invalid API key"}))
    assert type(err) is KeyRejected
    assert err.status == 401
    assert err.user_message == ("The Taste Machine rejected this API key (401).")


@pytest.mark.parametrize(
    ("body", "required", "available"),
    [
        ({"error": "Insufficient credits", "required": 10, "available": 3}, 10, 3),
        ({"credits": {"required": 15, "remaining": 4}}, 15, 4),
        (
            {"error": {"message": "Insufficient credits", "required_credits": "9", "balance": "2"}},
            9,
            2,
        ),
        ({"detail": {"needed": 10, "credits_available": 0}}, 10, 0),
        ({"requiredCredits": 10, "currentBalance": 1}, 10, 1),
        ({"error": "Insufficient credits: required 10, available 3"}, 10, 3),
        ({"message": "needs 10 credits but only 7 left"}, 10, 7),
        ({"cost": 10.0}, 10, None),
        ({"error": "Insufficient credits"}, None, None),
        ([], None, None),
    ],
)
def test_402_amounts_parsed_loosely(
    body: object, required: int | None, available: int | None
) -> None:
    err = mapped(resp(402, body))
    assert isinstance(err, InsufficientCredits)
    assert err.status == 402
    assert (err.required, err.available) == (required, available)
    if required is not None and available is not None:
        assert f"needs {required} and {available} are left" in err.user_message
    assert err.user_message.endswith(".")


def test_402_not_json() -> None:
    err = mapped(resp(402, text="Payment Required"))
    assert isinstance(err, InsufficientCredits)
    assert err.required is None and err.available is None


def test_402_fractional_amounts_round_conservatively() -> None:
    err = mapped(resp(402, {"required": "0.5", "available": 0.4}))
    assert isinstance(err, InsufficientCredits)
    assert (err.required, err.available) == (1, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": 403001, "message": "Insufficient balance"}},
        {"message": "Your credit is not enough"},
        {"error": "quota exceeded"},
        {"error": {"code": "INSUFFICIENT_BALANCE"}},
    ],
)
def test_403_about_balance_is_insufficient_credits(body: object) -> None:
    err = mapped(resp(403, body))
    assert isinstance(err, InsufficientCredits)
    assert err.status == 403


@pytest.mark.parametrize(
    "body", [{"error": {"code": 403, "message": "No permission for model"}}, None, {"x": 1}]
)
def test_403_otherwise_is_key_rejected(body: object) -> None:
    err = mapped(resp(403, body))
    assert type(err) is KeyRejected
    assert err.status == 403
    assert "permission" in err.user_message


def test_429_retry_after_seconds() -> None:
    err = mapped(resp(429, {"message": "slow down"}, retry_after="12"))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 12.0
    assert err.status == 429
    assert err.transient
    assert "12 s" in err.user_message


def test_429_retry_after_http_date_against_date_header() -> None:
    err = mapped(
        resp(
            429,
            retry_after="Wed, 21 Oct 2015 07:28:00 GMT",
            date="Wed, 21 Oct 2015 07:27:30 GMT",
        )
    )
    assert isinstance(err, RateLimited)
    assert err.retry_after == 30.0


def test_429_retry_after_http_date_against_local_clock() -> None:
    err = mapped(resp(429, retry_after=formatdate(time.time() + 20, usegmt=True)))
    assert isinstance(err, RateLimited)
    assert err.retry_after is not None
    assert 17.0 <= err.retry_after <= 21.0


def test_429_retry_after_in_the_past_is_zero() -> None:
    err = mapped(resp(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 0.0


@pytest.mark.parametrize("header", [None, "soon", "", "-5x"])
def test_429_retry_after_missing_or_garbled(header: str | None) -> None:
    response = resp(429) if header is None else resp(429, retry_after=header)
    err = mapped(response)
    assert isinstance(err, RateLimited)
    assert err.retry_after is None
    assert err.user_message == "The Taste Machine is rate-limiting this key (429)."


def test_429_retry_after_in_body() -> None:
    err = mapped(resp(429, {"error": {"message": "rate limited", "retry_after": "7"}}))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 7.0


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 599])
def test_server_side_failures_are_unavailable(status: int) -> None:
    err = mapped(resp(status, text="<html><body>" + "x" * 5000 + "</body></html>"))
    assert type(err) is ProviderUnavailable
    assert err.status == status
    assert err.transient
    assert "<html" not in err.user_message
    assert len(err.user_message) < 120


@pytest.mark.parametrize("status", [404, 405, 409, 413, 422])
def test_other_client_errors_are_bad_requests(status: int) -> None:
    err = mapped(resp(status, {"detail": [{"loc": ["body"], "msg": "field required"}]}))
    assert type(err) is BadRequest
    assert err.status == status
    assert err.user_message.endswith("field required.")


@pytest.mark.parametrize("status", [301, 304])
def test_unexpected_statuses_are_malformed(status: int) -> None:
    assert type(mapped(resp(status))) is MalformedResponse


def test_provider_text_is_truncated_to_one_short_line() -> None:
    err = mapped(resp(400, {"message": "bad\n\n" + "word " * 200}))
    assert "\n" not in err.user_message
    assert len(err.user_message) < 260
    assert "…" in err.user_message


# --- body readers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text", "expected"),
    [
        ({"error": {"code": 5001095, "error_message": "boom"}}, None, "boom"),
        ({"error": {"code": 5001095, "message": "boom."}}, None, "boom"),
        ({"error": "plain string"}, None, "plain string"),
        ({"message": "top level"}, None, "top level"),
        ({"error": {"code": 1}, "message": "beside"}, None, "beside"),
        ({"error": {"code": 1}}, None, None),
        (None, "not json at all", "not json at all"),
        (None, "<!doctype html><p>gateway</p>", None),
        (None, "   ", None),
        ([1, 2], "[1, 2]", None),
    ],
)
def test_error_message_shapes(data: object, text: str | None, expected: str | None) -> None:
    assert error_message(data, text, KEY) == expected


def test_find_amounts_ignores_booleans_and_garbage() -> None:
    assert find_amounts({"required": True, "available": "lots"}) == (None, None)
    assert find_amounts("nope") == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, 30.0), ("30", 30.0), (" 0.04 ", 0.04), ("", None), (None, None), (True, None),
     ("nan", None), ("inf", None), ([1], None)],
)  # fmt: skip
def test_as_float(value: object, expected: float | None) -> None:
    assert as_float(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-04-14T00:00:00Z", 1776124800.0),
        ("2026-04-14T00:00:00+00:00", 1776124800.0),
        ("2026-04-14T02:00:00+02:00", 1776124800.0),
        ("2026-04-14T00:00:00", 1776124800.0),
        ("2026-04-14T00:00:00.000Z", 1776124800.0),
        (1776124800, 1776124800.0),
        ("1776124800", 1776124800.0),
        (1776124800000, 1776124800.0),
        ("tomorrow", None),
        ("", None),
        (None, None),
        ({"at": 1}, None),
        (0, None),
    ],
)
def test_parse_timestamp(value: object, expected: float | None) -> None:
    assert parse_timestamp(value) == expected


def test_redact_and_clip() -> None:
    text = f"bad key {KEY.secret}; Authorization: Bearer abc.def; other tm_test_zzzz9999"
    cleaned = redact(text, KEY)
    assert KEY.secret not in cleaned
    assert "abc.def" not in cleaned
    assert "tm_test_zzzz9999" not in cleaned
    assert KEY.fingerprint in cleaned
    assert clip("a  b\n c") == "a b c"
    assert len(clip("x" * 500)) == 200


def test_parse_retry_after_prefers_header() -> None:
    response = resp(429, {"retry_after": 99}, retry_after="3")
    assert parse_retry_after(response, json.loads(response.content)) == 3.0


# --- base URLs ----------------------------------------------------------------------------


def test_base_url_explicit_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_API_URL", raising=False)
    assert resolve_base_url(None, env_var="X_API_URL", default="https://d.example") == (
        "https://d.example"
    )
    monkeypatch.setenv("X_API_URL", "http://127.0.0.1:8123/")
    assert resolve_base_url(None, env_var="X_API_URL", default="https://d.example") == (
        "http://127.0.0.1:8123"
    )
    assert resolve_base_url("http://h:1/p/", env_var="X_API_URL", default="x") == "http://h:1/p"
    monkeypatch.setenv("X_API_URL", "")
    assert resolve_base_url(None, env_var="X_API_URL", default="https://d.example") == (
        "https://d.example"
    )


@pytest.mark.parametrize("bad", ["ftp://host", "not a url", "http://", "://x"])
def test_bad_base_url_is_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="X_API_URL"):
        resolve_base_url(bad, env_var="X_API_URL", default="https://d.example")


# --- the shared client ---------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
async def make_http() -> AsyncIterator[Callable[..., ProviderHttp]]:
    clients: list[httpx.AsyncClient] = []

    def make(handler: Handler, *, max_download_bytes: int = 50 * 1024 * 1024) -> ProviderHttp:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        return ProviderHttp(
            label=LABEL,
            base_url="http://api.test",
            client=client,
            timeout=5.0,
            max_download_bytes=max_download_bytes,
        )

    yield make
    for client in clients:
        await client.aclose()


async def test_call_sends_bearer_and_json(make_http: Callable[..., ProviderHttp]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    http = make_http(handler)
    data = await http.call("POST", "/x", key=KEY, json_body={"a": 1})
    assert data == {"ok": True}
    (request,) = seen
    assert request.headers["authorization"] == f"Bearer {KEY.secret}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"a": 1}


@pytest.mark.parametrize(
    "secret", ["tm_live_é_bad_key", "tm_live_a b", "tm_live_x\nInjected: 1", ""]
)
async def test_unsendable_key_is_rejected_before_any_request(
    make_http: Callable[..., ProviderHttp], secret: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    http = make_http(handler)
    with pytest.raises(KeyRejected) as info:
        await http.call("GET", "/x", key=ApiKey(secret))
    if secret:
        assert secret not in str(info.value)


async def test_closed_client_is_unavailable() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    await client.aclose()
    http = ProviderHttp(label=LABEL, base_url="http://api.test", client=client, timeout=1.0)
    with pytest.raises(ProviderUnavailable):
        await http.call("GET", "/x", key=KEY)


async def test_owned_client_closed_injected_client_left_open() -> None:
    owned = ProviderHttp(label=LABEL, base_url="http://api.test", client=None, timeout=1.0)
    await owned.aclose()
    await owned.aclose()  # idempotent
    with pytest.raises(ProviderUnavailable):
        await owned.call("GET", "/x", key=KEY)
    with pytest.raises(DownloadFailed):  # its download client is closed too
        await owned.download("http://cdn.test/image.png")

    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    injected = ProviderHttp(label=LABEL, base_url="http://api.test", client=client, timeout=1.0)
    await injected.aclose()
    assert not client.is_closed
    await client.aclose()


# --- downloads -----------------------------------------------------------------------------


async def test_download_returns_bytes_without_auth_following_redirects(
    make_http: Callable[..., ProviderHttp],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/old.png":
            return httpx.Response(302, headers={"Location": "https://cdn.test/new.png"})
        return httpx.Response(200, content=b"\x89PNG data", headers={"Content-Type": "image/png"})

    http = make_http(handler)
    assert await http.download("https://cdn.test/old.png?sig=abc") == b"\x89PNG data"
    assert [r.url.path for r in seen] == ["/old.png", "/new.png"]
    assert all("authorization" not in r.headers for r in seen)


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_download_expired(make_http: Callable[..., ProviderHttp], status: int) -> None:
    http = make_http(lambda r: httpx.Response(status, text="gone"))
    with pytest.raises(DownloadFailed) as info:
        await http.download("https://cdn.test/x.png")
    assert info.value.expired
    assert not info.value.transient
    assert info.value.status == status
    assert info.value.user_message == EXPIRED_MESSAGE


async def test_download_expired_after_redirect(make_http: Callable[..., ProviderHttp]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a":
            return httpx.Response(301, headers={"Location": "/b"})
        return httpx.Response(404)

    with pytest.raises(DownloadFailed) as info:
        await make_http(handler).download("https://cdn.test/a")
    assert info.value.expired


@pytest.mark.parametrize("status", [500, 503, 429, 401])
async def test_download_other_statuses_are_transient(
    make_http: Callable[..., ProviderHttp], status: int
) -> None:
    with pytest.raises(DownloadFailed) as info:
        await make_http(lambda r: httpx.Response(status)).download("https://cdn.test/x.png")
    assert not info.value.expired
    assert info.value.transient
    assert info.value.status == status


@pytest.mark.parametrize(
    "exc", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.ReadError]
)
async def test_download_transport_errors_are_transient(
    make_http: Callable[..., ProviderHttp], exc: type[httpx.TransportError]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    with pytest.raises(DownloadFailed) as info:
        await make_http(handler).download("https://cdn.test/x.png")
    assert info.value.transient and not info.value.expired


async def test_download_redirect_loop_is_transient(make_http: Callable[..., ProviderHttp]) -> None:
    http = make_http(lambda r: httpx.Response(302, headers={"Location": "/loop"}))
    with pytest.raises(DownloadFailed) as info:
        await http.download("https://cdn.test/loop")
    assert not info.value.expired


async def test_download_size_cap_by_content_length(
    make_http: Callable[..., ProviderHttp],
) -> None:
    http = make_http(lambda r: httpx.Response(200, content=b"x" * 11), max_download_bytes=10)
    with pytest.raises(DownloadFailed, match="larger") as info:
        await http.download("https://cdn.test/x.png")
    assert not info.value.transient


async def test_download_size_cap_while_streaming(make_http: Callable[..., ProviderHttp]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 4

    http = make_http(lambda r: httpx.Response(200, content=chunks()), max_download_bytes=10)
    with pytest.raises(DownloadFailed, match="larger"):
        await http.download("https://cdn.test/x.png")


async def test_download_empty_body(make_http: Callable[..., ProviderHttp]) -> None:
    with pytest.raises(DownloadFailed) as info:
        await make_http(lambda r: httpx.Response(200)).download("https://cdn.test/x.png")
    assert info.value.transient


@pytest.mark.parametrize("url", ["", "file:///etc/passwd", "not a url", "ftp://x/y.png"])
async def test_download_rejects_non_web_urls(
    make_http: Callable[..., ProviderHttp], url: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(DownloadFailed) as info:
        await make_http(handler).download(url)
    assert not info.value.transient


# --- over real sockets (no mocks): timeouts, refusals, resets, headers ----------------------

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def local_server(serve: Serve) -> AsyncIterator[str]:
    """A raw TCP server on 127.0.0.1, port 0; yields its base URL."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_real_read_timeout_is_unavailable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        await reader.read()  # until the client gives up and closes

    async with local_server(silent) as base:
        client = TasteMachineClient(base, timeout=0.3)
        try:
            with pytest.raises(ProviderUnavailable, match="did not answer in time"):
                await client.poll(KEY, "t")
        finally:
            await client.aclose()


async def test_real_reset_is_unavailable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)

    async with local_server(hang_up) as base:
        client = VtrixClient(base, timeout=2.0)
        try:
            with pytest.raises(ProviderUnavailable, match="Could not reach Vtrix"):
                await client.poll(KEY, "t")
        finally:
            await client.aclose()


async def test_real_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TasteMachineClient(f"http://127.0.0.1:{port}", timeout=2.0)
    try:
        with pytest.raises(ProviderUnavailable):
            await client.poll(KEY, "t")
    finally:
        await client.aclose()


async def test_real_429_and_request_line() -> None:
    heads: list[bytes] = []

    async def limited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_head(reader))
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()

    async with local_server(limited) as base:
        client = TasteMachineClient(base, timeout=2.0)
        try:
            with pytest.raises(RateLimited) as info:
                await client.poll(KEY, "id with space&x=1")
        finally:
            await client.aclose()
    assert info.value.retry_after == 3.0
    request_line = heads[0].split(b"\r\n")[0]
    assert request_line == b"GET /api/v1/generate?task_id=id+with+space%26x%3D1 HTTP/1.1"
    assert f"\r\nAuthorization: Bearer {KEY.secret}\r\n".encode() in heads[0]
