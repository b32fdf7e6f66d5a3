"""``tmbot slack``: Socket Mode when ``SLACK_APP_TOKEN`` is set (unless ``--http``), else
HTTP mode serving ``POST /slack/events``. ``SLACK_BOT_TOKEN`` always, ``SLACK_SIGNING_SECRET``
for HTTP mode, ``SLACK_API_URL`` to point the Web API elsewhere (tests, proxies).

:class:`SlackAdapter` is the piece :mod:`adapters.runner` drives (``tmbot slack`` alone,
``tmbot run`` beside Discord); :func:`doctor_check` is ``tmbot doctor``'s Slack line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.runner import serve
from adapters.slack.app import build_app, key_label, progress_slot, web_client
from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import PLATFORM, SlackNotifier, slack_error
from tmbot import ConfigError, Engine
from tmbot.config import Config
from tmbot.doctor import Finding
from tmbot.redact import RedactingFilter
from tmbot.shutdown import Stopper

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("manifest.yml")
EVENTS_PATH = "/slack/events"
DEFAULT_API_URL = "https://slack.com/api/"

#: What slack_sdk's async client raises when Slack's Web API cannot be reached: its own
#: errors, and aiohttp's (ClientConnectorError…), the OS's and timeouts, which it lets through.
UNREACHABLE = (SlackClientError, aiohttp.ClientError, OSError, TimeoutError)


def unreachable(api_url: str | None, exc: BaseException) -> str:
    """The one sentence for an unreachable Web API: the host and the error's kind, never the
    URL's other parts (nor a token)."""
    parts = urlsplit(api_url or DEFAULT_API_URL)
    try:
        port = parts.port
    except ValueError:
        port = None
    where = (parts.hostname or "?") + (f":{port}" if port is not None else "")
    return f"Slack's Web API cannot be reached at {where} ({type(exc).__name__})"


def _required(env: Mapping[str, str], name: str, why: str) -> str:
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; {why}.")
    return value


def configured(env: Mapping[str, str]) -> bool:
    return bool((env.get("SLACK_BOT_TOKEN") or "").strip())


@dataclass(frozen=True)
class SlackSettings:
    token: str
    app_token: str | None  # Socket Mode when set
    signing_secret: str | None  # HTTP mode
    api_url: str | None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, http: bool = False) -> SlackSettings:
        token = _required(
            env, "SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token (xoxb-…)"
        )
        app_token = (env.get("SLACK_APP_TOKEN") or "").strip()
        socket_mode = bool(app_token) and not http
        secret = None
        if not socket_mode:
            secret = _required(
                env,
                "SLACK_SIGNING_SECRET",
                "HTTP mode needs the app's Signing Secret (or set SLACK_APP_TOKEN for Socket Mode)",
            )
        return cls(
            token=token,
            app_token=app_token if socket_mode else None,
            signing_secret=secret,
            api_url=(env.get("SLACK_API_URL") or "").strip() or None,
        )

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.app_token, self.signing_secret) if s)


async def connect_client(settings: SlackSettings) -> AsyncWebClient:
    """The Web API client, its token checked (``auth.test``)."""
    client = web_client(settings.token, settings.api_url)
    try:
        await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(
            f"SLACK_BOT_TOKEN is not valid (Slack answered {slack_error(exc) or 'an error'})."
        ) from None
    except UNREACHABLE as exc:
        raise ConfigError(
            f"{unreachable(settings.api_url, exc)}; check the network, or SLACK_API_URL."
        ) from None
    return client


class SlackAdapter:
    """Slack in Socket Mode or HTTP mode, for :func:`adapters.runner.serve`."""

    platform = PLATFORM

    def __init__(self, settings: SlackSettings, client: AsyncWebClient) -> None:
        self.settings = settings
        self.client = client
        self.notifier = SlackNotifier(client)
        self._app: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._served = False

    def attach(self, engine: Engine, stopping: Callable[[], bool]) -> None:
        self.notifier.key_label = key_label(engine)
        if not engine.coordinator.sole:
            self.notifier.progress_slot = progress_slot(engine)
        handlers = SlackHandlers(engine, self.client, stopping=stopping)
        self._app = build_app(handlers, self.client, signing_secret=self.settings.signing_secret)

    @property
    def app(self) -> AsyncApp:
        if self._app is None:
            raise RuntimeError("SlackAdapter.attach(engine) was not called")
        return self._app

    def web_app(self) -> web.Application | None:
        if self.settings.socket_mode:
            return None
        return self.app.web_app(path=EVENTS_PATH)

    async def start(self) -> str:
        if self.settings.app_token is None:
            self._served = True  # the runner serves the endpoint before starting adapters
            return "HTTP mode"
        handler = AsyncSocketModeHandler(self.app, app_token=self.settings.app_token)
        self._socket = handler  # closed by close(), whether it connects or not
        # slack_sdk's connect() retries every failure forever (a refused app token included),
        # so the token is tried here first: the URL it gets is the one connect() then uses
        try:
            opened = await handler.client.web_client.apps_connections_open(
                app_token=self.settings.app_token
            )
        except SlackApiError as exc:
            raise ConfigError(
                f"SLACK_APP_TOKEN is not valid (Slack answered {slack_error(exc) or 'an error'})."
            ) from None
        except UNREACHABLE as exc:
            raise ConfigError(
                f"{unreachable(self.settings.api_url, exc)}; check the network, or SLACK_API_URL."
            ) from None
        handler.client.wss_uri = str(opened["url"])
        await handler.connect_async()  # type: ignore[no-untyped-call]
        return "Socket Mode"

    async def connected(self) -> bool:
        if self._socket is None:
            return self._served
        return bool(await self._socket.client.is_connected())

    async def stop_taking(self) -> None:
        """Slash commands keep being answered ("restarting") while the grace runs."""

    async def failed(self) -> None:
        """Never returns: slack_sdk's Socket Mode client reconnects by itself, forever (its
        connect loop retries every failure), so a connection only ends for good when
        :meth:`close` ends it; a socket down meanwhile shows in ``/readyz`` (``connected``)."""
        await asyncio.get_running_loop().create_future()

    async def close(self) -> None:
        self._served = False
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None


async def adapter(
    env: Mapping[str, str], *, http: bool, redactor: RedactingFilter | None
) -> SlackAdapter:
    """The settings checked, the secrets registered with the redactor, the token tried."""
    settings = SlackSettings.from_env(env, http=http)
    if redactor is not None:
        for value in settings.secrets():
            redactor.register(value)
    return SlackAdapter(settings, await connect_client(settings))


async def run(
    config: Config,
    env: Mapping[str, str],
    *,
    redactor: RedactingFilter | None,
    http: bool = False,
    host: str = "0.0.0.0",  # noqa: S104 - Slack must reach the endpoint
    port: int = 3000,
    health_port: int | None = None,
    stop: asyncio.Event | None = None,
    signals: bool = True,
) -> int:
    """``tmbot slack``: run until SIGINT/SIGTERM (``signals``) or ``stop`` is set."""
    check_port("--port", port)
    slack = await adapter(env, http=http, redactor=redactor)
    stopper = Stopper()
    if signals:
        stopper.install()
    watcher = asyncio.ensure_future(_forward(stop, stopper)) if stop is not None else None
    try:
        listen = port if not slack.settings.socket_mode else health_port
        return await serve(
            config,
            [slack],
            redactor=redactor,
            name="slack",
            host=host,
            port=listen,
            stopper=stopper,
        )
    finally:
        if watcher is not None:
            watcher.cancel()


async def _forward(stop: asyncio.Event, stopper: Stopper) -> None:
    await stop.wait()
    stopper.stop("asked")


def check_port(flag: str, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"{flag} must be between 0 and 65535 (0 picks a free one), not {port}.")


# --- tmbot doctor -------------------------------------------------------------------------


def manifest_scopes(path: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes ``manifest.yml`` asks for (``oauth_config.scopes.bot``)."""
    scopes: list[str] = []
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.strip() == "bot:":
            inside = True
            continue
        if inside:
            item = stripped.strip()
            if item.startswith("- "):
                scopes.append(item[2:].strip())
            elif item:
                break
    return tuple(scopes)


async def doctor_check(env: Mapping[str, str]) -> Finding:
    """The bot token against Slack (``auth.test``) and its scopes (``x-oauth-scopes``)
    against the manifest's; never prints the token."""
    settings_url = (env.get("SLACK_API_URL") or "").strip() or None
    client = web_client((env.get("SLACK_BOT_TOKEN") or "").strip(), settings_url, rate_retries=1)
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        return Finding(
            "Slack auth",
            False,
            f"Slack refused SLACK_BOT_TOKEN ({slack_error(exc) or 'an error'})",
            "copy the Bot User OAuth Token (xoxb-…) again from the app's OAuth & Permissions "
            "page into SLACK_BOT_TOKEN",
        )
    except UNREACHABLE as exc:
        return Finding(
            "Slack auth",
            False,
            unreachable(settings_url, exc),
            "check the network, or SLACK_API_URL",
        )
    header = next((v for k, v in answer.headers.items() if k.lower() == "x-oauth-scopes"), "")
    if isinstance(header, list):
        header = ",".join(header)
    has = {s.strip() for s in str(header).split(",") if s.strip()}
    missing = [s for s in manifest_scopes() if s not in has]
    team = str(answer.get("team") or answer.get("team_id") or "the workspace")
    if missing:
        return Finding(
            "Slack auth",
            False,
            f"valid for {team}, but missing scopes: {', '.join(missing)}",
            "add them under OAuth & Permissions (or paste adapters/slack/manifest.yml again) "
            "and reinstall the app to the workspace",
        )
    return Finding("Slack auth", True, f"valid for {team}, every scope of the manifest")
