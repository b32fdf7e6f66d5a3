"""The transport the bot's own provider clients use (aiohttp), over real sockets: requests,
downloads (redirects, expiry, size caps, timeouts), cookies, proxies from the environment and
how each failure is sorted (whether a request may be sent again)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from tmbot.domain import ApiKey
from tmbot.errors import DownloadFailed, ProviderUnavailable
from tmbot.providers import TasteMachineClient
from tmbot.providers.http import USER_AGENT, ProviderHttp
from tmbot.providers.transport import Failure, WireFailure, aiohttp_failures, env_proxy

KEY = ApiKey("tm_live_S3cretKeyValue0123456789")
LABEL = "The Taste Machine"
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 5000


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1, port 0; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def owned(base: str, *, max_download_bytes: int = 1 << 20) -> AsyncIterator[ProviderHttp]:
    http = ProviderHttp(
        label=LABEL, base_url=base, client=None, timeout=2.0, max_download_bytes=max_download_bytes
    )
    try:
        yield http
    finally:
        await http.aclose()


async def test_a_request_carries_the_key_json_and_user_agent_and_no_cookies() -> None:
    seen: list[web.Request] = []
    bodies: list[object] = []

    async def create(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(json.loads(await request.read()))
        response = web.json_response({"ok": len(seen)})
        response.set_cookie("session", "from-another-tenant")
        return response

    app = web.Application()
    app.router.add_post("/create", create)
    async with serving(app) as base, owned(base.replace("127.0.0.1", "localhost")) as http:
        # (a name, not an address: aiohttp's default jar ignores cookies from addresses)
        assert await http.call("POST", "/create", key=KEY, json_body={"brief": "café"}) == {"ok": 1}
        assert await http.call("POST", "/create", key=KEY, json_body={"n": 2}) == {"ok": 2}
    first, second = seen
    assert first.headers["Authorization"] == f"Bearer {KEY.secret}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"] == USER_AGENT
    assert bodies == [{"brief": "café"}, {"n": 2}]
    # one client serves every tenant's key: a cookie one answer sets is never sent back
    assert "Cookie" not in second.headers


async def test_download_follows_redirects_without_the_key() -> None:
    seen: list[web.Request] = []

    async def old(request: web.Request) -> web.Response:
        seen.append(request)
        raise web.HTTPFound("/new.png")

    async def new(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/old.png", old)
    app.router.add_get("/new.png", new)
    async with serving(app) as base, owned(base) as http:
        assert await http.download(f"{base}/old.png?sig=abc") == PNG
    assert [r.path for r in seen] == ["/old.png", "/new.png"]
    assert all("Authorization" not in r.headers for r in seen)


async def test_download_expired_after_a_redirect_and_a_redirect_loop() -> None:
    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/gone")

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    app = web.Application()
    app.router.add_get("/hop", hop)
    app.router.add_get("/gone", gone)
    app.router.add_get("/loop", loop)
    async with serving(app) as base, owned(base) as http:
        with pytest.raises(DownloadFailed) as expired:
            await http.download(f"{base}/hop")
        with pytest.raises(DownloadFailed) as looping:
            await http.download(f"{base}/loop")
    assert expired.value.expired and expired.value.status == 410
    assert looping.value.transient and not looping.value.expired


async def test_download_size_caps_declared_and_streamed() -> None:
    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 2000)

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        for _ in range(5):
            await response.write(b"x" * 400)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/declared", declared)
    app.router.add_get("/streamed", streamed)
    async with serving(app) as base, owned(base, max_download_bytes=1000) as http:
        for path in ("/declared", "/streamed"):
            with pytest.raises(DownloadFailed, match="larger") as info:
                await http.download(base + path)
            assert not info.value.transient


async def test_download_timeout_is_transient() -> None:
    release = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"x" * 100)
        await release.wait()  # the rest never comes before the client gives up
        return response

    app = web.Application()
    app.router.add_get("/stalls", stalls)
    async with serving(app) as base:
        http = ProviderHttp(label=LABEL, base_url=base, client=None, timeout=0.3)
        try:
            with pytest.raises(DownloadFailed, match="timed out") as info:
                await http.download(f"{base}/stalls")
        finally:
            release.set()
            await http.aclose()
    assert info.value.transient


@pytest.fixture
def clean_proxy_cache() -> Iterator[None]:
    env_proxy.cache_clear()
    yield
    env_proxy.cache_clear()


async def test_requests_go_through_the_environments_proxy_unless_no_proxy(
    monkeypatch: pytest.MonkeyPatch, clean_proxy_cache: None
) -> None:
    lines: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        lines.append(f"{request.method} {request.url}")
        return web.json_response({"via": "proxy"})

    async def direct(request: web.Request) -> web.Response:
        return web.json_response({"via": "direct"})

    proxy_app = web.Application()
    proxy_app.router.add_route("*", "/{tail:.*}", proxy)
    api = web.Application()
    api.router.add_get("/state", direct)
    async with serving(proxy_app) as proxy_url, serving(api) as base:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "")
        # an unresolvable name only a proxy can reach
        async with owned("http://api.provider.invalid") as http:
            assert await http.call("GET", "/state", key=KEY) == {"via": "proxy"}
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        env_proxy.cache_clear()
        async with owned(base) as http:
            assert await http.call("GET", "/state", key=KEY) == {"via": "direct"}
    assert lines == ["GET http://api.provider.invalid/state"]


async def test_a_closed_client_sends_nothing() -> None:
    hits: list[str] = []

    async def state(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/state", state)
    async with serving(app) as base:
        client = TasteMachineClient(base, timeout=2.0)
        await client.aclose()
        with pytest.raises(ProviderUnavailable, match="client closed"):
            await client.poll(KEY, "t")
        with pytest.raises(DownloadFailed):
            await client.download(f"{base}/state")
    assert hits == []


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("api.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        # the connection never opened: the create may be sent again, nothing was charged
        (_connector_error(), Failure.UNSENT),
        (aiohttp.ConnectionTimeoutError("connect"), Failure.UNSENT),
        # the request may have reached the provider: never sent again blindly
        (aiohttp.SocketTimeoutError("read"), Failure.TIMEOUT),
        (TimeoutError(), Failure.TIMEOUT),
        (aiohttp.ServerDisconnectedError(), Failure.BROKEN),
        (aiohttp.ClientPayloadError("truncated"), Failure.BROKEN),
        (ConnectionResetError(104, "reset"), Failure.BROKEN),
    ],
)
def testaiohttp_failures_are_sorted_by_whether_the_request_left(
    raised: BaseException, kind: Failure
) -> None:
    with pytest.raises(WireFailure) as info, aiohttp_failures():
        raise raised
    assert info.value.kind is kind
    assert info.value.__cause__ is None and info.value.__suppress_context__
