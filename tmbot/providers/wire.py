"""Spelling a :class:`GenerationSpec` the way one provider's API wants it.

The names come from :mod:`tmbot.capabilities` only; a spec that does not fit the table is a
BadRequest raised before any request is sent (validation proper is ``tmbot.commands``'
job, so reaching these means a bug upstream, not a user typo).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tmbot.capabilities import ProviderCaps
from tmbot.domain import GenerationSpec
from tmbot.errors import BadRequest, MalformedResponse, ProviderError

log = logging.getLogger(__name__)


def check_provider(caps: ProviderCaps, spec: GenerationSpec, label: str) -> None:
    if spec.provider != caps.provider:
        raise BadRequest(f"This request was prepared for {spec.provider}, not for {label}.")


def wire_model(caps: ProviderCaps, spec: GenerationSpec, label: str) -> str:
    model = caps.models.get(spec.model)
    if model is None:
        choices = ", ".join(caps.models)
        raise BadRequest(f"{label} has no model {spec.model!r}; choose one of {choices}.")
    return model.wire_name


def wire_resolution(caps: ProviderCaps, spec: GenerationSpec, label: str) -> str:
    spelled = caps.resolutions.get(spec.resolution.strip().lower())
    if spelled is None:
        choices = ", ".join(caps.resolutions)
        raise BadRequest(f"{label} has no resolution {spec.resolution!r}; choose one of {choices}.")
    return spelled


@contextmanager
def reading(label: str, what: str) -> Iterator[None]:
    """Turn a parsing slip (KeyError, TypeError, …) on a provider answer into a
    MalformedResponse, so nothing but ProviderError ever leaves a client."""
    try:
        yield
    except ProviderError:
        raise
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        log.warning("unreadable %s answer from %s: %s", what, label, type(exc).__name__)
        raise MalformedResponse(f"{label} sent {what} the bot could not read.") from None
