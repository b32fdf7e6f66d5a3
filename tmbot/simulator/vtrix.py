"""Vtrix's nano_banana_2, as PROVIDERS.md section 2 describes it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tmbot.capabilities import VTRIX as _CAPS
from tmbot.simulator.common import Answer, image_url
from tmbot.simulator.config import SimConfig
from tmbot.simulator.state import VTRIX, Account, Phase, SimState, Task
from tmbot.simulator.stats import key_id

_KEY_RE = re.compile(_CAPS.key_pattern)
_WIRE_RESOLUTIONS = {wire: core for core, wire in _CAPS.resolutions.items()}
_MODELS = {m.wire_name: m for m in _CAPS.models.values()}
#: A task expected to take no longer than this (provider seconds) is answered complete at once.
INSTANT_SECONDS = 1.0

# Documented generation error codes (sent as integers, so without the leading zeros).
_FAILURES = (
    (5001095, "internal generation error"),
    (5001096, "result parsing error"),
    (5001097, "HTTP error response"),
    (5001098, "synchronous generation error"),
)


def _error(status: int, code: int, message: str, *, field_name: str = "message") -> Answer:
    return Answer(status, {"error": {"code": code, field_name: message}})


@dataclass(frozen=True)
class _Request:
    prompt: str
    model: str  # core name
    aspect_ratio: str
    resolution: str  # core spelling
    with_text: bool
    image_urls: tuple[str, ...] = ()


def _validate(body: object) -> _Request | str:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or model not in _MODELS:
        return f"model must be one of: {', '.join(_MODELS)}"
    caps = _MODELS[model]
    items = body.get("input")
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return "input must be a non-empty array of objects with params"
    params = items[0].get("params")
    if not isinstance(params, dict):
        return "input[0].params must be an object"

    prompt = params.get("prompt")
    limit = _CAPS.prompt_max_chars or 2500
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= limit:
        return f"prompt is required, length must be between 1-{limit} characters"

    urls = params.get("image_urls")
    if urls is not None:
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            return "image_urls must be an array of strings"
        if len(urls) > _CAPS.max_reference_images:
            return f"Maximum {_CAPS.max_reference_images} images can be accepted as input"

    ratio = params.get("aspect_ratio")
    if ratio is None:
        ratio = _CAPS.default_aspect_ratio
    if not isinstance(ratio, str) or ratio not in caps.aspect_ratios:
        return f"aspect_ratio must be one of: {', '.join(caps.aspect_ratios)}"

    resolution = params.get("resolution")
    if resolution is None:
        resolution = _CAPS.resolutions[_CAPS.default_resolution]
    if not isinstance(resolution, str) or resolution not in _WIRE_RESOLUTIONS:
        return f"resolution must be one of: {', '.join(_WIRE_RESOLUTIONS)}"

    modalities = params.get("response_modalities")
    if modalities is None:
        with_text = True
    else:
        values = [modalities] if isinstance(modalities, str) else modalities
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return "response_modalities must be a string or an array of strings"
        lowered = {v.lower() for v in values}
        if not lowered or not lowered <= {"text", "image"}:
            return "response_modalities accepts Text and Image"
        with_text = "text" in lowered
    return _Request(
        prompt=prompt,
        model=caps.name,
        aspect_ratio=ratio,
        resolution=_WIRE_RESOLUTIONS[resolution],
        with_text=with_text,
        image_urls=tuple(urls or ()),
    )


def _body(task: Task, phase: Phase, origin: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.task_id,
        "created_at": int(task.created_wall),
        "model": _CAPS.models[task.model].wire_name,
    }
    v = task.variant
    if phase is Phase.QUEUED:
        body["status"] = "pending" if v % 3 == 0 else "in_progress"
    elif phase is Phase.RUNNING:
        body["status"] = "processing" if v % 4 == 0 else "in_progress"
    elif phase is Phase.FAILED:
        code, message = _FAILURES[v % len(_FAILURES)]
        shape = (v // 4) % 3
        body["status"] = "failed"
        if shape == 0:
            body["error"] = {"code": code, "error_message": message}
        elif shape == 1:
            body["error"] = {"code": code, "message": message}
        else:
            body["error"] = f"{message} ({code})"
    else:
        content: list[dict[str, str]] = [{"type": "image", "url": image_url(origin, task.token)}]
        if task.with_text:
            content.append({"type": "text", "text": f"Here is your image: {task.prompt_used}"})
        usage: dict[str, Any]
        shape = v % 3
        if shape == 0:
            prompt_tokens = max(1, len(task.brief) // 4)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 1290,
                "total_tokens": prompt_tokens + 1290,
            }
        elif shape == 1:
            usage = {"cost": "0.04"}
        else:
            usage = {"cost": ""}
        body.update(
            status="completed",
            output=[{"content": content}],
            usage=usage,
            metadata={
                "request_id": task.task_id,
                "aspect_ratio": task.aspect_ratio,
                "resolution": _CAPS.resolutions[task.resolution],
                "finished_at": int(task.end_wall),
            },
        )
    return body


class VtrixApi:
    name = VTRIX

    def limits(self, config: SimConfig) -> tuple[int, int]:
        return config.vtrix_rpm, config.vtrix_concurrency

    def authenticate(self, state: SimState, key: str | None) -> Answer | None:
        if key is None:
            return Answer(401, {"message": "missing authorization header"})
        if not _KEY_RE.fullmatch(key) or "revoked" in key:
            return _error(401, 4010001, "invalid api key")
        if "noperm" in key:
            return _error(403, 4030002, "permission denied for model nano_banana_2")
        return None

    def rate_limited(self, retry_after: int) -> Answer:
        return Answer(
            429, {"error": "rate limit exceeded"}, headers={"Retry-After": str(retry_after)}
        )

    def server_error(self) -> Answer:
        return _error(500, 5001097, "internal server error")

    def create(
        self, state: SimState, *, key: str, account: Account, body: object, origin: str
    ) -> Answer:
        parsed = _validate(body)
        if isinstance(parsed, str):
            return _error(400, 4001000, parsed)
        kid = key_id(key)
        if "broke" in key or state.credits.get(kid, 1) <= 0:
            return _error(403, 4030001, "insufficient balance", field_name="error_message")
        _, concurrency = self.limits(state.config)
        retry = state.concurrency_retry_after(account, concurrency, state.now())
        if retry is not None:
            return Answer(
                429,
                {"error": {"code": 4290001, "message": "too many concurrent tasks"}},
                headers={"Retry-After": str(retry)},
            )
        task = state.create_task(
            provider=VTRIX,
            kid=kid,
            account=account,
            brief=parsed.prompt,
            model=parsed.model,
            aspect_ratio=parsed.aspect_ratio,
            resolution=parsed.resolution,
            taste=None,
            cost=0,
            with_text=parsed.with_text,
            instant_below=INSTANT_SECONDS,
            image_urls=parsed.image_urls,
        )
        if task.duration == 0.0:
            return Answer(200, _body(task, task.phase(state.now()), origin))
        return Answer(
            200,
            {
                "id": task.task_id,
                "created_at": int(task.created_wall),
                "status": "in_progress",
                "model": _CAPS.models[task.model].wire_name,
            },
        )

    def poll(self, state: SimState, *, key: str, task_id: str | None, origin: str) -> Answer:
        task = state.tasks.get(task_id or "")
        if task is None or task.provider != VTRIX or task.kid != key_id(key):
            return _error(404, 4040001, "task not found")
        return Answer(200, _body(task, task.phase(state.now()), origin))
