"""tmbot.commands: malformed input, the one-sentence error rule, did-you-mean texts, and
property tests (parse and resolve raise ParseError and nothing else)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmbot import capabilities
from tmbot.commands import (
    FLAGS,
    HELP_TOPICS,
    BindKey,
    BriefOptions,
    Generate,
    Settings,
    TeamKey,
    check_key,
    parse,
    resolve,
    validate_settings,
)
from tmbot.domain import ApiKey, GenerationSpec
from tmbot.errors import ParseError
from tmbot.records import UserSettings

TM_KEY = "tm_live_" + "S3cr3tS3cr3t"
TM_TEST_KEY = "tm_test_" + "AnotherSecret99"
VX_KEY = "vx" + "0123456789abcdefXYZ"
SECRETS = (TM_KEY, TM_TEST_KEY, VX_KEY, "S3cr3tS3cr3t")
_TM_KEY_RE = re.compile(capabilities.TASTEMACHINE.key_pattern)


def is_one_sentence(message: str) -> bool:
    """Non-empty, one line, ends like a sentence, and no sentence boundary (a terminator
    followed by a space and a capital letter) inside."""
    if not message or "\n" in message or message[-1] not in ".?!":
        return False
    return re.search(r"[.?!]\s+[A-Z]", message[:-1]) is None


def check_message(error: ParseError) -> str:
    message = error.user_message
    assert message == str(error)
    assert is_one_sentence(message), message
    assert len(message) < 300, message
    for secret in SECRETS:
        assert secret not in message
    assert not _TM_KEY_RE.search(message), message
    return message


def parse_error(text: str) -> str:
    with pytest.raises(ParseError) as info:
        parse(text)
    return check_message(info.value)


def test_is_one_sentence() -> None:
    assert is_one_sentence("Unknown flag `--x`; did you mean `--ar`?")
    assert is_one_sentence("Tell me what to make, e.g. `/taste a poster --ar 3:4`.")
    assert not is_one_sentence("")
    assert not is_one_sentence("No terminator")
    assert not is_one_sentence("Two sentences. Here is another.")
    assert not is_one_sentence("Line one.\nLine two.")


# --- malformed commands ------------------------------------------------------------------

MALFORMED = [
    "",
    "   ",
    "\n\t",
    "--ar 3:4",
    "--pro https://a.example.com/x.png",
    "a cat --ar",
    "a cat --ar --pro",
    "a cat --ar=",
    "a cat --ar https://a.example.com/x.png",
    "a cat --model",
    "a cat --res",
    "a cat --taste",
    "a cat --provider",
    "a cat --ar 3x4",
    "a cat --ar 3/4",
    "a cat --ar 7:5",
    "a cat --ar square",
    "a cat --ar 9:21",
    "a cat --ar 6:8",
    "a cat --ar 0:0",
    "a cat --ar 3:4 --ar 4:3",
    "a cat --ar 3:4 --aspect=16:9",
    "a cat --pro --fast",
    "a cat --pro --model nano-banana-2",
    "a cat --pro=yes",
    "a cat --model nano-banana-3",
    "a cat --model gpt-image",
    "a cat --model nb2",
    "a cat --res 4",
    "a cat --res 2048",
    "a cat --res 8k",
    "a cat --res .5k",
    "a cat --res hd",
    "a cat --taste photo",
    "a cat --taste realistic-phot",
    "a cat --taste noir",
    "a cat --provider vtirx",
    "a cat --provider openai",
    "a cat --provider vtrix --provider tm",
    "a cat --modle nano-banana-2",
    "a cat --aspec 3:4",
    "a cat --resolutoin 4k",
    "a cat --foo",
    "a cat --seed 42",
    "a cat —modle 2",
    "a cat --ar3:4",
    "a cat ftp://a.example.com/x.png",
    "a cat file:///etc/passwd",
    "a cat <ftp://a.example.com/x.png|x>",
    "a cat https://",
    "a cat http://[::1",
    f"a cat {TM_KEY}",
    f"a cat `{TM_TEST_KEY}`",
    f"my key is {TM_KEY} --ar 3:4",
    f"a cat --taste {TM_KEY}",
    f"settings --taste={TM_KEY}",
    f"team budget @bob {TM_KEY}",
    f"key {TM_KEY} {TM_KEY}",
    "key lime pie on a plate",
    "key not-a-key",
    f"key {VX_KEY}",
    f"key --provider vtrix {TM_KEY[:12]}",
    f"key --model pro {TM_KEY}",
    "key --provider",
    f"key --provider {TM_KEY}",
    f"key --provider openai {TM_KEY}",
    f"team key {VX_KEY}",
    "team key lime",
    "team budget",
    "team budget @bob",
    "team budget @bob 50",
    "team budget @bob 50/week",
    "team budget @bob lots",
    "team budget 50/day",
    "team budget @everyone 50/day",
    "team budget <@&999> 50/day",
    "team budget <#C123|general> 50/day",
    "team budget @bob 9999999999/day",
    "team channel",
    "team channel maybe",
    "team channel on off",
    "team show everything",
    "team link now please",
    "team link ABC",
    "team link ABCD-EFGH-JKLO",
    "team unlink all",
    "link between worlds --ar 3:4",
    "link 1234",
    "unlink everything",
    "Unlink me",
    "settings reset --pro",
    "settings --ar 3x4",
    "settings --modle pro",
    "logout --ar 3:4",
    "logout --provider nope",
    "logout vtrix --provider tm",
    "help setings",
    "help keys",
    "credit",
    "histroy",
    "setting",
    "keys",
]


def test_corpus_is_big_enough() -> None:
    assert len(MALFORMED) >= 40
    assert len(set(MALFORMED)) == len(MALFORMED)


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_commands_get_one_sentence(text: str) -> None:
    parse_error(text)


# Malformed only for the chosen provider or model: parse passes, resolve refuses.
INVALID_REQUESTS = [
    "a tower --ar 1:8",
    "a tower --ar 4:1 --pro",
    "a tower --res 0.5k",
    "a tower --provider vtrix --taste realistic-photo",
    "a tower --provider vtrix --pro",
    "a tower --provider vtrix --model nano-banana-pro --ar 3:4",
    "a tower " + " ".join(f"https://a.example.com/{i}.png" for i in range(15)),
    "a tower --provider vtrix " + " ".join(f"https://a.example.com/{i}.png" for i in range(4)),
    "a tower --provider vtrix " + "word " * 600,
]


@pytest.mark.parametrize("text", INVALID_REQUESTS)
def test_invalid_requests_get_one_sentence(text: str) -> None:
    command = parse(text)
    assert isinstance(command, Generate)
    with pytest.raises(ParseError) as info:
        resolve(command.options, UserSettings(), brief=command.brief, image_urls=command.image_urls)
    check_message(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat --ar 3x4", "did you mean `3:4`?"),
        ("a cat --ar 3/4", "did you mean `3:4`?"),
        ("a cat --ar 9:21", "did you mean `21:9`?"),
        ("a cat --ar 6:8", "did you mean `3:4`?"),
        ("a cat --res 4", "did you mean `4k`?"),
        ("a cat --res 2048", "did you mean `2k`?"),
        ("a cat --res .5k", "did you mean `0.5k`?"),
        ("a cat --taste photo", "did you mean `realistic-photo`?"),
        ("a cat --taste realistic-phot", "did you mean `realistic-photo`?"),
        ("a cat --model nano-banana-3", "did you mean `nano-banana-2`?"),
        ("a cat --model nb2", "did you mean `nano-banana-2`?"),
        ("a cat --provider vtirx", "did you mean `vtrix`?"),
        ("a cat --modle nano-banana-2", "did you mean `--model`?"),
        ("a cat --aspec 3:4", "did you mean `--ar`?"),
        ("a cat --resolutoin 4k", "did you mean `--res`?"),
        ("a cat —modle 2", "did you mean `--model`?"),
        ("help setings", "did you mean `help settings`?"),
        ("credit", "did you mean `credits`?"),
        ("histroy", "did you mean `history`?"),
        ("team budget @bob 50", "did you mean `50/day`?"),
    ],
)
def test_did_you_mean(text: str, expected: str) -> None:
    assert expected in parse_error(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat --ar 7:5", "`1:1`"),  # lists the choices
        ("a cat --res hd", "`0.5k`, `1k`, `2k` or `4k`"),
        ("a cat --foo", "`--ar`"),
        ("a cat --pro --fast", "`nano-banana-pro` and `nano-banana-2`"),
        ("a cat --ar", "`--ar` needs a value"),
        ("a cat ftp://a.example.com/x.png", "not `ftp:` links"),
        ("", "Tell me what to make, e.g. `/taste"),
        (f"a cat {TM_KEY}", "`/taste key`"),
        ("key not-a-key", capabilities.TASTEMACHINE.key_hint),
        (f"key {VX_KEY}", "`key --provider vtrix`"),
        ("team channel maybe", "`on` or `off`"),
        ("team link ABC", "`team link ABCD-EFGH-JKLM`"),
        ("link 1234", "`link ABCD-EFGH-JKLM`"),
        ("link between worlds --ar 3:4", "put the description in quotes"),
        ("unlink everything", "`unlink` takes nothing more"),
        ("team photo", "`link` or `unlink`"),
    ],
)
def test_messages_name_the_choices(text: str, expected: str) -> None:
    assert expected in parse_error(text)


def test_unknown_flag_without_a_near_miss_lists_every_flag() -> None:
    message = parse_error("a cat --seed 42")
    for flag in FLAGS:
        assert f"`{flag}`" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a tower --ar 1:8", "add `--fast`"),
        ("a tower --res 0.5k", "add `--provider vtrix`"),
        ("a tower --provider vtrix --pro", "add `--provider tastemachine`"),
        ("a tower --provider vtrix --taste default", "has no tastes"),
    ],
)
def test_resolve_messages_say_how_to_fix(text: str, expected: str) -> None:
    command = parse(text)
    assert isinstance(command, Generate)
    with pytest.raises(ParseError) as info:
        resolve(command.options, UserSettings(), brief=command.brief, image_urls=())
    assert expected in check_message(info.value)


def test_check_key_errors_are_one_sentence() -> None:
    for provider in capabilities.PROVIDERS:
        for secret in (*SECRETS, "", "x"):
            try:
                check_key(provider, ApiKey(secret=secret))
            except ParseError as error:
                check_message(error)  # checks that no secret in SECRETS appears


def test_settings_errors_are_one_sentence() -> None:
    for options, current in [
        (BriefOptions(aspect_ratio="1:8"), None),
        (BriefOptions(resolution="0.5k"), UserSettings()),
        (BriefOptions(taste="default"), UserSettings(provider=capabilities.VTRIX.provider)),
    ]:
        with pytest.raises(ParseError) as info:
            validate_settings(options, current)
        check_message(info.value)


# --- properties ------------------------------------------------------------------------

_RATIOS = [
    r for pc in capabilities.PROVIDERS.values() for m in pc.models.values() for r in m.aspect_ratios
]
_WORDS = [
    *FLAGS,
    "--ar",
    "--ar=",
    "--ar=3:4",
    "—ar",
    "–res",
    "--aspect",
    "--model",
    "--res",
    "--taste",
    "--provider",
    "--modle",
    "--pro=1",
    "--",
    "—",
    *_RATIOS,
    "3x4",
    "3/4",
    "0:0",
    "99999:1",
    "4K",
    "0.5k",
    "2048",
    "nano_banana_2",
    "nano-banana-pro",
    "pro",
    "fast",
    "realistic-photo",
    "photo",
    "vtrix",
    "tm",
    "tastemachine",
    "https://a.example.com/x.png",
    "https://b.example.com/y.png",
    "<https://c.example.com/z.png|z z>",
    "<https://c.example.com/z.png>",
    "(https://d.example.com/w.png),",
    "https://",
    "http://[::1",
    "ftp://x.example.com/a",
    "file:///etc/passwd",
    "key",
    "team",
    "budget",
    "channel",
    "show",
    "on",
    "off",
    "@bob",
    "<@U123|bob>",
    "<@!123>",
    "<@&1>",
    "default",
    "50/day",
    "200/month",
    "50",
    "settings",
    "reset",
    "logout",
    "all",
    "help",
    *HELP_TOPICS,
    "credits",
    "history",
    TM_KEY,
    VX_KEY,
    '"',
    "'",
    "🦊",
    "a",
    "cat",
    "東京",
]
_TOKEN = st.one_of(st.sampled_from(_WORDS), st.text(max_size=8))
_MIXED = st.lists(_TOKEN, max_size=12).map(" ".join)
_SAVED_VALUE = st.one_of(st.none(), st.sampled_from(_WORDS), st.text(max_size=6))
_SAVED = st.builds(
    UserSettings,
    provider=_SAVED_VALUE,
    model=_SAVED_VALUE,
    aspect_ratio=_SAVED_VALUE,
    resolution=_SAVED_VALUE,
    taste=_SAVED_VALUE,
)

_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_total(text: str) -> object:
    """parse returns a command or raises ParseError with a good message; nothing else."""
    try:
        command = parse(text)
    except ParseError as error:
        check_message(error)
        return None
    if isinstance(command, Generate):
        assert command.brief
        assert command.brief == " ".join(command.brief.split())
        assert len(set(command.image_urls)) == len(command.image_urls)
        assert all(u.lower().startswith(("http://", "https://")) for u in command.image_urls)
        assert not _TM_KEY_RE.search(command.brief)
    return command


def _resolve_total(command: Generate, saved: UserSettings) -> GenerationSpec | None:
    try:
        result = resolve(command.options, saved, brief=command.brief, image_urls=command.image_urls)
    except ParseError as error:
        check_message(error)
        return None
    pc = capabilities.caps(result.provider)
    assert result.aspect_ratio in pc.models[result.model].aspect_ratios
    assert result.resolution in pc.resolutions
    assert result.taste == pc.default_taste or result.taste in pc.tastes
    assert len(result.image_urls) <= pc.max_reference_images
    return result


@_FAST
@given(st.text())
def test_parse_any_text(text: str) -> None:
    command = _parse_total(text)
    if isinstance(command, Generate):
        _resolve_total(command, UserSettings())


@_FAST
@given(_MIXED)
def test_parse_and_resolve_mixed_tokens(text: str) -> None:
    command = _parse_total(text)
    if isinstance(command, Generate):
        _resolve_total(command, UserSettings())


@_FAST
@given(_MIXED, _SAVED)
def test_saved_settings_never_break_a_brief(text: str, saved: UserSettings) -> None:
    """Saved settings that do not fit (even garbage) are ignored: a brief without flags that
    resolves with no saved settings also resolves with any (same provider, so same limits)."""
    command = _parse_total(text)
    if not isinstance(command, Generate):
        return
    saved = replace(saved, provider=None)
    bare = Generate(command.brief, BriefOptions(), command.image_urls)
    if _resolve_total(bare, UserSettings()) is not None:
        assert _resolve_total(bare, saved) is not None


@_FAST
@given(_MIXED, _SAVED)
def test_validate_settings_raises_parse_error_only(text: str, saved: UserSettings) -> None:
    command = _parse_total("settings " + text)
    if not isinstance(command, Settings):
        return
    try:
        result = validate_settings(command.options, saved)
    except ParseError as error:
        check_message(error)
        return
    assert isinstance(result, UserSettings)


@_FAST
@given(st.text(max_size=40))
def test_key_errors_never_echo_the_key(junk: str) -> None:
    for text in (f"key {junk}", f"key --provider vtrix {junk}", f"team key {junk}"):
        try:
            command = parse(text)
        except ParseError as error:
            message = check_message(error)
            for token in junk.split():
                # flags (`--provider`) and provider names are the grammar's own words, which
                # messages do name; no provider's key starts with a dash
                grammar_word = token.lower() in "--provider vtrix tastemachine"
                if len(token) >= 6 and not token.startswith(("-", "—", "–")) and not grammar_word:
                    assert token not in message
            continue
        assert isinstance(command, BindKey | TeamKey)
