"""TasteMachineClient against httpx.MockTransport: request shapes, every answer variant,
error mapping, transport failures and key hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from tmbot.domain import ApiKey, GenerationSpec, ProviderName, Submission, TaskState, TaskStatus
from tmbot.errors import (
    BadRequest,
    DownloadFailed,
    InsufficientCredits,
    KeyRejected,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from tmbot.providers import ImageProvider, TasteMachineClient, VtrixClient, build_providers
from tmbot.providers.tastemachine import NO_REASON, create_body

KEY = ApiKey("tm_live_Zq9SecretKeyMaterial42")
BASE = "http://tm.test"
EXPIRES = datetime(2026, 4, 14, tzinfo=UTC).timestamp()

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeApi:
    """Answers queued replies in order and records every request."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        return reply if isinstance(reply, httpx.Response) else reply(request)

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def raising(
    exc: type[Exception], message: str = "boom"
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(message, request=request)  # type: ignore[call-arg]

    return handler


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def tm(api: FakeApi) -> AsyncIterator[TasteMachineClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        provider = TasteMachineClient(BASE, client=client)
        yield provider
        await provider.aclose()


def spec(**overrides: object) -> GenerationSpec:
    values: dict[str, object] = {
        "provider": ProviderName.TASTEMACHINE,
        "brief": "A minimal poster for a Tokyo coffee shop",
        "model": "nano-banana-pro",
        "aspect_ratio": "3:4",
        "resolution": "2k",
        "taste": "default",
        "image_urls": ("https://example.com/ref.jpg",),
    }
    values.update(overrides)
    return GenerationSpec(**values)  # type: ignore[arg-type]


ACCEPTED = {
    "task_id": "aBcDeFgHiJkLmNoP",
    "status": "queued",
    "estimated_time_seconds": 30,
    "credits": {"required": 10, "remaining": 830},
}
COMPLETE = {
    "task_id": "aBcDeFgHiJkLmNoP",
    "status": "complete",
    "result": {
        "image_url": "https://cdn.thetastemachine.com/gen/abc123.png",
        "prompt_used": "A softly lit interior of a minimalist Tokyo kissaten...",
        "expires_at": "2026-04-14T00:00:00Z",
    },
    "credits_consumed": 10,
}


# --- protocol & construction --------------------------------------------------------------


def test_is_an_image_provider() -> None:
    client: ImageProvider = TasteMachineClient(BASE)
    assert client.name is ProviderName.TASTEMACHINE


def test_base_url_from_env_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASTEMACHINE_API_URL", raising=False)
    assert TasteMachineClient().base_url == "https://api.thetastemachine.com"
    monkeypatch.setenv("TASTEMACHINE_API_URL", "http://127.0.0.1:9999/")
    assert TasteMachineClient().base_url == "http://127.0.0.1:9999"
    assert TasteMachineClient("http://other:1").base_url == "http://other:1"


async def test_build_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTRIX_API_URL", "http://vtrix.local:81")
    providers = build_providers(tastemachine_url="http://tm.local:80", timeout=3.0)
    try:
        assert set(providers) == {ProviderName.TASTEMACHINE, ProviderName.VTRIX}
        tm_client = providers[ProviderName.TASTEMACHINE]
        vtrix_client = providers[ProviderName.VTRIX]
        assert isinstance(tm_client, TasteMachineClient)
        assert isinstance(vtrix_client, VtrixClient)
        assert tm_client.base_url == "http://tm.local:80"
        assert vtrix_client.base_url == "http://vtrix.local:81"
        assert all(p.name is name for name, p in providers.items())
    finally:
        for provider in providers.values():
            await provider.aclose()


# --- submit ---------------------------------------------------------------------------------


async def test_submit_request_shape(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(202, json=ACCEPTED))
    await tm.submit(KEY, spec())
    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == "http://tm.test/api/v1/generate"
    assert request.headers["authorization"] == f"Bearer {KEY.secret}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "brief": "A minimal poster for a Tokyo coffee shop",
        "model": "nano-banana-pro",
        "aspect_ratio": "3:4",
        "resolution": "2k",
        "taste": "default",
        "image_urls": ["https://example.com/ref.jpg"],
    }


async def test_submit_omits_empty_optional_fields(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(202, json=ACCEPTED))
    await tm.submit(
        KEY,
        spec(model="nano-banana-2", resolution="4K", taste=None, image_urls=(), aspect_ratio="8:1"),
    )
    assert json.loads(api.requests[0].content) == {
        "brief": "A minimal poster for a Tokyo coffee shop",
        "model": "nano-banana-2",
        "aspect_ratio": "8:1",
        "resolution": "4k",
    }


async def test_submit_parses_accepted(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(202, json={**ACCEPTED, "unknown": {"x": 1}}))
    assert await tm.submit(KEY, spec()) == Submission(
        task_id="aBcDeFgHiJkLmNoP",
        estimated_seconds=30.0,
        credits_required=10.0,
        credits_remaining=830.0,
        state=None,
    )


async def test_submit_accepts_numbers_as_strings_and_missing_extras(
    tm: TasteMachineClient, api: FakeApi
) -> None:
    api.reply(
        httpx.Response(
            202,
            json={"task_id": "t1", "estimated_time_seconds": "30", "credits": {"required": "10"}},
        ),
        httpx.Response(
            200, json={"task_id": 12345, "credits": "lots", "estimated_time_seconds": "?"}
        ),
    )
    first = await tm.submit(KEY, spec())
    assert (first.task_id, first.estimated_seconds, first.credits_required) == ("t1", 30.0, 10.0)
    assert first.credits_remaining is None
    second = await tm.submit(KEY, spec())
    assert second == Submission(task_id="12345")


async def test_submit_already_complete_sets_state(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(202, json={**COMPLETE, "estimated_time_seconds": 0}))
    submission = await tm.submit(KEY, spec())
    assert submission.state is not None
    assert submission.state.status is TaskStatus.COMPLETE


async def test_submit_complete_without_image_keeps_task_id(
    tm: TasteMachineClient, api: FakeApi
) -> None:
    api.reply(httpx.Response(202, json={"task_id": "t9", "status": "complete"}))
    assert await tm.submit(KEY, spec()) == Submission(task_id="t9")


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(202, json={}),
        httpx.Response(202, json={"status": "queued", "credits": {"required": 10}}),
        httpx.Response(202, json={"task_id": "   "}),
        httpx.Response(202, json={"task_id": None}),
        httpx.Response(202, json=["t1"]),
        httpx.Response(202, json="t1"),
        httpx.Response(200, text="<html><body>Welcome to nginx</body></html>"),
        httpx.Response(202, content=b"\xff\xfe\x00garbage"),
        httpx.Response(204),
    ],
)
async def test_submit_malformed(
    tm: TasteMachineClient, api: FakeApi, reply: httpx.Response
) -> None:
    api.reply(reply)
    with pytest.raises(MalformedResponse) as info:
        await tm.submit(KEY, spec())
    assert info.value.transient


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "nano-banana-9"},
        {"resolution": "8k"},
        {"resolution": "0.5k"},
        {"provider": ProviderName.VTRIX},
    ],
)
async def test_submit_refuses_specs_outside_caps_without_a_request(
    tm: TasteMachineClient, api: FakeApi, bad: dict[str, object]
) -> None:
    with pytest.raises(BadRequest):
        await tm.submit(KEY, spec(**bad))
    assert api.requests == []


def test_create_body_is_pure() -> None:
    assert create_body(spec(taste="realistic-photo"))["taste"] == "realistic-photo"


# --- poll -----------------------------------------------------------------------------------


async def test_poll_request_shape_encodes_task_id(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={"task_id": "x", "status": "processing"}))
    task_id = "a b&c=d/é"
    state = await tm.poll(KEY, task_id)
    (request,) = api.requests
    assert request.method == "GET"
    assert request.url.path == "/api/v1/generate"
    assert request.url.params["task_id"] == task_id
    assert b"&c=d" not in request.url.query
    assert request.headers["authorization"] == f"Bearer {KEY.secret}"
    assert state == TaskState(task_id=task_id, status=TaskStatus.RUNNING)


@pytest.mark.parametrize("word", ["processing", "queued", "QUEUED", "warming_up", "pending"])
async def test_poll_running_words(tm: TasteMachineClient, api: FakeApi, word: str) -> None:
    api.reply(httpx.Response(200, json={"task_id": "t", "status": word}))
    assert (await tm.poll(KEY, "t")).status is TaskStatus.RUNNING


async def test_poll_complete(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json=COMPLETE))
    assert await tm.poll(KEY, "aBcDeFgHiJkLmNoP") == TaskState(
        task_id="aBcDeFgHiJkLmNoP",
        status=TaskStatus.COMPLETE,
        image_urls=("https://cdn.thetastemachine.com/gen/abc123.png",),
        prompt_used="A softly lit interior of a minimalist Tokyo kissaten...",
        expires_at=EXPIRES,
        credits_consumed=10.0,
    )


@pytest.mark.parametrize("expires", [None, "", "next tuesday", 17, {"when": 1}])
async def test_poll_complete_tolerates_bad_expiry(
    tm: TasteMachineClient, api: FakeApi, expires: object
) -> None:
    body = json.loads(json.dumps(COMPLETE))
    body["result"]["expires_at"] = expires
    body["credits_consumed"] = "10"
    api.reply(httpx.Response(200, json=body))
    state = await tm.poll(KEY, "t")
    assert state.status is TaskStatus.COMPLETE
    assert state.expires_at is None
    assert state.credits_consumed == 10.0


async def test_poll_complete_minimal(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(
        httpx.Response(200, json={"status": "complete", "result": {"image_url": "https://c/x.png"}})
    )
    assert await tm.poll(KEY, "t") == TaskState(
        task_id="t", status=TaskStatus.COMPLETE, image_urls=("https://c/x.png",)
    )


@pytest.mark.parametrize(
    "body",
    [
        {"task_id": "t", "status": "complete"},
        {"task_id": "t", "status": "complete", "result": {"image_url": ""}},
        {"task_id": "t", "status": "complete", "result": "https://c/x.png"},
        {"task_id": "t", "status": "complete", "result": {"image_url": 42}},
        {"task_id": "t"},
        {"task_id": "t", "status": None},
        {"task_id": "t", "status": {"state": "complete"}},
        {"task_id": "t", "status": 2},
    ],
)
async def test_poll_malformed(tm: TasteMachineClient, api: FakeApi, body: object) -> None:
    api.reply(httpx.Response(200, json=body))
    with pytest.raises(MalformedResponse):
        await tm.poll(KEY, "t")


async def test_poll_html_is_malformed(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>"))
    with pytest.raises(MalformedResponse):
        await tm.poll(KEY, "t")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"status": "failed", "error": "Content policy violation"},
            "The Taste Machine could not generate the image: Content policy violation.",
        ),
        (
            {"status": "failed", "error": {"message": "Upstream model timeout."}},
            "The Taste Machine could not generate the image: Upstream model timeout.",
        ),
        (
            {"status": "failed", "error": {"error_message": "bad reference image"}},
            "The Taste Machine could not generate the image: bad reference image.",
        ),
        (
            {"status": "failed", "error": {"detail": "nsfw"}},
            "The Taste Machine could not generate the image: nsfw.",
        ),
        (
            {"status": "failed", "error": {"reason": "cancelled by operator"}},
            "The Taste Machine could not generate the image: cancelled by operator.",
        ),
        (
            {"status": "failed", "error": {"code": "E42"}},
            "The Taste Machine could not generate the image (code E42).",
        ),
        ({"status": "failed", "message": "no capacity"},
         "The Taste Machine could not generate the image: no capacity."),
        ({"status": "failed"}, NO_REASON),
        ({"status": "failed", "error": None}, NO_REASON),
        ({"status": "failed", "error": ""}, NO_REASON),
        ({"status": "FAILED", "error": 17}, NO_REASON),
        ({"status": "failed", "error": ["x"]},
         "The Taste Machine could not generate the image: x."),
    ],
)  # fmt: skip
async def test_poll_failed_variants(
    tm: TasteMachineClient, api: FakeApi, body: object, expected: str
) -> None:
    api.reply(httpx.Response(200, json=body))
    state = await tm.poll(KEY, "t")
    assert state == TaskState(task_id="t", status=TaskStatus.FAILED, error=expected)


async def test_poll_empty_task_id_sends_nothing(tm: TasteMachineClient, api: FakeApi) -> None:
    with pytest.raises(BadRequest):
        await tm.poll(KEY, " ")
    assert api.requests == []


# --- HTTP errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (httpx.Response(400, json={"error": "brief is required"}), BadRequest, 400),
        (httpx.Response(401, json={"error": "Invalid API key"}), KeyRejected, 401),
        (httpx.Response(402, json={"error": "No credits", "required": 10, "available": 3}),
         InsufficientCredits, 402),
        (httpx.Response(429, headers={"Retry-After": "5"}), RateLimited, 429),
        (httpx.Response(500, text="Internal Server Error"), ProviderUnavailable, 500),
        (httpx.Response(503), ProviderUnavailable, 503),
        (httpx.Response(504, text="<html>gateway timeout</html>"), ProviderUnavailable, 504),
    ],
)  # fmt: skip
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_http_errors_map(
    tm: TasteMachineClient,
    api: FakeApi,
    reply: httpx.Response,
    kind: type[ProviderError],
    status: int,
    call: str,
) -> None:
    api.reply(reply)
    with pytest.raises(kind) as info:
        if call == "submit":
            await tm.submit(KEY, spec())
        else:
            await tm.poll(KEY, "t")
    assert type(info.value) is kind
    assert info.value.status == status
    assert "The Taste Machine" in info.value.user_message


async def test_402_amounts(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(402, json={"credits": {"required": 15, "remaining": 4}}))
    with pytest.raises(InsufficientCredits) as info:
        await tm.submit(KEY, spec(resolution="4k"))
    assert (info.value.required, info.value.available) == (15, 4)


async def test_429_retry_after(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(429, headers={"Retry-After": "17"}, json={"error": "rate limited"}))
    with pytest.raises(RateLimited) as info:
        await tm.poll(KEY, "t")
    assert info.value.retry_after == 17.0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ConnectError,
        httpx.ReadError,
        httpx.RemoteProtocolError,
    ],
)
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_transport_failures_are_unavailable(
    tm: TasteMachineClient, api: FakeApi, exc: type[Exception], call: str
) -> None:
    api.reply(raising(exc))
    with pytest.raises(ProviderUnavailable) as info:
        if call == "submit":
            await tm.submit(KEY, spec())
        else:
            await tm.poll(KEY, "t")
    assert info.value.transient
    assert "boom" not in info.value.user_message


# --- download -------------------------------------------------------------------------------


async def test_download(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, content=b"\x89PNG\r\n"))
    assert await tm.download("https://cdn.thetastemachine.com/gen/abc123.png") == b"\x89PNG\r\n"
    assert "authorization" not in api.requests[0].headers


async def test_download_expired(tm: TasteMachineClient, api: FakeApi) -> None:
    api.reply(httpx.Response(410))
    with pytest.raises(DownloadFailed) as info:
        await tm.download("https://cdn.thetastemachine.com/gen/abc123.png")
    assert info.value.expired
    assert info.value.user_message == "The image link expired before it could be fetched."


# --- the key never leaks --------------------------------------------------------------------

ECHO = KEY.secret
LEAKY_REPLIES: list[Reply] = [
    httpx.Response(400, json={"error": {"message": f"bad body for key {ECHO}"}}),
    httpx.Response(401, json={"error": f"Invalid API key {ECHO}"}),
    httpx.Response(402, json={"message": f"key {ECHO} has 3 credits", "required": 10}),
    httpx.Response(403, json={"message": f"key {ECHO} lacks permission"}),
    httpx.Response(403, json={"message": f"key {ECHO} has insufficient balance"}),
    httpx.Response(404, text=f"no such task for Bearer {ECHO}"),
    httpx.Response(429, json={"error": f"slow down {ECHO}"}, headers={"Retry-After": "1"}),
    httpx.Response(500, text=f"Traceback: Authorization: Bearer {ECHO}"),
    httpx.Response(200, text=f"<html>{ECHO}</html>"),
    httpx.Response(202, json={"echo": ECHO, "credits": {"required": 10}}),
    raising(httpx.ConnectError, f"could not connect with {ECHO}"),
    raising(httpx.ReadTimeout, f"timed out {ECHO}"),
    raising(httpx.RemoteProtocolError, f"Illegal header value b'Bearer {ECHO}'"),
]


@pytest.mark.parametrize("reply", LEAKY_REPLIES)
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_no_error_or_log_line_contains_the_key(
    tm: TasteMachineClient,
    api: FakeApi,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    call: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    api.reply(reply)
    with pytest.raises(ProviderError) as info:
        if call == "submit":
            await tm.submit(KEY, spec())
        else:
            await tm.poll(KEY, "t")
    err = info.value
    for text in (str(err), repr(err), err.user_message, *map(str, err.args)):
        assert KEY.secret not in text
    assert err.__cause__ is None
    assert err.__suppress_context__ or err.__context__ is None
    for record in caplog.records:
        assert KEY.secret not in record.getMessage()


async def test_failed_task_error_never_contains_the_key(
    tm: TasteMachineClient, api: FakeApi
) -> None:
    api.reply(httpx.Response(200, json={"status": "failed", "error": {"message": f"key {ECHO}"}}))
    state = await tm.poll(KEY, "t")
    assert state.error is not None
    assert KEY.secret not in state.error
    assert KEY.fingerprint in state.error


async def test_debug_log_shows_method_path_status_task(
    tm: TasteMachineClient, api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tmbot.providers")
    api.reply(httpx.Response(202, json=ACCEPTED), httpx.Response(200, json=COMPLETE))
    submission = await tm.submit(KEY, spec())
    await tm.poll(KEY, submission.task_id)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tmbot.providers")]
    assert "POST /api/v1/generate -> 202" in lines
    assert "GET /api/v1/generate task=aBcDeFgHiJkLmNoP -> 200" in lines
    assert all(KEY.secret not in line and "Bearer" not in line for line in lines)
