"""Typed ``/taste`` options over the flags typed in the brief: a flag the person also chose
as a typed option is removed from the text and the typed value appended as that flag, so
the typed option wins and the grammar never sees two different values for one field."""

from __future__ import annotations

import re
from collections.abc import Mapping

from tmbot import PROVIDERS

#: flag names (as the grammar accepts them) -> field; model shorthands take no value
_VALUE_FLAGS = {
    "ar": "aspect_ratio",
    "aspect": "aspect_ratio",
    "aspect-ratio": "aspect_ratio",
    "ratio": "aspect_ratio",
    "model": "model",
    "res": "resolution",
    "resolution": "resolution",
    "taste": "taste",
    "provider": "provider",
}
_SHORTHANDS = {"pro": "model", "fast": "model"}
_FIELD_FLAG = {
    "aspect_ratio": "--ar",
    "model": "--model",
    "resolution": "--res",
    "taste": "--taste",
    "provider": "--provider",
}
_FLAG = re.compile(r"[-‐‑‒–—―−]{1,3}([A-Za-z][A-Za-z0-9_-]*)(=.*)?", re.DOTALL)

#: choices offered as typed options, from the core's capability tables (the one place that
#: lists them; the core validates every value all the same)
MODELS = tuple(dict.fromkeys(m for pc in PROVIDERS.values() for m in pc.models))
RATIOS_BY_MODEL = {
    model: tuple(
        dict.fromkeys(
            r
            for pc in PROVIDERS.values()
            if model in pc.models
            for r in pc.models[model].aspect_ratios
        )
    )
    for model in MODELS
}
ALL_RATIOS = tuple(dict.fromkeys(r for ratios in RATIOS_BY_MODEL.values() for r in ratios))
RESOLUTIONS = tuple(
    sorted(
        {r for pc in PROVIDERS.values() for r in pc.resolutions},
        key=lambda r: float(r.removesuffix("k")),
    )
)
TASTES = tuple(dict.fromkeys(t for pc in PROVIDERS.values() for t in pc.tastes))


def with_options(text: str, options: Mapping[str, str | None]) -> str:
    """``text`` with each given typed option replacing that field's flags."""
    given = {field: value for field, value in options.items() if value}
    if not given:
        return text
    tokens = text.split()
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        m = _FLAG.fullmatch(token)
        if m is not None:
            name = m[1].lower().replace("_", "-")
            field = _VALUE_FLAGS.get(name) or _SHORTHANDS.get(name)
            if field in given:
                takes_value = name in _VALUE_FLAGS and m[2] is None
                if takes_value and i < len(tokens) and _FLAG.fullmatch(tokens[i]) is None:
                    i += 1
                continue
        kept.append(token)
    for field, value in given.items():
        kept += [_FIELD_FLAG[field], value.replace(" ", "")]
    return " ".join(kept)


def ratios_for(model: str | None) -> tuple[str, ...]:
    if model in RATIOS_BY_MODEL:
        return RATIOS_BY_MODEL[model]
    return ALL_RATIOS
