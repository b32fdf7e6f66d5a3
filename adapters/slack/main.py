"""``tmbot slack``: Socket Mode when ``SLACK_APP_TOKEN`` is set (unless ``--http``), else
HTTP mode serving ``POST /slack/events``. ``SLACK_BOT_TOKEN`` always, ``SLACK_SIGNING_SECRET``
for HTTP mode, ``SLACK_API_URL`` to point the Web API elsewhere (tests, proxies)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Mapping

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import build_app, key_label, web_client
from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import PLATFORM, SlackNotifier, slack_error
from tmbot import ConfigError
from tmbot.config import Config
from tmbot.redact import RedactingFilter
from tmbot.runtime import open_runtime

log = logging.getLogger(__name__)


def _required(env: Mapping[str, str], name: str, why: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; {why}.")
    return value


async def run(
    config: Config,
    env: Mapping[str, str],
    *,
    redactor: RedactingFilter | None,
    http: bool = False,
    host: str = "0.0.0.0",  # noqa: S104 - Slack must reach the endpoint
    port: int = 3000,
    stop: asyncio.Event | None = None,
    signals: bool = True,
) -> int:
    """Run until SIGINT/SIGTERM (``signals``) or ``stop`` is set."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535 (0 picks a free one), not {port}.")
    token = _required(env, "SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token (xoxb-…)")
    app_token = (env.get("SLACK_APP_TOKEN") or "").strip()
    socket_mode = bool(app_token) and not http
    secret = None
    if not socket_mode:
        secret = _required(
            env,
            "SLACK_SIGNING_SECRET",
            "HTTP mode needs the app's Signing Secret (or set SLACK_APP_TOKEN for Socket Mode)",
        )
    if redactor is not None:
        for value in (token, app_token, secret):
            if value:
                redactor.register(value)
    client = web_client(token, env.get("SLACK_API_URL") or None)
    try:
        await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(
            f"SLACK_BOT_TOKEN is not valid (Slack answered {slack_error(exc) or 'an error'})."
        ) from None
    except SlackClientError as exc:
        raise ConfigError(f"Slack's Web API cannot be reached ({type(exc).__name__}).") from None

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve(
            config, client, redactor, secret, app_token if socket_mode else None, host, port, stop
        )
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _serve(
    config: Config,
    client: AsyncWebClient,
    redactor: RedactingFilter | None,
    secret: str | None,
    app_token: str | None,
    host: str,
    port: int,
    stop: asyncio.Event,
) -> int:
    notifier = SlackNotifier(client)
    async with open_runtime(config, {PLATFORM: notifier}, redactor=redactor) as rt:
        notifier.key_label = key_label(rt.engine)
        app = build_app(SlackHandlers(rt.engine, client), client, signing_secret=secret)
        if app_token is not None:
            handler = AsyncSocketModeHandler(app, app_token=app_token)
            try:
                await handler.connect_async()  # type: ignore[no-untyped-call]
            except SlackApiError as exc:
                raise ConfigError(
                    f"SLACK_APP_TOKEN is not valid (Slack answered {slack_error(exc)})."
                ) from None
            print("tmbot slack: connected in Socket Mode", flush=True)
            try:
                await rt.engine.resume()
                await stop.wait()
            finally:
                await handler.close_async()  # type: ignore[no-untyped-call]
        else:
            runner = web.AppRunner(app.web_app(path="/slack/events"), shutdown_timeout=2.0)
            await runner.setup()
            try:
                site = web.TCPSite(runner, host, port)
                try:
                    await site.start()
                except OSError as exc:
                    raise ConfigError(
                        f"tmbot slack cannot listen on {host} port {port} "
                        f"({exc.strerror or 'address unavailable'}); pick another with --port."
                    ) from None
                bound = runner.addresses[0][1]
                print(
                    f"tmbot slack: listening on http://{host}:{bound}/slack/events",
                    flush=True,
                )
                await rt.engine.resume()
                await stop.wait()
            finally:
                await runner.cleanup()
    print("tmbot slack: stopped", file=sys.stderr, flush=True)
    return 0
