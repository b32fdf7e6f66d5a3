"""VtrixClient against httpx.MockTransport: the nested create body, every documented answer
variant (error object/string, message vs error_message, codes without leading zeros, fast
completion, unknown status words, usage shapes), error mapping and key hygiene."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

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
from tmbot.providers import ImageProvider, VtrixClient
from tmbot.providers.vtrix import NO_REASON, credits_from_usage, normalise_code

KEY = ApiKey("vtx9SecretVtrixToken0123456789")
BASE = "http://vtrix.test"
TASK = "d758n65e878c73cmdg20"
IMG = "https://cdn.vtrix.ai/out/abc.png"

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
async def vtrix(api: FakeApi) -> AsyncIterator[VtrixClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        provider = VtrixClient(BASE, client=client)
        yield provider
        await provider.aclose()


def spec(**overrides: object) -> GenerationSpec:
    values: dict[str, object] = {
        "provider": ProviderName.VTRIX,
        "brief": "A red fox in the snow, 85mm lens",
        "model": "nano-banana-2",
        "aspect_ratio": "16:9",
        "resolution": "2k",
        "taste": None,
        "image_urls": ("https://example.com/a.jpg", "https://example.com/b.jpg"),
    }
    values.update(overrides)
    return GenerationSpec(**values)  # type: ignore[arg-type]


CREATED = {
    "id": TASK,
    "created_at": 1775800000,
    "status": "in_progress",
    "model": "nano_banana_2",
}


def completed(**extra: object) -> dict[str, object]:
    return {
        "id": TASK,
        "status": "completed",
        "output": [{"content": [{"type": "image", "url": IMG}, {"type": "text", "text": "Here"}]}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1290, "total_tokens": 1300},
        "metadata": {"region": "us"},
        **extra,
    }


# --- protocol & construction --------------------------------------------------------------


def test_is_an_image_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VTRIX_API_URL", raising=False)
    client: ImageProvider = VtrixClient()
    assert client.name is ProviderName.VTRIX
    assert VtrixClient().base_url == "https://cloud.vtrix.ai"
    monkeypatch.setenv("VTRIX_API_URL", "http://localhost:7000/")
    assert VtrixClient().base_url == "http://localhost:7000"


# --- submit ---------------------------------------------------------------------------------


async def test_submit_request_shape(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json=CREATED))
    await vtrix.submit(KEY, spec())
    (request,) = api.requests
    assert request.method == "POST"
    assert str(request.url) == "http://vtrix.test/model/v1/generation"
    assert request.headers["authorization"] == f"Bearer {KEY.secret}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "nano_banana_2",
        "input": [
            {
                "params": {
                    "prompt": "A red fox in the snow, 85mm lens",
                    "image_urls": ["https://example.com/a.jpg", "https://example.com/b.jpg"],
                    "aspect_ratio": "16:9",
                    "resolution": "2K",
                    "response_modalities": "Image",
                }
            }
        ],
    }


@pytest.mark.parametrize(
    ("core", "wire"), [("0.5k", "0.5K"), ("1k", "1K"), ("2K", "2K"), ("4k", "4K")]
)
async def test_submit_resolution_upper_case_and_no_empty_images(
    vtrix: VtrixClient, api: FakeApi, core: str, wire: str
) -> None:
    api.reply(httpx.Response(200, json=CREATED))
    await vtrix.submit(KEY, spec(resolution=core, image_urls=(), taste="default"))
    params = json.loads(api.requests[0].content)["input"][0]["params"]
    assert params == {
        "prompt": "A red fox in the snow, 85mm lens",
        "aspect_ratio": "16:9",
        "resolution": wire,
        "response_modalities": "Image",
    }


async def test_submit_parses_created(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={**CREATED, "extra": [1, 2]}))
    assert await vtrix.submit(KEY, spec()) == Submission(task_id=TASK)


async def test_submit_completed_on_create(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json=completed(usage={"cost": "0.04"})))
    submission = await vtrix.submit(KEY, spec())
    assert submission == Submission(
        task_id=TASK,
        state=TaskState(
            task_id=TASK, status=TaskStatus.COMPLETE, image_urls=(IMG,), credits_consumed=0.04
        ),
    )


async def test_submit_failed_on_create(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(
        httpx.Response(
            200,
            json={"id": TASK, "status": "failed", "error": {"code": 5001098, "message": "sync"}},
        )
    )
    submission = await vtrix.submit(KEY, spec())
    assert submission.task_id == TASK
    assert submission.state == TaskState(
        task_id=TASK,
        status=TaskStatus.FAILED,
        error=(
            "Vtrix could not generate the image "
            "(synchronous generation error, code 005001098): sync."
        ),
    )


async def test_submit_completed_without_image_keeps_task_id(
    vtrix: VtrixClient, api: FakeApi
) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": "completed", "output": []}))
    assert await vtrix.submit(KEY, spec()) == Submission(task_id=TASK)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, json={}),
        httpx.Response(200, json={"status": "in_progress", "model": "nano_banana_2"}),
        httpx.Response(200, json={"id": ""}),
        httpx.Response(200, json={"id": None, "status": "in_progress"}),
        httpx.Response(200, json=[CREATED]),
        httpx.Response(200, text="<html><body>Cloudflare</body></html>"),
        httpx.Response(200, text="OK"),
        httpx.Response(200, content=b""),
    ],
)
async def test_submit_malformed(vtrix: VtrixClient, api: FakeApi, reply: httpx.Response) -> None:
    api.reply(reply)
    with pytest.raises(MalformedResponse):
        await vtrix.submit(KEY, spec())


async def test_submit_error_body_on_200_without_id(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={"error": {"code": 5001097, "message": "upstream 502"}}))
    with pytest.raises(MalformedResponse) as info:
        await vtrix.submit(KEY, spec())
    assert info.value.user_message == (
        "Vtrix answered without a task id (HTTP error response, code 005001097): upstream 502."
    )


@pytest.mark.parametrize(
    "bad",
    [{"model": "nano-banana-pro"}, {"resolution": "8k"}, {"provider": ProviderName.TASTEMACHINE}],
)
async def test_submit_refuses_specs_outside_caps_without_a_request(
    vtrix: VtrixClient, api: FakeApi, bad: dict[str, object]
) -> None:
    with pytest.raises(BadRequest):
        await vtrix.submit(KEY, spec(**bad))
    assert api.requests == []


# --- poll -----------------------------------------------------------------------------------


async def test_poll_request_shape(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json=CREATED))
    state = await vtrix.poll(KEY, TASK)
    (request,) = api.requests
    assert request.method == "GET"
    assert str(request.url) == f"http://vtrix.test/model/v1/generation/task/{TASK}"
    assert request.headers["authorization"] == f"Bearer {KEY.secret}"
    assert state == TaskState(task_id=TASK, status=TaskStatus.RUNNING)


async def test_poll_quotes_the_task_id(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={"status": "pending"}))
    await vtrix.poll(KEY, "../a b?c#d")
    assert api.requests[0].url.raw_path == b"/model/v1/generation/task/..%2Fa%20b%3Fc%23d"


@pytest.mark.parametrize(
    "word", ["in_progress", "pending", "processing", "queued", "running", "IN_PROGRESS", "new_word"]
)
async def test_poll_running_words(vtrix: VtrixClient, api: FakeApi, word: str) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": word}))
    assert (await vtrix.poll(KEY, TASK)).status is TaskStatus.RUNNING


async def test_poll_completed(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json=completed()))
    assert await vtrix.poll(KEY, TASK) == TaskState(
        task_id=TASK, status=TaskStatus.COMPLETE, image_urls=(IMG,), credits_consumed=None
    )


async def test_poll_completed_collects_every_image(vtrix: VtrixClient, api: FakeApi) -> None:
    body = completed(
        output=[
            {"content": [{"type": "text", "text": "two images"}, {"type": "image", "url": IMG}]},
            {"content": [{"type": "Image", "url": "https://cdn.vtrix.ai/out/2.png"}]},
            {"content": [{"type": "image", "url": IMG}]},  # duplicate
            {
                "content": [
                    {"type": "image", "image_url": {"url": "https://cdn.vtrix.ai/out/3.png"}}
                ]
            },
            {"content": [{"type": "image"}, {"type": "image", "url": ""}, "junk", None]},
            "junk",
        ]
    )
    api.reply(httpx.Response(200, json=body))
    state = await vtrix.poll(KEY, TASK)
    assert state.image_urls == (
        IMG,
        "https://cdn.vtrix.ai/out/2.png",
        "https://cdn.vtrix.ai/out/3.png",
    )


@pytest.mark.parametrize(
    ("usage", "credits"),
    [
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, None),
        ({"cost": "0.04"}, 0.04),
        ({"cost": ""}, None),
        ({"cost": 0.134}, 0.134),
        ({"cost": None}, None),
        ({"cost": "free"}, None),
        (None, None),
        ("0.04", None),
        ([], None),
    ],
)
async def test_poll_usage_variants(
    vtrix: VtrixClient, api: FakeApi, usage: object, credits: float | None
) -> None:
    api.reply(httpx.Response(200, json=completed(usage=usage)))
    state = await vtrix.poll(KEY, TASK)
    assert state.credits_consumed == credits
    assert credits_from_usage(usage) == credits


@pytest.mark.parametrize(
    "body",
    [
        {"id": TASK, "status": "completed"},
        {"id": TASK, "status": "completed", "output": []},
        {
            "id": TASK,
            "status": "completed",
            "output": [{"content": [{"type": "text", "text": "no"}]}],
        },
        {"id": TASK, "status": "completed", "output": "https://x/y.png"},
        {"id": TASK},
        {"id": TASK, "status": ""},
        {"id": TASK, "status": 3},
    ],
)
async def test_poll_malformed(vtrix: VtrixClient, api: FakeApi, body: object) -> None:
    api.reply(httpx.Response(200, json=body))
    with pytest.raises(MalformedResponse):
        await vtrix.poll(KEY, TASK)


async def test_poll_completed_without_image_message(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": "completed", "output": []}))
    with pytest.raises(MalformedResponse) as info:
        await vtrix.poll(KEY, TASK)
    assert info.value.user_message == f"Vtrix said task {TASK} is complete but sent no image."


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": 5001095, "error_message": "Generation failed"},
         "Vtrix could not generate the image (internal generation error, code 005001095): "
         "Generation failed."),
        ({"code": "005001096", "message": "could not parse result."},
         "Vtrix could not generate the image (result parsing error, code 005001096): "
         "could not parse result."),
        ({"code": "5001097", "error_message": "upstream said 500"},
         "Vtrix could not generate the image (HTTP error response, code 005001097): "
         "upstream said 500."),
        ({"code": 5001098.0, "message": "sync"},
         "Vtrix could not generate the image (synchronous generation error, code 005001098): "
         "sync."),
        ({"code": 42, "message": "odd"},
         "Vtrix could not generate the image (code 000000042): odd."),
        ({"code": "SAFETY_BLOCK", "message": "prompt blocked"},
         "Vtrix could not generate the image (code SAFETY_BLOCK): prompt blocked."),
        ({"code": 5001095},
         "Vtrix could not generate the image (internal generation error, code 005001095)."),
        ({"error_message": "only text"}, "Vtrix could not generate the image: only text."),
        ("Image generation failed due to safety filters",
         "Vtrix could not generate the image: Image generation failed due to safety filters."),
        ({}, NO_REASON),
        (None, NO_REASON),
        ("", NO_REASON),
    ],
)  # fmt: skip
async def test_poll_failed_variants(
    vtrix: VtrixClient, api: FakeApi, error: object, expected: str
) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": "failed", "error": error}))
    assert await vtrix.poll(KEY, TASK) == TaskState(
        task_id=TASK, status=TaskStatus.FAILED, error=expected
    )


async def test_poll_failed_without_error_field(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": "failed"}))
    assert (await vtrix.poll(KEY, TASK)).error == NO_REASON


async def test_failure_message_is_short(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(
        httpx.Response(
            200,
            json={"status": "failed", "error": {"code": 5001095, "message": "trace " * 500}},
        )
    )
    error = (await vtrix.poll(KEY, TASK)).error
    assert error is not None
    assert len(error) < 300


@pytest.mark.parametrize(
    ("raw", "code"),
    [(5001095, "005001095"), ("5001095", "005001095"), ("005001095", "005001095"),
     (" 005001096 ", "005001096"), (5001098.0, "005001098"), ("E1", "E1"), (None, None),
     (True, None), ("", None), (1234567890, "1234567890")],
)  # fmt: skip
def test_normalise_code(raw: object, code: str | None) -> None:
    assert normalise_code(raw) == code


async def test_poll_empty_task_id_sends_nothing(vtrix: VtrixClient, api: FakeApi) -> None:
    with pytest.raises(BadRequest):
        await vtrix.poll(KEY, "")
    assert api.requests == []


# --- HTTP errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (httpx.Response(400, json={"error": {"code": 400, "message": "prompt too long"}}),
         BadRequest, 400),
        (httpx.Response(401, json={"message": "Unauthorized"}), KeyRejected, 401),
        (httpx.Response(403, json={"error": {"code": 4031, "error_message": "Low balance"}}),
         InsufficientCredits, 403),
        (httpx.Response(403, json={"error": "Insufficient credit balance"}),
         InsufficientCredits, 403),
        (httpx.Response(403, json={"message": "Forbidden: model not enabled for this key"}),
         KeyRejected, 403),
        (httpx.Response(403, text="Forbidden"), KeyRejected, 403),
        (httpx.Response(429, json={"message": "Too many requests"}), RateLimited, 429),
        (httpx.Response(408, json={"message": "Request timeout"}), ProviderUnavailable, 408),
        (httpx.Response(504, text="Gateway Timeout"), ProviderUnavailable, 504),
        (httpx.Response(500, json={"error": {"code": 5001095, "message": "internal"}}),
         ProviderUnavailable, 500),
    ],
)  # fmt: skip
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_http_errors_map(
    vtrix: VtrixClient,
    api: FakeApi,
    reply: httpx.Response,
    kind: type[ProviderError],
    status: int,
    call: str,
) -> None:
    api.reply(reply)
    with pytest.raises(kind) as info:
        if call == "submit":
            await vtrix.submit(KEY, spec())
        else:
            await vtrix.poll(KEY, TASK)
    assert type(info.value) is kind
    assert info.value.status == status
    assert info.value.user_message.startswith("Vtrix")


async def test_400_message_includes_provider_text(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(400, json={"error": {"code": 400, "error_message": "bad ratio"}}))
    with pytest.raises(BadRequest) as info:
        await vtrix.submit(KEY, spec())
    assert info.value.user_message == "Vtrix refused the request (400): bad ratio."


async def test_403_balance_amounts(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(
        httpx.Response(
            403,
            json={"error": {"message": "insufficient balance", "balance": "0.01", "cost": 0.04}},
        )
    )
    with pytest.raises(InsufficientCredits) as info:
        await vtrix.submit(KEY, spec())
    assert (info.value.required, info.value.available) == (1, 0)


async def test_429_retry_after_http_date(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(
        httpx.Response(
            429,
            headers={
                "Retry-After": "Thu, 09 Apr 2026 10:00:08 GMT",
                "Date": "Thu, 09 Apr 2026 10:00:00 GMT",
            },
        )
    )
    with pytest.raises(RateLimited) as info:
        await vtrix.poll(KEY, TASK)
    assert info.value.retry_after == 8.0


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.ReadError,
     httpx.RemoteProtocolError, httpx.UnsupportedProtocol],
)  # fmt: skip
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_transport_failures_are_unavailable(
    vtrix: VtrixClient, api: FakeApi, exc: type[Exception], call: str
) -> None:
    api.reply(raising(exc))
    with pytest.raises(ProviderUnavailable) as info:
        if call == "submit":
            await vtrix.submit(KEY, spec())
        else:
            await vtrix.poll(KEY, TASK)
    assert info.value.transient


# --- download -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expired"), [(403, True), (404, True), (410, True), (502, False)]
)
async def test_download_statuses(
    vtrix: VtrixClient, api: FakeApi, status: int, expired: bool
) -> None:
    api.reply(httpx.Response(status))
    with pytest.raises(DownloadFailed) as info:
        await vtrix.download(IMG)
    assert info.value.expired is expired
    assert info.value.transient is not expired


async def test_download_ok(vtrix: VtrixClient, api: FakeApi) -> None:
    api.reply(httpx.Response(200, content=b"png-bytes"))
    assert await vtrix.download(IMG) == b"png-bytes"
    assert "authorization" not in api.requests[0].headers


# --- the key never leaks --------------------------------------------------------------------

ECHO = KEY.secret
LEAKY_REPLIES: list[Reply] = [
    httpx.Response(400, json={"error": {"code": 1, "error_message": f"key {ECHO} bad"}}),
    httpx.Response(401, json={"message": f"Invalid token {ECHO}"}),
    httpx.Response(403, json={"error": {"message": f"{ECHO}: insufficient balance"}}),
    httpx.Response(403, json={"error": f"{ECHO} may not use nano_banana_2"}),
    httpx.Response(408, text=f"timeout for {ECHO}"),
    httpx.Response(429, json={"error": f"{ECHO} is over the limit"}),
    httpx.Response(500, text=f"Authorization: Bearer {ECHO}"),
    httpx.Response(200, json={"error": {"code": 5001095, "message": f"no id for {ECHO}"}}),
    httpx.Response(200, text=ECHO),
    raising(httpx.ConnectError, f"connect {ECHO}"),
    raising(httpx.ConnectTimeout, f"connect timeout {ECHO}"),
]


@pytest.mark.parametrize("reply", LEAKY_REPLIES)
@pytest.mark.parametrize("call", ["submit", "poll"])
async def test_no_error_or_log_line_contains_the_key(
    vtrix: VtrixClient,
    api: FakeApi,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    call: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    api.reply(reply)
    with pytest.raises(ProviderError) as info:
        if call == "submit":
            await vtrix.submit(KEY, spec())
        else:
            await vtrix.poll(KEY, TASK)
    err = info.value
    for text in (str(err), repr(err), err.user_message, *map(str, err.args)):
        assert KEY.secret not in text
    for record in caplog.records:
        assert KEY.secret not in record.getMessage()


@pytest.mark.parametrize(
    "error",
    [
        {"code": 5001095, "message": f"key {ECHO} failed"},
        f"key {ECHO} failed",
        {"code": ECHO, "message": "x"},
    ],
)
async def test_failed_task_error_never_contains_the_key(
    vtrix: VtrixClient, api: FakeApi, error: object
) -> None:
    api.reply(httpx.Response(200, json={"id": TASK, "status": "failed", "error": error}))
    state = await vtrix.poll(KEY, TASK)
    assert state.status is TaskStatus.FAILED
    assert state.error is not None and KEY.secret not in state.error
