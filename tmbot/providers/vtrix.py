"""Vtrix (Google Nano Banana 2 direct): ``POST /model/v1/generation`` with nested params,
then ``GET /model/v1/generation/task/{id}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final
from urllib.parse import quote

from tmbot.capabilities import VTRIX
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

LABEL: Final = "Vtrix"
ENV_VAR: Final = "VTRIX_API_URL"
DEFAULT_BASE_URL: Final = "https://cloud.vtrix.ai"
CREATE_PATH: Final = "/model/v1/generation"
TASK_PATH: Final = "/model/v1/generation/task/"

#: Documented failure codes (nine digits; integers arrive without the leading zeros).
ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "005001095": "internal generation error",
        "005001096": "result parsing error",
        "005001097": "HTTP error response",
        "005001098": "synchronous generation error",
    }
)
_COMPLETE_WORDS: Final = frozenset({"completed", "complete", "succeeded", "success"})
_FAILED_WORDS: Final = frozenset({"failed", "failure", "error", "cancelled", "canceled"})
NO_REASON: Final = "Vtrix reported the generation failed without a reason."


def normalise_code(value: object) -> str | None:
    """``5001095``, ``"5001095"`` and ``"005001095"`` all become ``"005001095"``; other
    codes pass through as text."""
    number = as_float(value) if not isinstance(value, str) else None
    text = str(int(number)) if number is not None and number.is_integer() else as_text(value)
    if text is None:
        return None
    if text.isascii() and text.isdigit() and len(text) < 9:
        text = text.zfill(9)
    return text


def create_body(spec: GenerationSpec) -> dict[str, object]:
    """The JSON body of a create call: parameters nested under ``input[0].params``,
    resolution upper-case (``2K``), images only. Vtrix has no taste profiles."""
    check_provider(VTRIX, spec, LABEL)
    params: dict[str, object] = {"prompt": spec.brief}
    if spec.image_urls:
        params["image_urls"] = list(spec.image_urls)
    params["aspect_ratio"] = spec.aspect_ratio
    params["resolution"] = wire_resolution(VTRIX, spec, LABEL)
    params["response_modalities"] = "Image"
    return {"model": wire_model(VTRIX, spec, LABEL), "input": [{"params": params}]}


def failure_sentence(
    data: Mapping[str, object],
    key: ApiKey | None = None,
    *,
    head: str = f"{LABEL} could not generate the image",
    no_reason: str = NO_REASON,
) -> str:
    """``error`` as an object (``code`` + ``error_message``/``message``) or a plain string,
    as one sentence: "Vtrix could not generate the image (internal generation error, code
    005001095): <message>."""
    error = data.get("error")
    error_map = as_mapping(error)
    code = normalise_code(error_map.get("code")) if error_map is not None else None
    if code is None:
        code = normalise_code(data.get("error_code"))
    message = message_from(error)
    if message is None:
        message = first_text(data, "error_message", "message", "reason")
    detail = provider_text(message, key)
    code = provider_text(code, key)
    inner = ""
    if code is not None:
        meaning = ERROR_CODES.get(code)
        inner = f"{meaning}, code {code}" if meaning else f"code {code}"
    head += f" ({inner})" if inner else ""
    if detail:
        return sentence(f"{head}: {detail}")
    return sentence(head) if inner else no_reason


def _image_urls(data: Mapping[str, object]) -> list[str]:
    urls: list[str] = []
    for item in as_list(data.get("output")):
        block = as_mapping(item)
        if block is None:
            continue
        for part in as_list(block.get("content")):
            content = as_mapping(part)
            if content is None or (as_text(content.get("type")) or "").lower() != "image":
                continue
            url = content.get("url")
            if not isinstance(url, str):
                nested = content.get("image_url")
                url = nested.get("url") if isinstance(nested, Mapping) else nested
            text = as_text(url) if isinstance(url, str) else None
            if text is not None and text not in urls:
                urls.append(text)
    return urls


def _expires_at(data: Mapping[str, object]) -> float | None:
    for place in (data, as_mapping(data.get("metadata"))):
        if place is not None and "expires_at" in place:
            return parse_timestamp(place.get("expires_at"))
    return None


def credits_from_usage(usage: object) -> float | None:
    """``{"cost": "0.04"}`` -> 0.04; ``{"cost": ""}`` or token counts -> None."""
    mapping = as_mapping(usage)
    if mapping is None:
        return None
    for name in ("cost", "credits", "credits_consumed", "total_cost"):
        value = as_float(mapping.get(name))
        if value is not None:
            return value
    return None


def parse_task(data: Mapping[str, object], task_id: str, key: ApiKey | None = None) -> TaskState:
    """A task answer: ``completed`` / ``failed``; every other word is still running."""
    word = as_word(data.get("status"))
    if word is None:
        raise MalformedResponse(f"{LABEL} sent task {task_id}'s state without a status.")
    if word in _FAILED_WORDS:
        return TaskState(
            task_id=task_id, status=TaskStatus.FAILED, error=failure_sentence(data, key)
        )
    if word not in _COMPLETE_WORDS:
        return TaskState(task_id=task_id, status=TaskStatus.RUNNING)
    urls = _image_urls(data)
    if not urls:
        raise MalformedResponse(f"{LABEL} said task {task_id} is complete but sent no image.")
    return TaskState(
        task_id=task_id,
        status=TaskStatus.COMPLETE,
        image_urls=tuple(urls),
        expires_at=_expires_at(data),
        credits_consumed=credits_from_usage(data.get("usage")),
    )


def parse_submission(data: Mapping[str, object], key: ApiKey | None = None) -> Submission:
    """A create answer (``200 {"id", "created_at", "status", "model"}``); a fast task may
    already be ``completed`` (or ``failed``), which sets ``Submission.state``."""
    task_id = as_text(data.get("id")) or as_text(data.get("task_id"))
    if task_id is None:
        plain = f"{LABEL} accepted the request but sent no task id."
        head = f"{LABEL} answered without a task id"
        raise MalformedResponse(failure_sentence(data, key, head=head, no_reason=plain))
    state: TaskState | None = None
    word = as_word(data.get("status")) or ""
    if word in _COMPLETE_WORDS or word in _FAILED_WORDS:
        try:
            state = parse_task(data, task_id, key)
        except ProviderError:
            # Keep the task id; polling will tell us what really happened.
            log.debug("task %s: unreadable final state in the create answer", task_id)
    return Submission(task_id=task_id, state=state)


class VtrixClient(HttpImageProvider):
    """Vtrix's Nano Banana 2 API. One instance serves every key; the key is passed per
    call."""

    name = ProviderName.VTRIX
    label = LABEL
    env_var = ENV_VAR
    default_base_url = DEFAULT_BASE_URL
    create_path = CREATE_PATH

    def create_body(self, spec: GenerationSpec) -> Mapping[str, object]:
        return create_body(spec)

    def poll_request(self, task_id: str) -> tuple[str, Mapping[str, str] | None]:
        return TASK_PATH + quote(task_id, safe=""), None

    def read_submission(self, data: Mapping[str, object], key: ApiKey) -> Submission:
        return parse_submission(data, key)

    def read_task(self, data: Mapping[str, object], task_id: str, key: ApiKey) -> TaskState:
        return parse_task(data, task_id, key)
