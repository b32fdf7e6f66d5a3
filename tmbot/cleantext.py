"""Text that people type, made safe to parse, store, send and show.

:func:`clean` is applied to every line before the grammar sees it: Unicode NFC, terminal
escape sequences removed, control characters and invisible format characters (zero-width
spaces, joiners, byte-order marks, bidi overrides) dropped, line breaks and other odd spaces
turned into plain spaces, and runs of whitespace collapsed. :func:`has_visible` says whether
anything a person could see is left. :func:`printable` is the last guard before a line is
written to a terminal or a chat: it never lets a control character through.
"""

from __future__ import annotations

import re
import unicodedata

#: ESC [ … final byte (CSI), ESC ] … BEL or ESC \ (OSC), ESC P/X/^/_ … ESC \ (DCS and
#: friends), and two-character ESC sequences; also the 8-bit CSI (U+009B).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
)

#: Letters and symbols that draw nothing (Hangul fillers, the blank braille pattern …).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")

#: Characters turned into a space rather than dropped, so words stay apart.
_SPACE_LIKE = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")


def _keep(char: str) -> str:
    if char in _SPACE_LIKE:
        return " "
    if char in _BLANK_LETTERS:
        return " "
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return ""
    if category.startswith("Z"):
        return " "
    return char


def clean(text: str) -> str:
    """NFC, no escape sequences, no control or invisible format characters, single spaces,
    no leading or trailing whitespace."""
    text = _ESCAPES.sub("", unicodedata.normalize("NFC", text))
    return " ".join("".join(_keep(char) for char in text).split())


def has_visible(text: str) -> bool:
    """True when ``text`` has at least one character that draws something (not a space, a
    combining mark alone, a control or an invisible letter)."""
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "ZCM" or char in _BLANK_LETTERS:
            continue
        return True
    return False


def printable(text: str) -> str:
    """``text`` safe to write to a terminal or a chat: escape sequences removed and every
    control or invisible format character dropped; line breaks are kept."""
    lines = _ESCAPES.sub("", text).split("\n")
    return "\n".join("".join(_keep(char) for char in line) for line in lines)
