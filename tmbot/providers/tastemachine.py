"""The Taste Machine: ``POST /api/v1/generate``, then ``GET /api/v1/generate?task_id=``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from tmbot.capabilities import TASTEMACHINE
from tmbot.domain import (
    ApiKey,
    GenerationSpec,
    ProviderName,
    Submission,
    TaskState,
    TaskStatus,
)
from tmbot.errors import MalformedResponse, ProviderError
from tmbot.providers.client import HttpImageProvider
from tmbot.providers.parsing import (
    as_float,
    as_list,
    as_mapping,
    as_text,
    as_word,
    first_text,
    message_from,
    parse_timestamp,
    provider_text,
    sentence,
)
from tmbot.providers.wire import check_provider, wire_model, wire_resolution

log = logging.getLogger(__name__)

LABEL: Final = "The Taste Machine"
ENV_VAR: Final = "TASTEMACHINE_API_URL"
DEFAULT_BASE_URL: Final = "https://api.thetastemachine.com"
GENERATE_PATH: Final = "/api/v1/generate"

_COMPLETE_WORDS: Final = frozenset({"complete", "completed", "succeeded", "success", "done"})
_FAILED_WORDS: Final = frozenset({"failed", "failure", "error", "errored", "cancelled", "canceled"})
NO_REASON: Final = "The Taste Machine reported the generation failed without a reason."


def create_body(spec: GenerationSpec) -> dict[str, object]:
    """The JSON body of a create call for ``spec``."""
    check_provider(TASTEMACHINE, spec, LABEL)
    body: dict[str, object] = {
        "brief": spec.brief,
        "model": wire_model(TASTEMACHINE, spec, LABEL),
        "aspect_ratio": spec.aspect_ratio,
        "resolution": wire_resolution(TASTEMACHINE, spec, LABEL),
    }
    if spec.taste is not None:
        body["taste"] = spec.taste
    if spec.image_urls:
        body["image_urls"] = list(spec.image_urls)
    return body


def parse_submission(data: Mapping[str, object], key: ApiKey | None = None) -> Submission:
    """A create answer (``202 {"task_id", "status", "estimated_time_seconds", "credits"}``)."""
    task_id = as_text(data.get("task_id")) or as_text(data.get("id"))
    if task_id is None:
        raise MalformedResponse(f"{LABEL} accepted the request but sent no task id.")
    credits = as_mapping(data.get("credits")) or {}
    required = as_float(credits.get("required"))
    if required is None:
        required = as_float(data.get("credits_required"))
    remaining = as_float(credits.get("remaining"))
    if remaining is None:
        remaining = as_float(credits.get("available"))
    if remaining is None:
        remaining = as_float(data.get("credits_remaining"))
    estimate = as_float(data.get("estimated_time_seconds"))
    if estimate is None:
        estimate = as_float(data.get("estimated_seconds"))
    state: TaskState | None = None
    word = as_word(data.get("status")) or ""
    if word in _COMPLETE_WORDS or word in _FAILED_WORDS:
        try:
            state = parse_task(data, task_id, key)
        except ProviderError:
            # Keep the task id; polling will tell us what really happened.
            log.debug("task %s: unreadable final state in the create answer", task_id)
    return Submission(
        task_id=task_id,
        estimated_seconds=estimate if estimate is None or estimate >= 0 else None,
        credits_required=required,
        credits_remaining=remaining,
        state=state,
    )


def _failure_sentence(data: Mapping[str, object], key: ApiKey | None) -> str:
    error = data.get("error")
    message = message_from(error)
    code: str | None = None
    error_map = as_mapping(error)
    if error_map is not None:
        code = as_text(error_map.get("code"))
    if message is None:
        message = first_text(data, "message", "error_message", "failure_reason", "reason")
    detail = provider_text(message, key)
    code = provider_text(code, key)
    head = f"{LABEL} could not generate the image" + (f" (code {code})" if code else "")
    if detail:
        return sentence(f"{head}: {detail}")
    return sentence(head) if code else NO_REASON


def parse_task(data: Mapping[str, object], task_id: str, key: ApiKey | None = None) -> TaskState:
    """A poll answer: ``processing``/``queued``/unknown words are running."""
    word = as_word(data.get("status"))
    if word is None:
        raise MalformedResponse(f"{LABEL} sent task {task_id}'s state without a status.")
    if word in _FAILED_WORDS:
        return TaskState(
            task_id=task_id, status=TaskStatus.FAILED, error=_failure_sentence(data, key)
        )
    if word not in _COMPLETE_WORDS:
        return TaskState(task_id=task_id, status=TaskStatus.RUNNING)
    result = as_mapping(data.get("result")) or {}
    urls: list[str] = []
    for candidate in (
        result.get("image_url"),
        *as_list(result.get("image_urls")),
        data.get("image_url"),
    ):
        url = as_text(candidate) if isinstance(candidate, str) else None
        if url is not None and url not in urls:
            urls.append(url)
    if not urls:
        raise MalformedResponse(f"{LABEL} said task {task_id} is complete but sent no image link.")
    consumed = as_float(data.get("credits_consumed"))
    if consumed is None:
        consumed = as_float(result.get("credits_consumed"))
    expires = result.get("expires_at", data.get("expires_at"))
    return TaskState(
        task_id=task_id,
        status=TaskStatus.COMPLETE,
        image_urls=tuple(urls),
        prompt_used=as_text(result.get("prompt_used")),
        expires_at=parse_timestamp(expires),
        credits_consumed=consumed,
    )


class TasteMachineClient(HttpImageProvider):
    """The Taste Machine's API. One instance serves every key; the key is passed per call."""

    name = ProviderName.TASTEMACHINE
    label = LABEL
    env_var = ENV_VAR
    default_base_url = DEFAULT_BASE_URL
    create_path = GENERATE_PATH

    def create_body(self, spec: GenerationSpec) -> Mapping[str, object]:
        return create_body(spec)

    def poll_request(self, task_id: str) -> tuple[str, Mapping[str, str] | None]:
        return GENERATE_PATH, {"task_id": task_id}

    def read_submission(self, data: Mapping[str, object], key: ApiKey) -> Submission:
        return parse_submission(data, key)

    def read_task(self, data: Mapping[str, object], task_id: str, key: ApiKey) -> TaskState:
        return parse_task(data, task_id, key)
