"""Running chat adapters for real: one process, one event loop, one runtime (store, engine,
scheduler, a dispatcher per platform) shared by every adapter that is configured.

``tmbot run`` serves Slack and Discord together; ``tmbot slack`` and ``tmbot discord`` are
the same runner with one adapter. The order is always the same:

1. the runtime opens with every adapter's notifier;
2. the HTTP server starts (Slack's HTTP mode with ``/healthz`` and ``/readyz`` beside
   ``/slack/events``, or the health routes alone on ``--health-port``);
3. every adapter connects (Slack: Socket Mode connected or the endpoint served; Discord:
   the gateway ready), then unfinished work resumes and ``ready`` is printed;
4. on SIGTERM/SIGINT no new request is taken (Slack answers "restarting", Discord's gateway
   closes), running work gets ``TMBOT_SHUTDOWN_GRACE`` seconds, and the runtime closes:
   what is left is stored and resumed by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from tmbot import ConfigError, Engine
from tmbot.config import Config
from tmbot.health import Check, add_routes
from tmbot.ports import Notifier
from tmbot.redact import RedactingFilter
from tmbot.runtime import open_runtime
from tmbot.shutdown import Stopper

log = logging.getLogger(__name__)

NO_PLATFORM = (
    "No chat platform is configured: set SLACK_BOT_TOKEN (with SLACK_APP_TOKEN for Socket "
    "Mode, or SLACK_SIGNING_SECRET for HTTP mode) and/or DISCORD_TOKEN (see .env.example); "
    "to try tmbot without any, run `make demo`."
)


class Adapter(Protocol):
    """One chat platform, as the runner drives it."""

    @property
    def platform(self) -> str: ...

    @property
    def notifier(self) -> Notifier: ...

    def attach(self, engine: Engine, stopping: Callable[[], bool]) -> None:
        """Wire the engine in; ``stopping`` is True once no new request may be taken."""

    def web_app(self) -> web.Application | None:
        """The routes this adapter serves over HTTP (Slack's HTTP mode), or None."""

    async def start(self) -> str:
        """Connect; return once connected (raise ConfigError when refused). Returns how it
        runs, for the log line (``Socket Mode``, ``gateway``…)."""

    async def connected(self) -> bool:
        """Readiness: still connected."""

    async def stop_taking(self) -> None:
        """Take no new requests (the grace period follows)."""

    async def failed(self) -> None:
        """Return when the adapter's connection has ended for good (never, normally)."""

    async def close(self) -> None: ...


async def serve(
    config: Config,
    adapters: Sequence[Adapter],
    *,
    redactor: RedactingFilter | None,
    name: str,
    host: str,
    port: int | None,
    stopper: Stopper,
    port_flag: str | None = None,
) -> int:
    """Run ``adapters`` until ``stopper`` is set. ``port``: where the HTTP server listens
    (the Slack endpoint when an adapter serves one, the health routes always); None: no
    HTTP server; ``port_flag``: the option that set it, for a refusal (by default ``--port``
    when an adapter serves routes, else ``--health-port``). Returns the exit code (1 when an
    adapter's connection ended by itself)."""
    if not adapters:
        raise ConfigError(NO_PLATFORM)
    notifiers = {a.platform: a.notifier for a in adapters}
    code = 0
    runner: web.AppRunner | None = None
    try:
        async with open_runtime(config, notifiers, redactor=redactor) as rt:
            for adapter in adapters:
                adapter.attach(rt.engine, lambda: stopper.stopping)
            checks: dict[str, Check] = dict(rt.readiness())
            for adapter in adapters:
                checks[adapter.platform] = adapter.connected
            if port is not None:
                runner = await _listen(
                    adapters, checks, name=name, host=host, port=port, flag=port_flag
                )
            modes = await _start(adapters, stopper, name=name)
            if modes is not None:
                await rt.engine.resume()
                print(f"tmbot {name}: ready ({', '.join(modes)})", flush=True)
                code = await _until_stopped(adapters, stopper)
            for adapter in adapters:
                await adapter.stop_taking()
            await stopper.settle(rt.settled, config.shutdown_grace)
    finally:
        for adapter in adapters:
            try:
                await adapter.close()
            except Exception:
                log.exception("closing the %s adapter failed", adapter.platform)
        if runner is not None:
            await runner.cleanup()
    print(f"tmbot {name}: stopped", file=sys.stderr, flush=True)
    return code


async def _listen(
    adapters: Sequence[Adapter],
    checks: dict[str, Check],
    *,
    name: str,
    host: str,
    port: int,
    flag: str | None,
) -> web.AppRunner:
    served = next((app for a in adapters if (app := a.web_app()) is not None), None)
    app = served if served is not None else web.Application()
    add_routes(app, checks)
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        if flag is None:
            flag = "--port" if served is not None else "--health-port"
        raise ConfigError(
            f"tmbot {name} cannot listen on {host} port {port} "
            f"({exc.strerror or 'address unavailable'}); pick another with {flag}."
        ) from None
    bound = runner.addresses[0][1]
    if served is not None:
        print(f"tmbot {name}: listening on http://{host}:{bound}/slack/events", flush=True)
    print(f"tmbot {name}: health on http://{host}:{bound}/readyz", flush=True)
    return runner


async def _start(adapters: Sequence[Adapter], stopper: Stopper, *, name: str) -> list[str] | None:
    """Connect every adapter together; None when the stop came first."""
    starting: asyncio.Future[list[str]] = asyncio.ensure_future(_start_all(adapters))
    stop: asyncio.Future[object] = asyncio.ensure_future(stopper.event.wait())
    either: list[asyncio.Future[object]] = [starting, stop]  # type: ignore[list-item]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
        return None
    modes: list[str] = starting.result()  # raises an adapter's refusal
    for adapter, mode in zip(adapters, modes, strict=True):
        print(f"tmbot {name}: {adapter.platform} connected ({mode})", flush=True)
    return modes


async def _start_all(adapters: Sequence[Adapter]) -> list[str]:
    """Every adapter's ``start()`` in one task group: when one is refused, the others are
    cancelled and awaited before its error is raised (nothing keeps connecting while the
    adapters close), and that error is raised alone, not in an ExceptionGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(a.start(), name=f"start {a.platform}") for a in adapters]
    except BaseExceptionGroup as failed:
        errors = failed.exceptions
        raise next((e for e in errors if isinstance(e, ConfigError)), errors[0]) from None
    return [task.result() for task in tasks]


async def _until_stopped(adapters: Sequence[Adapter], stopper: Stopper) -> int:
    stop: asyncio.Future[object] = asyncio.ensure_future(stopper.event.wait())
    ended: dict[asyncio.Future[object], Adapter] = {
        asyncio.ensure_future(a.failed()): a for a in adapters
    }
    try:
        done, _ = await asyncio.wait([stop, *ended], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stop, *ended):
            task.cancel()
    lost = [ended[t] for t in done if t in ended]
    if lost and not stopper.stopping:
        for adapter in lost:
            log.error("the %s connection ended; stopping", adapter.platform)
        stopper.stop("connection lost")
        return 1
    return 0
