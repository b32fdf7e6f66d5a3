"""The command-word rule, flags as people type them, secrets and invisible text in a brief:
examples and property tests (tmbot.commands, tmbot.cleantext)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmbot.cleantext import clean, has_visible, printable
from tmbot.commands import (
    COMMAND_WORDS,
    KEY_IN_TEXT,
    NOTHING_VISIBLE,
    BindKey,
    Credits,
    Delete,
    Generate,
    LinkAccounts,
    LinkTeams,
    Refine,
    Regenerate,
    UnlinkAccounts,
    UnlinkTeams,
    parse,
)
from tmbot.domain import ProviderName
from tmbot.errors import ParseError

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the command-word rule ----------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "please",
        "5",
        "of",
        "the",
        "Tokyo",
        "subway",
        "--ar",
        "3:4",
        "--pro",
        "reset",
        "show",
        "on",
        "all",
        "vtrix",
        "3f2a1b9c4d",
        "zzz",
        "https://a.example.com/x.png",
        "--",
        "—ar",
        "@bob",
        "50/day",
        "flags",
    ]
)
_REST = st.lists(st.one_of(_WORDS, st.text(min_size=1, max_size=6)), max_size=6).map(" ".join)


def _cased(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


_COMMAND_WORD = st.sampled_from(COMMAND_WORDS).flatmap(_cased)


@_SETTINGS
@given(word=_COMMAND_WORD, rest=_REST, prefix=st.sampled_from(["", "/taste ", "/TASTE taste "]))
def test_a_command_word_first_never_makes_an_image(word: str, rest: str, prefix: str) -> None:
    try:
        command = parse(f"{prefix}{word} {rest}")
    except ParseError as error:
        assert "\n" not in error.user_message
        return
    assert not isinstance(command, Generate)


_PLAIN_WORD = st.text(
    alphabet=st.characters(whitelist_categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=8
)


@_SETTINGS
@given(word=_COMMAND_WORD, rest=st.lists(_PLAIN_WORD, min_size=1, max_size=6).map(" ".join))
def test_quoting_makes_it_a_brief_that_keeps_every_word(word: str, rest: str) -> None:
    text = f"{word} {rest}"
    command = parse(f'"{text}" --fast')
    assert isinstance(command, Generate)
    assert command.brief == clean(text)
    assert command.options.model == "nano-banana-2"


@_SETTINGS
@given(text=st.text(max_size=40))
def test_a_leading_slash_taste_changes_nothing(text: str) -> None:
    def outcome(line: str) -> object:
        try:
            return parse(line)
        except ParseError as error:
            return error.user_message

    assert outcome(f"/taste {text}") == outcome(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/taste credits", Credits()),
        ("taste credits", Credits()),
        ("/taste /taste CREDITS", Credits()),
        ("regenerate 3F2A1B9C4D", Regenerate("3f2a1b9c4d")),
        ("delete `3f2a1b9c4d`", Delete("3f2a1b9c4d")),
        ("/taste key", BindKey(provider=ProviderName.TASTEMACHINE, key=None)),
        ("link", LinkAccounts(None)),
        ("LINK abcd-efgh-jkmn", LinkAccounts("ABCDEFGHJKMN")),
        ("taste link `ABCDEFGHJKMN`", LinkAccounts("ABCDEFGHJKMN")),
        ("unlink", UnlinkAccounts()),
        ("team link", LinkTeams(None)),
        ("/taste team link abcd–efgh–jkmn", LinkTeams("ABCDEFGHJKMN")),
        ("team unlink", UnlinkTeams()),
    ],
)
def test_command_examples(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("word", ["link", "Unlink"])
def test_quoted_link_words_are_briefs(word: str) -> None:
    command = parse(f'"{word} between worlds" as a poster --ar 3:4')
    assert isinstance(command, Generate)
    assert command.brief == f"{word} between worlds as a poster"


def test_refine_takes_an_id_and_words() -> None:
    command = parse("refine 3F2A1B9C4D warmer light --ar 3:4")
    assert isinstance(command, Refine)
    assert (command.generation_id, command.brief) == ("3f2a1b9c4d", "warmer light")
    assert command.options.aspect_ratio == "3:4"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("credits please", "`credits` takes nothing more"),
        ("history 5", "`history` takes nothing more"),
        ("delete", "`delete` takes one result id"),
        ("regenerate zzz --ar 16:9", "`regenerate` takes one result id and nothing else"),
        ("logout foo", "`logout` takes a provider"),
        ("/taste credits please", "`credits` takes nothing more"),
        ("help me please", "`help` takes nothing or one topic"),
        ("team photo", "`team` takes `show`, `key`, `budget`, `channel`, `link` or `unlink`"),
        ("link to the past", "`link` takes nothing (for a code) or the code"),
        ("unlink me", "`unlink` takes nothing more"),
        ("settings dark mode", "`settings` takes flags"),
        ("refine 3f2a1b9c4d", "`refine` takes a result id and the words"),
    ],
)
def test_a_mistyped_command_names_its_arguments(text: str, named: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.user_message.startswith(named)
    assert "put the description in quotes" in info.value.user_message


# --- flags as people type them ------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    ["--ar 3:4", "-ar 3:4", "---ar 3:4", "—ar 3:4", "–ar 3:4", "--AR 3:4", "--ar=3:4", "—AR=3:4"],
)
def test_dashes_people_type_make_a_flag(flag: str) -> None:
    command = parse(f"a lighthouse at dawn {flag}")
    assert isinstance(command, Generate)
    assert command.brief == "a lighthouse at dawn"
    assert command.options.aspect_ratio == "3:4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a lighthouse --", "A lone `--` at the end is not a flag"),
        ("a lighthouse —", "A lone `—` at the end is not a flag"),
        ("a lighthouse -- ar 3:4", "did you mean `--ar`?"),
        ("a lighthouse -modle fast", "did you mean `--model`?"),
        ("a lighthouse —resolutoin 4k", "did you mean `--res`?"),
    ],
)
def test_dashes_that_are_almost_a_flag_are_an_error(text: str, expected: str) -> None:
    with pytest.raises(ParseError, match=expected.replace("?", r"\?")):
        parse(text)


# --- secrets in a brief ---------------------------------------------------------------------

VX_SECRET = "vx" + "9f8e7d6c5b4a3210QRST"


@pytest.mark.parametrize(
    "text",
    [
        f"a poster {VX_SECRET}",
        f"kye --provider vtrix {VX_SECRET}",
        f"my key is {VX_SECRET}.",
        f"a poster `{VX_SECRET}` --ar 3:4",
        f"settings --taste {VX_SECRET}",
        f"history {VX_SECRET}",
        "a poster tm_live_" + "abcd1234",
    ],
)
def test_a_secret_shaped_token_is_refused(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.user_message == KEY_IN_TEXT
    assert "rotate it" in KEY_IN_TEXT
    assert VX_SECRET not in info.value.user_message


@pytest.mark.parametrize(
    "text",
    [
        "a supercalifragilistic-expialidocious poster",
        "state-of-the-art-2024-edition poster",
        "a poster https://cdn.example.com/d758n65e878c73cmdg20abc.png",
        "an internationalization poster",
    ],
)
def test_long_words_and_links_are_not_secrets(text: str) -> None:
    assert isinstance(parse(text), Generate)


# --- text that is not text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "brief"),
    [
        ("a\x00 cat\x07 with\x08 a hat", "a cat with a hat"),
        ("a \x1b[31mred\x1b[0m fox", "a red fox"),
        ("a \x1b]0;pwned\x07fox", "a fox"),
        ("a\u200b fox\ufeff in\u200d snow", "a fox in snow"),
        ("cafe\u0301 poster", "café poster"),
        ("a\u2028fox\u00a0in\tsnow", "a fox in snow"),
    ],
)
def test_briefs_are_normalised(text: str, brief: str) -> None:
    command = parse(text)
    assert isinstance(command, Generate)
    assert command.brief == brief


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u2060", "\u3164", "\u0301", "\x1b[2J"])
def test_nothing_visible_is_refused(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.user_message in (NOTHING_VISIBLE, parse_error_empty())


def parse_error_empty() -> str:
    with pytest.raises(ParseError) as info:
        parse("")
    return info.value.user_message


_INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x00", "\x07"])


@_SETTINGS
@given(text=st.text(max_size=60))
def test_clean_leaves_nothing_unprintable(text: str) -> None:
    out = clean(text)
    assert clean(out) == out
    assert out == out.strip()
    assert "  " not in out
    for char in out:
        assert unicodedata.category(char)[0] != "C", repr(char)
    assert all(unicodedata.category(c)[0] != "C" or c == "\n" for c in printable(text))


@_SETTINGS
@given(
    words=st.lists(_PLAIN_WORD, min_size=1, max_size=5),
    junk=st.lists(_INVISIBLE, min_size=1, max_size=5),
)
def test_invisible_characters_never_change_the_brief(words: list[str], junk: list[str]) -> None:
    plain = "a " + " ".join(words)
    noisy = "".join(ch + (junk[i % len(junk)] if i % 2 else "") for i, ch in enumerate(plain))
    assert parse(noisy) == parse(plain)
    assert has_visible(noisy)
