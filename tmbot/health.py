"""Health endpoints for hosts and load balancers.

``GET /healthz`` answers 200 while the process is alive. ``GET /readyz`` answers 200 only
when every readiness check passes — the store answers, each configured adapter is connected,
the engine runs — and 503 otherwise, naming what is not ready (never a secret). The routes
can join an existing aiohttp app (Slack's HTTP mode serves them beside ``/slack/events``) or
run on their own port (:func:`serve`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from aiohttp import web

#: a readiness check: True when ready (it may raise, which counts as not ready)
Check = Callable[[], Awaitable[bool]]

#: seconds one readiness check may take
CHECK_WAIT = 2.0


async def _ready(checks: Mapping[str, Check]) -> dict[str, bool]:
    async def run(check: Check) -> bool:
        try:
            async with asyncio.timeout(CHECK_WAIT):
                return await check()
        except Exception:
            return False

    results = await asyncio.gather(*(run(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


def add_routes(app: web.Application, checks: Mapping[str, Check]) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        results = await _ready(checks)
        ready = all(results.values())
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


@asynccontextmanager
async def serve(
    checks: Mapping[str, Check], *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """The health routes on their own port; yields the base URL."""
    app = web.Application()
    add_routes(app, checks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound = runner.addresses[0][1] if runner.addresses else port
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
