"""Bolt wiring: the Web API client (429s honoured), the AsyncApp and its listeners, and
how a card names the key that pays."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import KeyLabel, ProgressSlot
from tmbot import Engine, Generation, KeyScope

DEFAULT_API_URL = "https://slack.com/api/"


def web_client(token: str, base_url: str | None = None, *, rate_retries: int = 3) -> AsyncWebClient:
    """A Web API client that waits out ``429``s (``Retry-After``) and connection resets."""
    url = base_url or DEFAULT_API_URL
    if not url.endswith("/"):
        url += "/"
    return AsyncWebClient(
        token=token,
        base_url=url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_retries),
        ],
    )


def build_app(
    handlers: SlackHandlers, client: AsyncWebClient, *, signing_secret: str | None
) -> AsyncApp:
    """An AsyncApp with tmbot's listeners. ``signing_secret`` None: Socket Mode (unsigned)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        raise_error_for_unhandled_request=False,
        ignoring_self_events_enabled=True,
    )
    handlers.register(app)
    return app


def key_label(engine: Engine) -> KeyLabel:
    """Names the paying key on a card by its fingerprint (``alice's key …a1b2``, ``the team
    key …a1b2``); the card is public, so it names whose key it is."""

    async def label(gen: Generation) -> str | None:
        binding = await engine.store.get_key(gen.key)
        if binding is None:
            return None
        whose = f"{gen.actor.label}'s key" if gen.key.scope is KeyScope.USER else "the team key"
        return f"{whose} {binding.fingerprint}"

    return label


#: how long a generation's progress-edit slots are kept (its progress is long over by then)
PROGRESS_SLOT_TTL = 3600.0


def progress_slot(engine: Engine) -> ProgressSlot:
    """Progress edit ``n`` of a generation, taken once in the shared store (several
    processes may hand over one generation's events, so the per-card cap holds across
    them)."""

    async def take(generation_id: str, n: int) -> bool:
        return await engine.first_time(
            "slack-progress", f"{generation_id}#{n}", ttl=PROGRESS_SLOT_TTL
        )

    return take
