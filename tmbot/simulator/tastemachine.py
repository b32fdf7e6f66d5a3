"""The Taste Machine, as PROVIDERS.md section 1 describes it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tmbot.capabilities import TASTEMACHINE
from tmbot.simulator.common import Answer, image_url, iso_z
from tmbot.simulator.config import SimConfig
from tmbot.simulator.state import TM, Account, Phase, SimState
from tmbot.simulator.stats import key_id

_CAPS = TASTEMACHINE
_KEY_RE = re.compile(_CAPS.key_pattern)
_WIRE_RESOLUTIONS = {wire: core for core, wire in _CAPS.resolutions.items()}

_FAILURE_MESSAGES = (
    "generation failed: the model returned no image",
    "upstream model error, please retry",
    "content could not be generated for this brief",
)


def _error(status: int, message: str, **extra: object) -> Answer:
    return Answer(status, {"error": message, **extra})


@dataclass(frozen=True)
class _Request:
    brief: str
    model: str
    aspect_ratio: str
    resolution: str  # core spelling
    taste: str
    image_urls: tuple[str, ...] = ()


def _choices(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


def _validate(body: object) -> _Request | str:
    """The parsed request, or a sentence naming what is wrong with the body."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    brief = body.get("brief")
    if brief is None:
        return "brief is required"
    if not isinstance(brief, str) or not brief.strip():
        return "brief must be a non-empty string"

    model = body.get("model")
    if model is None:
        model = _CAPS.default_model
    models = {m.wire_name: m for m in _CAPS.models.values()}
    if not isinstance(model, str) or model not in models:
        return f"model must be one of: {_choices(list(models))}"
    caps = models[model]

    ratio = body.get("aspect_ratio")
    if ratio is None:
        ratio = _CAPS.default_aspect_ratio
    if not isinstance(ratio, str) or ratio not in caps.aspect_ratios:
        return (
            f"aspect_ratio {ratio!r} is not supported by {model}; "
            f"choose one of: {_choices(caps.aspect_ratios)}"
        )

    resolution = body.get("resolution")
    if resolution is None:
        resolution = _CAPS.resolutions[_CAPS.default_resolution]
    if not isinstance(resolution, str) or resolution not in _WIRE_RESOLUTIONS:
        return f"resolution must be one of: {_choices(list(_WIRE_RESOLUTIONS))} (lower-case k)"

    taste = body.get("taste")
    if taste is None:
        taste = _CAPS.default_taste or "default"
    if not isinstance(taste, str) or taste not in _CAPS.tastes:
        return f"taste must be one of: {_choices(_CAPS.tastes)}"

    urls = body.get("image_urls")
    if urls is not None:
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            return "image_urls must be an array of strings"
        if len(urls) > _CAPS.max_reference_images:
            return (
                f"image_urls accepts at most {_CAPS.max_reference_images} images, got {len(urls)}"
            )
    return _Request(
        brief=brief,
        model=caps.name,
        aspect_ratio=ratio,
        resolution=_WIRE_RESOLUTIONS[resolution],
        taste=taste,
        image_urls=tuple(urls or ()),
    )


class TasteMachineApi:
    name = TM

    def limits(self, config: SimConfig) -> tuple[int, int]:
        return config.tm_rpm, config.tm_concurrency

    def authenticate(self, state: SimState, key: str | None) -> Answer | None:
        if key is None:
            return _error(401, "missing API key: send Authorization: Bearer tm_live_…")
        if not _KEY_RE.fullmatch(key) or "revoked" in key:
            return _error(401, "invalid API key")
        return None

    def rate_limited(self, retry_after: int) -> Answer:
        return Answer(
            429,
            {"error": "rate limit exceeded", "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    def server_error(self) -> Answer:
        return _error(500, "internal server error")

    def create(
        self, state: SimState, *, key: str, account: Account, body: object, origin: str
    ) -> Answer:
        parsed = _validate(body)
        if isinstance(parsed, str):
            return _error(400, parsed)
        cost = _CAPS.cost(parsed.model, parsed.resolution) or 0
        available = state.balance(key)
        if available < cost:
            return _error(402, "insufficient credits", required=cost, available=available)
        _, concurrency = self.limits(state.config)
        retry = state.concurrency_retry_after(account, concurrency, state.now())
        if retry is not None:
            return Answer(
                429,
                {
                    "error": f"too many concurrent generations (limit {concurrency})",
                    "retry_after": retry,
                },
                headers={"Retry-After": str(retry)},
            )
        kid = key_id(key)
        state.credits[kid] = available - cost
        task = state.create_task(
            provider=TM,
            kid=kid,
            account=account,
            brief=parsed.brief,
            model=parsed.model,
            aspect_ratio=parsed.aspect_ratio,
            resolution=parsed.resolution,
            taste=parsed.taste,
            cost=cost,
            image_urls=parsed.image_urls,
        )
        return Answer(
            202,
            {
                "task_id": task.task_id,
                "status": "queued",
                "estimated_time_seconds": max(1, round(task.estimate)),
                "credits": {"required": cost, "remaining": state.credits[kid]},
            },
        )

    def poll(self, state: SimState, *, key: str, task_id: str | None, origin: str) -> Answer:
        if not task_id:
            return _error(400, "task_id query parameter is required")
        task = state.tasks.get(task_id)
        if task is None or task.provider != TM or task.kid != key_id(key):
            return _error(404, "task not found")
        phase = task.phase(state.now())
        if phase is Phase.QUEUED:
            return Answer(200, {"task_id": task_id, "status": "queued"})
        if phase is Phase.RUNNING:
            return Answer(200, {"task_id": task_id, "status": "processing"})
        if phase is Phase.FAILED:
            message = _FAILURE_MESSAGES[task.variant % len(_FAILURE_MESSAGES)]
            error: object = message if task.variant % 2 == 0 else {"message": message}
            return Answer(
                200,
                {"task_id": task_id, "status": "failed", "error": error, "credits_consumed": 0},
            )
        return Answer(
            200,
            {
                "task_id": task_id,
                "status": "complete",
                "result": {
                    "image_url": image_url(origin, task.token),
                    "prompt_used": task.prompt_used,
                    "expires_at": iso_z(task.end_wall + task.ttl),
                },
                "credits_consumed": task.cost,
            },
        )
