"""Did-you-mean helpers for user-facing messages.

Small and generic: :mod:`tmbot.commands` decides *what* the choices are (always read from
:mod:`tmbot.capabilities`); this module only finds a near miss and writes a choice list.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def closest(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice nearest to ``word`` (case-insensitive), or None when nothing is close.

    Besides spelling (difflib), a word that is one hyphen-separated part of exactly one
    choice counts as a near miss: ``photo`` -> ``realistic-photo``.
    """
    options = list(dict.fromkeys(choices))
    lowered = word.lower()
    by_lower = {c.lower(): c for c in options}
    if lowered in by_lower:
        return by_lower[lowered]
    matches = difflib.get_close_matches(lowered, list(by_lower), n=1, cutoff=cutoff)
    if matches:
        return by_lower[matches[0]]
    if lowered:
        parts = [c for c in options if lowered in c.lower().split("-") and c.lower() != lowered]
        if len(parts) == 1:
            return parts[0]
    return None


def code(text: str) -> str:
    """Inline code for chat markdown (backticks inside are replaced, never nested)."""
    return "`" + text.replace("`", "'") + "`"


def choices_text(choices: Sequence[str], *, conjunction: str = "or") -> str:
    """``a``, ``b`` or ``c`` as inline code: ```a`, `b` or `c```."""
    quoted = [code(c) for c in choices]
    if not quoted:
        return "nothing"
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + f" {conjunction} " + quoted[-1]
