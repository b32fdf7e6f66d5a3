"""The aiohttp server that serves both simulated APIs, their image CDN and the /_sim controls."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from tmbot.clock import Clock
from tmbot.simulator.common import JSON, Answer, ProviderApi
from tmbot.simulator.config import SimConfig, check_changes
from tmbot.simulator.render import render_png
from tmbot.simulator.state import TM, Phase, SimState, Task
from tmbot.simulator.stats import SimStats, key_id
from tmbot.simulator.tastemachine import TasteMachineApi
from tmbot.simulator.vtrix import VtrixApi

log = logging.getLogger(__name__)

#: Retry-After (provider seconds) of a 429 injected by :meth:`Simulator.burst_429`.
BURST_RETRY_AFTER = 2
#: Rendered PNGs kept in memory (least recently downloaded dropped first).
PNG_CACHE_SIZE = 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTML_MALFORMED = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing the API.</h1></body></html>"
)
_HTML_504 = (
    "<html><head><title>504 Gateway Time-out</title></head>"
    "<body><center><h1>504 Gateway Time-out</h1></center></body></html>"
)
_XML_EXPIRED = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    "<Message>Request has expired</Message></Error>"
)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _respond(answer: Answer) -> web.Response:
    text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
    return web.Response(
        status=answer.status,
        text=text,
        content_type=answer.content_type,
        headers=dict(answer.headers),
    )


class _NotJson:
    """The body of a create request that was not JSON at all."""


class Simulator:
    """Both image APIs in one local aiohttp server. See :mod:`tmbot.simulator`."""

    def __init__(self, config: SimConfig = SimConfig()) -> None:  # noqa: B008 (frozen)
        self._state = SimState(config)
        self._tm = TasteMachineApi()
        self._vtrix = VtrixApi()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()
        self._renders: dict[str, asyncio.Task[bytes]] = {}
        self._pngs: OrderedDict[str, bytes] = OrderedDict()
        self._stock: dict[str, bytes] = {}

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024)
            await site.start()
            bound = runner.addresses[0][1]
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        shown = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{shown}:{bound}"
        log.info("simulator listening on %s", self._base_url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._stopping.set()  # releases requests hanging in the timeout fault
        for task in self._renders.values():
            task.cancel()
        self._renders.clear()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    # -- knobs ---------------------------------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._state.config

    @property
    def clock(self) -> Clock:
        """The simulator's clock: completions and expires_at are on its ``wall()``."""
        return self._state.clock

    def stats(self) -> SimStats:
        return self._state.stats()

    def tasks(self) -> list[dict[str, Any]]:
        """Every task created so far, oldest first, as the create asked for it (key id,
        brief, parameters, reference image URLs): what tests assert a request carried."""
        return [
            {
                "task_id": t.task_id,
                "provider": t.provider,
                "key_id": t.kid,
                "brief": t.brief,
                "model": t.model,
                "aspect_ratio": t.aspect_ratio,
                "resolution": t.resolution,
                "taste": t.taste,
                "image_urls": list(t.image_urls),
            }
            for t in self._state.tasks.values()
        ]

    def configure(self, **changes: Any) -> None:
        """Change SimConfig fields at runtime (ValueError for unknown fields or bad values)."""
        check_changes(changes)
        self._state.reconfigure(replace(self._state.config, **changes))

    def set_credits(self, key: str, credits: int) -> None:
        """Set a key's balance (Taste Machine). For Vtrix, a balance <= 0 means 403."""
        self._state.set_credits(key, credits)

    def release(self) -> int:
        """Let every held task (``hold_tasks``) end: now, or when its duration is up if that
        is later. How many were held."""
        return self._state.release()

    def burst_429(self, key: str | None, count: int) -> None:
        """The next ``count`` API requests (by ``key``, or by anyone when None) answer 429."""
        self._state.add_burst(key, count)

    # -- the app -------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        tm: ProviderApi = self._tm
        vtrix: ProviderApi = self._vtrix

        def api(provider: ProviderApi, op: Literal["create", "poll"]) -> _Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                return await self._api(request, provider, op)

            return handler

        app.router.add_post("/api/v1/generate", api(tm, "create"))
        app.router.add_get("/api/v1/generate", api(tm, "poll"))
        app.router.add_post("/model/v1/generation", api(vtrix, "create"))
        app.router.add_get("/model/v1/generation/task/{task_id}", api(vtrix, "poll"))
        app.router.add_get("/cdn/{name}", self._image)
        app.router.add_get("/_sim/stats", self._sim_stats)
        app.router.add_get("/_sim/tasks", self._sim_tasks)
        app.router.add_post("/_sim/config", self._sim_config)
        app.router.add_post("/_sim/keys", self._sim_keys)
        app.router.add_post("/_sim/burst", self._sim_burst)
        app.router.add_post("/_sim/release", self._sim_release)
        app.router.add_get("/", self._index)
        return app

    async def _api(
        self, request: web.Request, api: ProviderApi, op: Literal["create", "poll"]
    ) -> web.StreamResponse:
        state = self._state
        key = _bearer(request)
        kid = None if key is None else key_id(key)
        counters = state.counters_for(kid)
        for c in counters:
            c.requests += 1
            if op == "create":
                c.creates += 1
            else:
                c.polls += 1

        # Faults that strike before the request is looked at.
        cfg = state.config
        if state.chance(cfg.server_error_rate):
            for c in counters:
                c.server_errors += 1
            return _respond(api.server_error())
        if state.chance(cfg.timeout_rate):
            for c in counters:
                c.server_errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=cfg.hang_seconds)
            return _respond(Answer(504, _HTML_504, content_type="text/html"))

        # Read the body before any check: from here to the answer nothing awaits, so the
        # window and slot checks and their bookkeeping happen atomically.
        body: object = None
        if op == "create":
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = _NotJson()

        refusal = api.authenticate(state, key)
        if refusal is not None:
            return _respond(refusal)
        assert key is not None and kid is not None  # noqa: S101 (authenticate refuses None)

        account = state.account(api.name, kid)
        now = state.now()
        state.settle(kid, account, now)
        if state.take_burst(kid):
            answer = api.rate_limited(BURST_RETRY_AFTER)
        else:
            rpm, _ = api.limits(cfg)
            retry = state.rate_retry_after(account, rpm, now)
            if retry is not None:
                answer = api.rate_limited(retry)
            else:
                origin = f"{request.scheme}://{request.host}"
                if op == "create":
                    answer = api.create(state, key=key, account=account, body=body, origin=origin)
                else:
                    task_id = request.match_info.get("task_id") or request.query.get("task_id")
                    answer = api.poll(state, key=key, task_id=task_id, origin=origin)
        if answer.status == 429:
            for c in counters:
                c.rate_limited += 1
        else:
            account.window.append(now)
        if answer.ok and state.chance(cfg.malformed_rate):
            answer = self._garble(answer)
        return _respond(answer)

    def _garble(self, answer: Answer) -> Answer:
        shape = self._state.rng.randrange(3)
        if shape == 0 or isinstance(answer.body, str):
            return Answer(200, _HTML_MALFORMED, content_type="text/html")
        if shape == 1:
            missing = {"task_id", "id", "status"}
            kept = {k: v for k, v in answer.body.items() if k not in missing}
            return Answer(answer.status, {**kept, "ok": True})
        text = json.dumps(answer.body)
        return Answer(answer.status, text[: max(1, len(text) // 2)], content_type=JSON)

    # -- images --------------------------------------------------------------------------

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        state = self._state
        task = state.by_token.get(name.removesuffix(".png")) if name.endswith(".png") else None
        if task is None:
            return web.Response(status=404, text="Not Found")
        for c in state.counters_for(task.kid):
            c.downloads += 1
        now = state.now()
        if task.phase(now) is not Phase.COMPLETE:
            return web.Response(status=404, text="Not Found")
        if task.expired(now):
            if task.provider == TM:
                return web.Response(status=410, text="Gone: this image link has expired")
            return web.Response(status=403, text=_XML_EXPIRED, content_type="application/xml")
        png = await self._png(task)
        return web.Response(
            body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"}
        )

    async def _png(self, task: Task) -> bytes:
        caption = f"{task.model} · {task.resolution} · {task.aspect_ratio}"
        stock = self._state.config.stock_images
        # stock pictures are few and kept apart from the LRU of drawn ones
        key = f"stock {caption}" if stock else task.token
        cached = (self._stock if stock else self._pngs).get(key)
        if cached is not None:
            if not stock:
                self._pngs.move_to_end(key)
            return cached
        render = self._renders.get(key)
        if render is None:
            render = asyncio.create_task(
                asyncio.to_thread(
                    render_png,
                    brief="tmbot simulator" if stock else task.brief,
                    aspect_ratio=task.aspect_ratio,
                    resolution=task.resolution,
                    caption=caption,
                )
            )
            self._renders[key] = render
            render.add_done_callback(functools.partial(self._rendered, key, stock))
        return await asyncio.shield(render)

    def _rendered(self, key: str, stock: bool, task: asyncio.Task[bytes]) -> None:
        if self._renders.get(key) is task:
            del self._renders[key]
        if task.cancelled() or task.exception() is not None:
            return
        if stock:
            self._stock[key] = task.result()
            return
        self._pngs[key] = task.result()
        while len(self._pngs) > PNG_CACHE_SIZE:
            self._pngs.popitem(last=False)

    # -- controls ------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="tmbot simulator: The Taste Machine and Vtrix nano_banana_2\n")

    async def _sim_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats().to_json())

    async def _sim_tasks(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"tasks": self.tasks()})

    async def _json_object(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        return body

    async def _sim_config(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            self.configure(**body)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.config))

    async def _sim_keys(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        key, credits = body.get("key"), body.get("credits")
        if not isinstance(key, str) or not key or type(credits) is not int:
            return web.json_response(
                {"error": 'expected {"key": string, "credits": integer}'}, status=400
            )
        self.set_credits(key, credits)
        return web.json_response({"key_id": key_id(key), "credits": credits})

    async def _sim_release(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"released": self.release()})

    async def _sim_burst(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        key, count = body.get("key"), body.get("count")
        if not (key is None or isinstance(key, str)) or type(count) is not int:
            return web.json_response(
                {"error": 'expected {"key": string or null, "count": integer}'}, status=400
            )
        self.burst_429(key, count)
        return web.json_response({"key_id": None if key is None else key_id(key), "count": count})


async def run_server(host: str, port: int, config: SimConfig) -> None:
    """Serve until cancelled, SIGINT or SIGTERM; announce the address on one stdout line."""
    sim = Simulator(config)
    await sim.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signal support (Windows)
        installed.append((sig, previous))
    try:
        sys.stdout.write(
            f"tmbot simulator listening on {sim.base_url} (time scale {config.time_scale:g})\n"
        )
        sys.stdout.flush()
        await stop.wait()
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            if previous is not None:
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, previous)
        await sim.stop()
