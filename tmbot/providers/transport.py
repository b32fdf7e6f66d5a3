"""How a provider client's requests reach the wire: aiohttp for the clients the bot makes,
or an httpx client the caller injects (a proxy, mounts, httpx's MockTransport in tests).

:class:`ProviderHttp` (:mod:`tmbot.providers.http`) holds the rules (headers, statuses,
size caps, error text); a transport only moves bytes and sorts its library's failures into
:class:`WireFailure` kinds, which decide whether a request may be sent again.

Why aiohttp by default: when 1,000 generations end at once, one event loop polls and
downloads all of them, and every CPU millisecond per request is delivery time. Measured
against a local aiohttp server (2,000 requests, 32 at once, client CPU per request): httpx
1.3-1.6 ms for a poll and 1.3-1.5 ms for a 60 kB download, httpx over an aiohttp transport
0.7 and 0.9-1.0 ms, aiohttp itself 0.17-0.28 and 0.28 ms. aiohttp parses HTTP in C and is
already installed (discord.py and slack_sdk use it).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
import httpx
from yarl import URL

KEEPALIVE_SECONDS: Final = 5.0


class Failure(enum.Enum):
    UNSENT = "unsent"  # the connection never opened: nothing reached the provider
    TIMEOUT = "timeout"  # no answer in time; the request may have been received
    BROKEN = "broken"  # the connection failed after the request may have left
    CLOSED = "closed"  # the client was closed under us: nothing was sent


class WireFailure(Exception):
    """A request that got no HTTP answer. Carries no URL, header or body text."""

    def __init__(self, kind: Failure, cause: str) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.cause = cause  # the library's exception class name, for debug logs


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read whole."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Body:
    """An answer whose body is still on the wire (a download): ``chunks()`` reads it."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    chunks: Callable[[], AsyncIterator[bytes]]


async def _reading(
    chunks: AsyncIterator[bytes], failures: Callable[[], contextlib.AbstractContextManager[None]]
) -> AsyncIterator[bytes]:
    with failures():
        async for chunk in chunks:
            yield chunk


class Transport(Protocol):
    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> Answer:
        """One request, no redirects followed; raises WireFailure."""
        ...

    def stream(self, url: str) -> contextlib.AbstractAsyncContextManager[Body]:
        """GET ``url`` with no auth, redirects followed; raises WireFailure."""
        ...

    async def aclose(self) -> None: ...


# --- aiohttp: the clients the bot makes -------------------------------------------------


class AiohttpTransport:
    """One aiohttp session (opened on first use, inside the running loop) with at most
    ``limit`` connections, every one kept alive. Cookies are never kept: one client serves
    every tenant's key."""

    def __init__(self, *, limit: int, timeout: float, tls: ssl.SSLContext, user_agent: str) -> None:
        self._limit = limit
        self._tls = tls
        self._user_agent = user_agent
        # connect covers waiting for a connection and opening it: a request that times out
        # there never left
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise WireFailure(Failure.CLOSED, "closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # an idle connection is dropped after 5 s, as httpx does: a server that
                # closes idle ones sooner than aiohttp's 15 s would make a create fail on a
                # dead connection, with no way to know whether it was received
                connector=aiohttp.TCPConnector(
                    limit=self._limit, ssl=self._tls, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                headers={"User-Agent": self._user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
                # not trust_env: it reads ~/.netrc in a worker thread for every request
                # (a third of the loop's time at load); env_proxy reads the proxy once
            )
        return self._session

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> Answer:
        session = self._open()
        with aiohttp_failures():
            target = URL(url, encoded=True)
            async with session.request(
                method,
                target,
                proxy=env_proxy(target.scheme, target.host or ""),
                headers=headers,
                data=content,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return Answer(response.status, response.headers, body)

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[Body]:
        session = self._open()
        with aiohttp_failures():
            target = URL(url)
            proxy = env_proxy(target.scheme, target.host or "")
            async with session.get(
                target, allow_redirects=True, max_redirects=20, proxy=proxy
            ) as response:
                yield Body(
                    response.status,
                    response.headers,
                    lambda: _reading(response.content.iter_any(), aiohttp_failures),
                )

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


@functools.lru_cache(maxsize=256)
def env_proxy(scheme: str, host: str) -> str | None:
    """The proxy ``HTTP_PROXY``/``HTTPS_PROXY`` name for this scheme and host, unless
    ``NO_PROXY`` exempts it (what httpx honoured): read once per host."""
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


@contextlib.contextmanager
def aiohttp_failures() -> Iterator[None]:
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # connect timeout: nothing left
        raise WireFailure(Failure.UNSENT, type(exc).__name__) from None
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS handshake, proxy
        raise WireFailure(Failure.UNSENT, type(exc).__name__) from None
    except TimeoutError as exc:  # aiohttp's read timeout and asyncio's
        raise WireFailure(Failure.TIMEOUT, type(exc).__name__) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # a reset, a bad answer
        raise WireFailure(Failure.BROKEN, type(exc).__name__) from None


# --- httpx: an injected client ----------------------------------------------------------


class HttpxTransport:
    """An httpx client the caller owns (it is never closed here)."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = httpx.Timeout(timeout)

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> Answer:
        with httpx_failures():
            response = await self._client.request(
                method, url, headers=headers, content=content, timeout=self._timeout
            )
        return Answer(response.status_code, response.headers, response.content)

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[Body]:
        with httpx_failures():
            async with self._client.stream(
                "GET", url, follow_redirects=True, timeout=self._timeout
            ) as response:
                yield Body(
                    response.status_code,
                    response.headers,
                    lambda: _reading(response.aiter_bytes(), httpx_failures),
                )

    async def aclose(self) -> None:
        return None


@contextlib.contextmanager
def httpx_failures() -> Iterator[None]:
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise WireFailure(Failure.UNSENT, type(exc).__name__) from None
    except httpx.TimeoutException as exc:
        raise WireFailure(Failure.TIMEOUT, type(exc).__name__) from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise WireFailure(Failure.BROKEN, type(exc).__name__) from None
    except RuntimeError as exc:  # e.g. the client was closed under us
        raise WireFailure(Failure.CLOSED, type(exc).__name__) from None
