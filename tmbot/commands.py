"""Parse the text after ``/taste`` into typed commands, and validate briefs per provider.

One grammar on every platform::

    <brief> [flags] [image URLs]
    key [--provider P] [KEY]             logout [--provider P | P | all]
    credits    history    help [TOPIC]   settings [reset | flags]
    team [show]   team key [--provider P] [KEY]   team channel on|off
    team budget @user|default 50/day|200/month|off
    link [CODE]   unlink   team link [CODE]   team unlink

Flags: ``--ar 3:4`` (``--aspect``, ``--aspect-ratio``, ``--ratio``, ``--ar=3:4``),
``--model nano-banana-2`` (``--pro``, ``--fast``), ``--res 4k`` (``--resolution``),
``--taste realistic-photo``, ``--provider vtrix`` (``tm``, ``taste-machine``). Flag names are
case-insensitive, and an em or en dash (``—ar``, what phones make of ``--``) works as ``--``.
An em-dash word that is not close to a flag name stays in the brief (``a poster —minimal``).

How the parts fit:

* :func:`parse` checks shape and spelling only: every value must exist for *some* provider
  (``--ar 3x4`` fails with "did you mean `3:4`?", ``--res 0.5k`` passes). Values come back
  normalised (``4K`` -> ``4k``, ``nano_banana_2`` -> ``nano-banana-2``).
* :func:`resolve` picks the provider and checks the request against *its* table: flags win over
  the user's saved settings, which win over the provider's defaults. A flag that does not fit
  is an error; a saved setting that does not fit this provider or model is ignored (a saved
  ``--taste`` does not break ``--provider vtrix``).
* :func:`validate_settings` does the same for ``settings <flags>`` and returns what to store.

The command-word rule: leading ``/taste`` words are dropped (people paste the help text), and
so is a leading ``taste`` before a command word (``taste credits``). When the first word is one
of :data:`COMMAND_WORDS` (any case), the line *is* that command: it parses as one of its
shapes or fails with one sentence naming its valid arguments, so ``credits please`` or
``history 5`` never becomes a paid image. A brief that starts with such a word is written in
quotes: ``"history of the Tokyo subway" --ar 3:4`` (the quotes are dropped from the brief).

Every line is cleaned first (:mod:`tmbot.cleantext`: NFC, no control, escape or zero-width
characters, single spaces). Any text holding something shaped like an API key of either
provider is refused (outside ``key`` and ``team key``), and the message tells the person to
rotate it. No message ever echoes a key.

Every list of models, ratios, resolutions, tastes, limits and key shapes is read from
:mod:`tmbot.capabilities`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import TypeAlias
from urllib.parse import urlsplit

from tmbot import capabilities
from tmbot.capabilities import ProviderCaps
from tmbot.cleantext import clean, has_visible
from tmbot.domain import ApiKey, GenerationSpec, ProviderName
from tmbot.errors import ParseError
from tmbot.records import UserSettings
from tmbot.suggest import choices_text, closest, code

EXAMPLE = "/taste a minimal poster for a Tokyo coffee shop --ar 3:4"
HELP_TOPICS: tuple[str, ...] = ("flags", "key", "settings", "credits", "team")
#: ``--pro`` and ``--fast`` (also accepted as ``--model pro`` / ``--model fast``).
MODEL_SHORTHANDS: Mapping[str, str] = MappingProxyType(
    {"pro": "nano-banana-pro", "fast": "nano-banana-2"}
)
#: The flags as shown in help and messages.
FLAGS: tuple[str, ...] = ("--ar", "--model", "--pro", "--fast", "--res", "--taste", "--provider")
#: A line whose first word is one of these (any case) is that command, never a brief.
COMMAND_WORDS: tuple[str, ...] = (
    "key",
    "logout",
    "credits",
    "settings",
    "history",
    "help",
    "team",
    "regenerate",
    "delete",
    "refine",
    "link",
    "unlink",
)
#: The longest line read at all (before cleaning); briefs have their own, smaller caps.
MAX_TEXT_CHARS = 20_000
#: Quote marks that open a brief starting with a command word, and what closes each.
QUOTES: Mapping[str, str] = MappingProxyType(
    {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "„": "“", "”": "”"}
)

# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class BriefOptions:
    """Flags from a brief or ``settings``; ``None`` means not given. Values are normalised:
    core model names, ``"3:4"``, lower-case resolutions (``"0.5k"``), taste names."""

    provider: ProviderName | None = None
    model: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    taste: str | None = None

    def over(self, base: BriefOptions) -> BriefOptions:
        """These options where given, else ``base``'s (e.g. Discord's typed options over the
        flags in the text)."""

        def pick(mine: str | None, theirs: str | None) -> str | None:
            return mine if mine is not None else theirs

        return BriefOptions(
            provider=self.provider if self.provider is not None else base.provider,
            model=pick(self.model, base.model),
            aspect_ratio=pick(self.aspect_ratio, base.aspect_ratio),
            resolution=pick(self.resolution, base.resolution),
            taste=pick(self.taste, base.taste),
        )

    @property
    def is_empty(self) -> bool:
        return self == BriefOptions()


@dataclass(frozen=True)
class Generate:
    brief: str
    options: BriefOptions
    image_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class BindKey:
    """``key``: ``key=None`` means no key was typed (the adapter opens a modal)."""

    provider: ProviderName
    key: ApiKey | None


@dataclass(frozen=True)
class Logout:
    provider: ProviderName | None  # None: every provider


@dataclass(frozen=True)
class Credits:
    pass


@dataclass(frozen=True)
class Settings:
    """``settings`` shows (empty options), ``settings <flags>`` sets (pass the options through
    :func:`validate_settings`), ``settings reset`` clears."""

    options: BriefOptions
    reset: bool = False


@dataclass(frozen=True)
class History:
    pass


@dataclass(frozen=True)
class Help:
    topic: str | None = None  # one of HELP_TOPICS


@dataclass(frozen=True)
class TeamKey:
    provider: ProviderName
    key: ApiKey | None


@dataclass(frozen=True)
class TeamBudget:
    """``team budget @bob 50/day``. ``target`` is a user id (``None``: the default for every
    member); ``remove`` (``… off``) deletes the budget, and then amount is 0 and period
    ``"day"``, both meaningless."""

    target: str | None
    amount: int
    period: str  # "day" | "month"
    remove: bool = False


@dataclass(frozen=True)
class TeamChannel:
    enabled: bool


@dataclass(frozen=True)
class TeamShow:
    pass


@dataclass(frozen=True)
class LinkTeams:
    """``team link``: make a code (``code=None``), or use one made on the other platform."""

    code: str | None = None  # normalised: 12 characters of LINK_CODE_ALPHABET


@dataclass(frozen=True)
class UnlinkTeams:
    pass


@dataclass(frozen=True)
class LinkAccounts:
    """``link``: make a personal code (``code=None``), or use one made on the other
    platform."""

    code: str | None = None


@dataclass(frozen=True)
class UnlinkAccounts:
    pass


@dataclass(frozen=True)
class Regenerate:
    """``regenerate ID``: another of a result (ids are case-insensitive: stored lower-case)."""

    generation_id: str


@dataclass(frozen=True)
class Delete:
    """``delete ID``."""

    generation_id: str


@dataclass(frozen=True)
class Refine:
    """``refine ID words [flags]``: the result's brief with more words; new flags win."""

    generation_id: str
    brief: str
    options: BriefOptions
    image_urls: tuple[str, ...] = ()


Command: TypeAlias = (
    Generate
    | BindKey
    | Logout
    | Credits
    | Settings
    | History
    | Help
    | TeamKey
    | TeamBudget
    | TeamChannel
    | TeamShow
    | LinkTeams
    | UnlinkTeams
    | LinkAccounts
    | UnlinkAccounts
    | Regenerate
    | Delete
    | Refine
)

# --- messages that are used in more than one place -----------------------------------

EMPTY_BRIEF = f"Tell me what to make, e.g. {code(EXAMPLE)}."
KEY_IN_TEXT = (
    "That looks like an API key, so I did not use or store it: if it is a real key, rotate it at "
    "the provider now (it was written in a message) and bind the new one privately with "
    "`/taste key`."
)
NOTHING_VISIBLE = (
    "Your brief has no visible characters left once invisible and control characters are "
    f"removed; describe the image in words, e.g. {code(EXAMPLE)}."
)
BUDGET_USAGE = (
    "`team budget` needs a member and an amount, e.g. `team budget @bob 50/day`, "
    "`team budget default 200/month` or `team budget @bob off`."
)

# --- choices, read from the capability tables ----------------------------------------


def _providers() -> Iterable[ProviderCaps]:
    return capabilities.PROVIDERS.values()


def _union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for group in groups for item in group))


def _resolution_order(res: str) -> float:
    try:
        return float(res.rstrip("k"))
    except ValueError:
        return math.inf


def _sorted_resolutions(resolutions: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(resolutions, key=_resolution_order))


def _all_models() -> tuple[str, ...]:
    return _union(pc.models for pc in _providers())


def _all_ratios() -> tuple[str, ...]:
    return _union(m.aspect_ratios for pc in _providers() for m in pc.models.values())


def _all_resolutions() -> tuple[str, ...]:
    return _sorted_resolutions(_union(pc.resolutions for pc in _providers()))


def _all_tastes() -> tuple[str, ...]:
    return _union(pc.tastes for pc in _providers())


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_PROVIDER_ALIASES: Mapping[str, ProviderName] = MappingProxyType(
    {"tm": ProviderName.TASTEMACHINE, "vtrixai": ProviderName.VTRIX}
)


def _provider_alias(word: str) -> ProviderName | None:
    """The provider a word names (value, display name or alias, any case/punctuation)."""
    compact = _compact(word)
    if not compact:
        return None
    for pc in _providers():
        if compact in (_compact(pc.provider.value), _compact(pc.display_name)):
            return pc.provider
    return _PROVIDER_ALIASES.get(compact)


@cache
def _key_in_text() -> re.Pattern[str]:
    """A Taste Machine key anywhere in a text (they are distinctive; Vtrix keys are not)."""
    pattern = capabilities.caps(ProviderName.TASTEMACHINE).key_pattern
    return re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})")


def _looks_secret(value: str) -> bool:
    if _key_in_text().search(value):
        return True
    return any(re.fullmatch(pc.key_pattern, value) for pc in _providers())


_SECRET_PART = re.compile(r"[-_.]")


def secret_shaped(token: str) -> bool:
    """True when a word looks like an API secret of either provider: a Taste Machine key
    anywhere in it, or (outside links) a random-looking token of 20+ characters, i.e. one
    with a run of 16+ letters and digits mixed, which Vtrix keys are and words are not."""
    if _key_in_text().search(token):
        return True
    if "://" in token:
        return False
    word = token.strip("\"'`<>()[]{},;:!?")
    if len(word) < 20 or not any(re.fullmatch(pc.key_pattern, word) for pc in _providers()):
        return False
    return any(
        len(part) >= 16 and re.search(r"[0-9]", part) and re.search(r"[A-Za-z]", part)
        for part in _SECRET_PART.split(word)
    )


def contains_secret(text: str) -> bool:
    """True when any word of ``text`` is :func:`secret_shaped`."""
    return any(secret_shaped(token) for token in text.split())


def _show(value: str) -> str:
    """A user's value for a message: inline code, or ``…`` when it is long or key-like."""
    if len(value) > 40 or _looks_secret(value):
        return code("…")
    return code(value)


def _is_not_one_of(label: str, value: str, choices: Sequence[str], guess: str | None) -> str:
    head = f"{label} {_show(value)} is not one of {choices_text(choices)}"
    return f"{head}; did you mean {code(guess)}?" if guess else f"{head}."


# --- value normalisers (shape and spelling; any provider) ----------------------------

_RATIO_LIKE = re.compile(r"(\d{1,4})\s*[:xX×*/∶：\-_.,;]\s*(\d{1,4})")


def normalise_aspect_ratio(raw: str) -> str:
    """``"3:4"`` stays; ``3x4``, ``3/4``, ``6:8`` and ``9:21`` are errors with a
    did-you-mean (never silently rewritten)."""
    value = raw.strip()
    choices = _all_ratios()
    if value in choices:
        return value
    guess = None
    m = _RATIO_LIKE.fullmatch(value)
    if m:
        a, b = int(m[1]), int(m[2])
        g = math.gcd(a, b)
        candidates = [f"{a}:{b}", f"{b}:{a}"]
        if g:
            candidates += [f"{a // g}:{b // g}", f"{b // g}:{a // g}"]
        guess = next((c for c in candidates if c in choices), None)
    raise ParseError(_is_not_one_of("Aspect ratio", value, choices, guess))


_NUMBER = re.compile(r"\d{1,5}(?:\.\d{1,3})?")


def normalise_resolution(raw: str) -> str:
    """Lower-case core form: ``4K`` -> ``4k``, ``0.5K`` -> ``0.5k``; ``4``, ``2048``,
    ``.5k`` are errors with a did-you-mean."""
    value = raw.strip().lower()
    choices = _all_resolutions()
    if value in choices:
        return value
    guess = None
    bare = value.removesuffix("px").strip()
    if bare.startswith("."):
        bare = "0" + bare
    if bare.endswith("k") and bare in choices:
        guess = bare
    elif _NUMBER.fullmatch(bare):
        n = float(bare)
        for candidate in (f"{n:g}k", f"{n / 1024:g}k"):
            if candidate in choices:
                guess = candidate
                break
    if guess is None:
        guess = closest(value, choices)
    raise ParseError(_is_not_one_of("Resolution", value, choices, guess))


def normalise_taste(raw: str) -> str:
    """Lower-case, ``_`` and spaces as ``-``: ``Realistic_Photo`` -> ``realistic-photo``."""
    value = re.sub(r"[\s_]+", "-", raw.strip().lower())
    choices = _all_tastes()
    if value in choices:
        return value
    raise ParseError(_is_not_one_of("Taste", value, choices, closest(value, choices)))


def normalise_model(raw: str) -> str:
    """Core model name, ignoring case and punctuation (``nano_banana_2``, ``NanoBanana2``);
    ``pro`` and ``fast`` are the shorthands."""
    value = raw.strip()
    choices = _all_models()
    compact = _compact(value)
    by_compact = {_compact(c): c for c in choices}
    if compact in by_compact:
        return by_compact[compact]
    if compact in MODEL_SHORTHANDS:
        return MODEL_SHORTHANDS[compact]
    guess = None
    if compact.startswith("nb") and "nanobanana" + compact[2:] in by_compact:
        guess = by_compact["nanobanana" + compact[2:]]
    if guess is None and compact:
        tails = [c for k, c in by_compact.items() if k.endswith(compact)]
        guess = tails[0] if len(tails) == 1 else None
    if guess is None:
        near = closest(compact, by_compact, cutoff=0.7)
        guess = by_compact[near] if near else None
    raise ParseError(_is_not_one_of("Model", value, choices, guess))


def normalise_provider(raw: str) -> ProviderName:
    """``vtrix``, ``tastemachine``, ``tm``, ``taste-machine``, ``The Taste Machine``…"""
    found = _provider_alias(raw)
    if found is not None:
        return found
    names = [p.value for p in ProviderName]
    guess = closest(_compact(raw), names, cutoff=0.7)
    raise ParseError(_is_not_one_of("Provider", raw.strip(), names, guess))


_NORMALISERS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "provider": normalise_provider,
        "model": normalise_model,
        "aspect_ratio": normalise_aspect_ratio,
        "resolution": normalise_resolution,
        "taste": normalise_taste,
    }
)
_FIELD_NOUN: Mapping[str, str] = MappingProxyType(
    {
        "provider": "providers",
        "model": "models",
        "aspect_ratio": "aspect ratios",
        "resolution": "resolutions",
        "taste": "tastes",
    }
)


def make_options(
    *,
    provider: str | None = None,
    model: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    taste: str | None = None,
) -> BriefOptions:
    """Options from loose strings (e.g. Discord's typed command options), normalised and
    spell-checked exactly like flags. Empty strings count as not given."""
    return BriefOptions(
        provider=normalise_provider(provider) if provider else None,
        model=normalise_model(model) if model else None,
        aspect_ratio=normalise_aspect_ratio(aspect_ratio) if aspect_ratio else None,
        resolution=normalise_resolution(resolution) if resolution else None,
        taste=normalise_taste(taste) if taste else None,
    )


# --- tokens ----------------------------------------------------------------------------

# Slack wraps links as <https://x|label> and mentions as <@U123|bob>; labels may hold spaces.
_SLACK_LINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]*://[^<>|\s]*)(?:\|[^<>]*)?>")
_SLACK_MENTION = re.compile(r"<([@#!][^<>|\s]*)\|[^<>]*>")
#: Dashes people type before a flag: hyphens, and the en/em dashes (and minus signs) that
#: Slack, macOS and phones make of ``--``.
_DASHES = "-‐‑‒–—―−"
_FLAG = re.compile(rf"([{_DASHES}]+)([A-Za-z][^=]*)(?:=(.*))?", re.DOTALL)
_ONLY_DASHES = re.compile(rf"[{_DASHES}]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,30})://")

_VALUE_FLAGS: Mapping[str, str] = MappingProxyType(
    {
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
)
_FIELD_FLAG: Mapping[str, str] = MappingProxyType(
    {
        "provider": "--provider",
        "model": "--model",
        "aspect_ratio": "--ar",
        "resolution": "--res",
        "taste": "--taste",
    }
)


def _tokenise(text: str) -> list[str]:
    text = _SLACK_LINK.sub(r" \1 ", text)
    text = _SLACK_MENTION.sub(r"<\1>", text)
    return text.split()


@dataclass(frozen=True)
class _Flag:
    name: str  # lower-case, without dashes, "_" as "-"
    value: str | None  # from --name=value
    shown: str  # for messages, e.g. "--modle"


def _flag_of(token: str) -> _Flag | None:
    """The flag a token is, if it is one. ``--x`` always is; with any other run of dashes
    (``-ar``, ``---ar``, ``—ar``, ``–ar``) only when ``x`` is (close to) a flag name, since a
    dash is also punctuation in a brief. Names are case-insensitive."""
    m = _FLAG.fullmatch(token)
    if not m:
        return None
    name = m[2].lower().replace("_", "-")
    flag = _Flag(name=name, value=m[3], shown="--" + name)
    if m[1] == "--":
        return flag
    known = [*_VALUE_FLAGS, *MODEL_SHORTHANDS]
    return flag if closest(name, known, cutoff=0.75) else None


def _check_lone_dashes(tokens: Sequence[str], i: int) -> None:
    """A token of dashes alone is punctuation in a brief (``the year -- 1999``), except at
    the very end or right before a flag's name (``-- ar 3:4``): then it was meant as a flag."""
    token = tokens[i]
    if not _ONLY_DASHES.fullmatch(token) or token in ("-",):
        return
    if i + 1 == len(tokens):
        raise ParseError(
            f"A lone {_show(token)} at the end is not a flag; write the flag's name right after "
            "the dashes, e.g. `--ar 3:4`, or remove it."
        )
    name = tokens[i + 1].lower()
    if name in _VALUE_FLAGS or name in MODEL_SHORTHANDS:
        canonical = _FIELD_FLAG.get(_VALUE_FLAGS.get(name, ""), "--" + name)
        raise ParseError(
            f"{_show(token)} followed by a space is not a flag; did you mean {code(canonical)}?"
        )


def _unknown_flag(flag: _Flag) -> ParseError:
    names = [*_VALUE_FLAGS, *MODEL_SHORTHANDS]
    guess = closest(flag.name, names)
    shown = _show(flag.shown)
    if guess:
        canonical = _FIELD_FLAG.get(_VALUE_FLAGS.get(guess, ""), "--" + guess)
        return ParseError(f"Unknown flag {shown}; did you mean {code(canonical)}?")
    return ParseError(
        f"Unknown flag {shown}; the flags are {choices_text(FLAGS, conjunction='and')}."
    )


def _missing_value(field_name: str) -> ParseError:
    flag = _FIELD_FLAG[field_name]
    if field_name == "provider":
        choices: Sequence[str] = [p.value for p in ProviderName]
    else:
        choices = {
            "model": _all_models,
            "aspect_ratio": _all_ratios,
            "resolution": _all_resolutions,
            "taste": _all_tastes,
        }[field_name]()
    return ParseError(f"{code(flag)} needs a value, one of {choices_text(choices)}.")


def _is_url_like(token: str) -> bool:
    return _SCHEME.match(_strip_url(token)) is not None


def _strip_url(token: str) -> str:
    url = token.strip("\"'`<>[]{}").rstrip(".,;:!?\"'`")
    url = url.removeprefix("(")
    if url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    return url


def _url_of(token: str) -> str | None:
    """The http(s) link a token is; None when it is not a link at all; an error for other
    schemes (``ftp:``, ``file:``) and for broken links."""
    url = _strip_url(token)
    m = _SCHEME.match(url)
    if not m:
        return None
    scheme = m[1].lower()
    if scheme not in ("http", "https"):
        raise ParseError(
            f"Reference images must be `http://` or `https://` links, not {_show(scheme + ':')} "
            "links."
        )
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        raise ParseError("One of the image links is not a complete `https://` address.")
    return url


# --- scanning a brief ------------------------------------------------------------------


@dataclass
class _Scan:
    words: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)

    def set(self, field_name: str, value: str) -> None:
        old = self.values.get(field_name)
        if old is not None and old != value:
            raise ParseError(
                f"You gave two different {_FIELD_NOUN[field_name]}, {code(old)} and "
                f"{code(value)}; pick one."
            )
        self.values[field_name] = value

    def options(self) -> BriefOptions:
        provider = self.values.get("provider")
        return BriefOptions(
            provider=ProviderName(provider) if provider is not None else None,
            model=self.values.get("model"),
            aspect_ratio=self.values.get("aspect_ratio"),
            resolution=self.values.get("resolution"),
            taste=self.values.get("taste"),
        )


def _flag_value(flag: _Flag, tokens: Sequence[str], i: int) -> tuple[str | None, int]:
    """The value for a value-taking flag: inline (``--ar=3:4``) or the next token, unless
    that is another flag or a link. Returns the value and the next index."""
    if flag.value is not None:
        return flag.value, i
    if i < len(tokens) and _flag_of(tokens[i]) is None and not _is_url_like(tokens[i]):
        return tokens[i], i + 1
    return None, i


def _scan(tokens: Sequence[str]) -> _Scan:
    scan = _Scan()
    i = 0
    while i < len(tokens):
        _check_lone_dashes(tokens, i)
        token = tokens[i]
        i += 1
        flag = _flag_of(token)
        if flag is not None:
            if flag.name in MODEL_SHORTHANDS:
                if flag.value is not None:
                    model = MODEL_SHORTHANDS[flag.name]
                    raise ParseError(
                        f"{code(flag.shown)} takes no value (it means `--model {model}`)."
                    )
                scan.set("model", MODEL_SHORTHANDS[flag.name])
                continue
            field_name = _VALUE_FLAGS.get(flag.name)
            if field_name is None:
                raise _unknown_flag(flag)
            raw, i = _flag_value(flag, tokens, i)
            if not raw:
                raise _missing_value(field_name)
            scan.set(field_name, _NORMALISERS[field_name](raw))
            continue
        url = _url_of(token)
        if url is not None:
            if url not in scan.urls:
                scan.urls.append(url)
            continue
        scan.words.append(token)
    return scan


# --- parse -----------------------------------------------------------------------------

_ONE_WORD_COMMANDS = ("help", "credits", "history", "logout", "settings", "key")
_ON = ("on", "enable", "enabled", "yes", "true")
_OFF = ("off", "disable", "disabled", "no", "false")


def parse(text: str) -> Command:
    """Turn the text after ``/taste`` into a command. Raises :class:`ParseError` only, with
    one sentence for the user; never echoes a key. See the module docstring for the
    command-word rule."""
    if len(text) > MAX_TEXT_CHARS:
        raise ParseError(
            f"That message has {len(text):,} characters, far more than a brief may have; "
            f"{_brief_caps()}."
        )
    tokens = _drop_taste(_tokenise(clean(text)))
    if not tokens:
        raise ParseError(EMPTY_BRIEF)
    head, rest = tokens[0].lower(), tokens[1:]
    if head == "key":
        provider, key = _parse_key(rest, command="key")
        return BindKey(provider=provider, key=key)
    if head == "team" and rest and rest[0].lower() == "key":
        provider, key = _parse_key(rest[1:], command="team key")
        return TeamKey(provider=provider, key=key)
    if any(secret_shaped(token) for token in tokens):
        raise ParseError(KEY_IN_TEXT)
    if head in COMMAND_WORDS:
        return _parse_command(head, rest)
    if len(tokens) == 1:
        near = closest(head, _ONE_WORD_COMMANDS, cutoff=0.85)
        if near and near != head:
            raise ParseError(
                f"{_show(tokens[0])} is not a command (for an image, describe it in a few "
                f"more words); did you mean {code(near)}?"
            )
    return _parse_generate(tokens)


def _brief_caps() -> str:
    """``briefs may have at most 4,000 characters on The Taste Machine and 2,500 on …``"""
    capped = [pc for pc in _providers() if pc.prompt_max_chars is not None]
    parts = [f"{pc.prompt_max_chars:,} characters on {pc.display_name}" for pc in capped[:1]]
    parts += [f"{pc.prompt_max_chars:,} on {pc.display_name}" for pc in capped[1:]]
    return "briefs may have at most " + " and ".join(parts)


def _drop_taste(tokens: list[str]) -> list[str]:
    """Leading ``/taste`` words go (the help text says ``/taste …``), and a ``taste`` right
    before a command word (``taste credits``)."""
    i = 0
    while i < len(tokens) and tokens[i].lower() == "/taste":
        i += 1
    if (
        i + 1 < len(tokens)
        and tokens[i].lower() == "taste"
        and tokens[i + 1].lower() in COMMAND_WORDS
    ):
        i += 1
    return tokens[i:]


def _unquoted_command_word(words: Sequence[str]) -> str | None:
    """The brief without the quotes around its start, when it starts with a quoted command
    word (``"history of the Tokyo subway"``); None when it does not."""
    if not words or not words[0] or words[0][0] not in QUOTES:
        return None
    opening, text = words[0][0], " ".join(words)[1:]
    if not text or text.split()[0].lower().strip("".join(QUOTES.values())) not in COMMAND_WORDS:
        return None
    closing = QUOTES[opening]
    at = text.rfind(closing) if closing in "'’" else text.find(closing)
    if at >= 0:
        text = text[:at] + text[at + 1 :]
    return " ".join(text.split())


def _parse_generate(tokens: Sequence[str]) -> Generate:
    scan = _scan(tokens)
    if not scan.words:
        raise ParseError(EMPTY_BRIEF)
    brief = _unquoted_command_word(scan.words) or " ".join(scan.words)
    if not has_visible(brief):
        raise ParseError(NOTHING_VISIBLE)
    return Generate(brief=brief, options=scan.options(), image_urls=tuple(scan.urls))


REFINE_EMPTY = (
    "Say how to change the image, e.g. `warmer, more negative space --ar 4:5`, or react 🔁 "
    "to make another as it was."
)


def parse_refinement(text: str) -> Generate:
    """The words, flags and links of a refinement (``warmer, more negative space --ar 4:5``).
    Its words may be empty (new flags alone change the original's parameters)."""
    tokens = _tokenise(clean(text))
    if any(secret_shaped(token) for token in tokens):
        raise ParseError(KEY_IN_TEXT)
    scan = _scan(tokens)
    options = scan.options()
    if not has_visible(" ".join(scan.words)) and not scan.urls and options.is_empty:
        raise ParseError(REFINE_EMPTY)
    return Generate(brief=" ".join(scan.words), options=options, image_urls=tuple(scan.urls))


_USAGE: Mapping[str, str] = MappingProxyType(
    {
        "credits": "`credits` takes nothing more",
        "history": "`history` takes nothing more (it lists your last 10 images)",
        "help": f"`help` takes nothing or one topic, {choices_text(HELP_TOPICS)}",
        "settings": (
            "`settings` takes flags such as `--ar 3:4 --fast`, or `reset`, or nothing to show "
            "your defaults"
        ),
        "logout": "`logout` takes a provider such as `vtrix`, or `all`, or nothing",
        "team": "`team` takes `show`, `key`, `budget`, `channel`, `link` or `unlink`",
        "link": "`link` takes nothing (for a code) or the code made on your other platform, "
        "e.g. `link ABCD-EFGH-JKLM`",
        "unlink": "`unlink` takes nothing more",
        "regenerate": "`regenerate` takes one result id and nothing else, e.g. "
        "`regenerate 3f2a1b9c4d`",
        "delete": "`delete` takes one result id and nothing else, e.g. `delete 3f2a1b9c4d`",
        "refine": "`refine` takes a result id and the words to add, e.g. "
        "`refine 3f2a1b9c4d warmer light`",
    }
)
_RESULT_ID = re.compile(r"`?([A-Za-z0-9]{4,40})`?")


def not_a_brief(word: str) -> ParseError:
    """The error for a line that starts with a command word but is not that command."""
    return ParseError(
        f"{_USAGE[word]}; to make an image whose description starts with “{word}”, put the "
        f"description in quotes, e.g. {code(chr(34) + word + ' …' + chr(34))}."
    )


def _result_id(token: str) -> str | None:
    m = _RESULT_ID.fullmatch(token)
    return m[1].lower() if m else None


def _parse_command(head: str, rest: list[str]) -> Command:
    """The line is the command ``head`` names: one of its shapes, or an error naming them."""
    command: Command | None = None
    if head in ("credits", "history"):
        command = None if rest else Credits() if head == "credits" else History()
    elif head == "help":
        command = _parse_help(rest)
    elif head == "settings":
        command = _parse_settings(rest)
    elif head == "logout":
        command = _parse_logout(rest)
    elif head == "team":
        command = _parse_team(rest)
    elif head in ("regenerate", "delete") and len(rest) == 1:
        generation_id = _result_id(rest[0])
        if generation_id is not None:
            command = Regenerate(generation_id) if head == "regenerate" else Delete(generation_id)
    elif head == "refine" and len(rest) >= 2:
        command = _parse_refine(rest)
    elif head == "link" and len(rest) <= 1:
        command = LinkAccounts(link_code(rest[0], command="link") if rest else None)
    elif head == "unlink" and not rest:
        command = UnlinkAccounts()
    if command is None:
        raise not_a_brief(head)
    return command


def _parse_refine(rest: list[str]) -> Refine | None:
    generation_id = _result_id(rest[0])
    if generation_id is None:
        return None
    scan = _scan(rest[1:])
    brief = " ".join(scan.words)
    if not has_visible(brief) and scan.options().is_empty and not scan.urls:
        return None
    return Refine(generation_id, brief, scan.options(), tuple(scan.urls))


def _parse_help(rest: list[str]) -> Help | None:
    if not rest:
        return Help()
    if len(rest) != 1:
        return None
    topic = rest[0].lower()
    if topic in HELP_TOPICS:
        return Help(topic=topic)
    near = closest(topic, HELP_TOPICS, cutoff=0.85)
    if near:
        raise ParseError(
            f"There is no help on {_show(topic)}; did you mean {code('help ' + near)}?"
        )
    return None


def _parse_settings(rest: list[str]) -> Settings | None:
    if not rest:
        return Settings(options=BriefOptions())
    scan = _scan(rest)
    if scan.urls:
        return None
    if not scan.words:
        return Settings(options=scan.options())
    if [w.lower() for w in scan.words] in (["reset"], ["clear"]):
        if scan.values:
            raise ParseError(
                "`settings reset` clears your defaults and takes no flags; set new ones "
                "afterwards, e.g. `settings --ar 3:4 --pro`."
            )
        return Settings(options=BriefOptions(), reset=True)
    return None


def _parse_logout(rest: list[str]) -> Logout | None:
    scan = _scan(rest)
    if scan.urls or len(scan.words) > 1:
        return None
    provider = scan.options().provider
    if scan.words:
        word = scan.words[0]
        named = _provider_alias(word)
        if named is None and not (word.lower() == "all" and provider is None):
            return None
        if named is not None:
            scan.set("provider", named.value)
            provider = named
    if set(scan.values) - {"provider"}:
        raise ParseError(
            "`logout` takes only a provider, e.g. `logout --provider vtrix`, or nothing to log "
            "out everywhere."
        )
    return Logout(provider=provider)


def _parse_team(rest: list[str]) -> Command | None:
    if not rest:
        return TeamShow()
    sub, args = rest[0].lower(), rest[1:]
    if sub == "show":
        if args:
            raise ParseError("`team show` takes nothing more; try just `team show`.")
        return TeamShow()
    if sub == "channel":
        word = args[0].lower() if len(args) == 1 else ""
        if word in _ON or word in _OFF:
            return TeamChannel(enabled=word in _ON)
        raise ParseError("`team channel` takes `on` or `off`, e.g. `team channel on`.")
    if sub == "budget":
        return _parse_budget(args)
    if sub == "link":
        if len(args) > 1:
            raise ParseError(
                "`team link` takes nothing (for a code) or the code an admin made on the other "
                "platform, e.g. `team link ABCD-EFGH-JKLM`."
            )
        return LinkTeams(link_code(args[0], command="team link") if args else None)
    if sub == "unlink":
        if args:
            raise ParseError("`team unlink` takes nothing more; try just `team unlink`.")
        return UnlinkTeams()
    return None


#: link codes: 12 characters without look-alikes (no 0/O, 1/I), shown as ABCD-EFGH-JKLM
LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LINK_CODE_LENGTH = 12


def link_code(token: str, *, command: str) -> str:
    """A typed link code, normalised (upper case, no dashes or spaces); one sentence when
    it does not have the shape of a code."""
    code = re.sub(r"[\s\-‐‑–—_]", "", token.strip("`'\"“”")).upper()
    if len(code) == LINK_CODE_LENGTH and all(c in LINK_CODE_ALPHABET for c in code):
        return code
    raise ParseError(
        f"That is not a link code: codes have 12 letters and digits, e.g. "
        f"`{command} ABCD-EFGH-JKLM`; copy it from the private answer to `{command}`."
    )


_MENTION = re.compile(r"<@!?([A-Za-z0-9]{1,64})>")
_AT_NAME = re.compile(r"@([^\s@<>|#]{1,80})")
_BARE_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,79}")
_GROUP_MENTIONS = ("@everyone", "@here", "@channel")
_PLATFORM_ID = re.compile(r"[UW][A-Z0-9]{2,}|\d{5,}")
_EVERYONE_WORDS = ("all", "everyone", "everybody", "here", "channel", "team", "members")
_BUDGET = re.compile(r"(\d{1,9})\s*(?:/|per|a|an|each|every)?\s*([a-z]+)")
_PERIODS: Mapping[str, str] = MappingProxyType(
    {
        "day": "day",
        "days": "day",
        "d": "day",
        "daily": "day",
        "month": "month",
        "months": "month",
        "mo": "month",
        "m": "month",
        "monthly": "month",
    }
)
_REMOVE_WORDS = ("off", "none", "remove", "clear")


def _budget_target(token: str) -> str | None:
    """A member's id from a mention (``@bob``, ``<@U123>``, ``<@!123>``), or None for
    ``default``."""
    if token.lower() == "default":
        return None
    lowered = token.lower()
    if lowered.startswith(("<@&", "<#", "<!")) or lowered in _GROUP_MENTIONS:
        raise ParseError(
            "Budgets are per member, so mention one person (e.g. `@bob`) or say `default` for "
            "everyone, not a role, channel or group."
        )
    bare = token.rstrip(",;:").removeprefix("@").lower()
    if bare in _EVERYONE_WORDS:
        raise ParseError(
            f"{_show(token)} is not a member: a budget is for one person (e.g. `@bob`), or say "
            "`default` for everyone without their own."
        )
    m = _MENTION.fullmatch(token.rstrip(",;:"))
    if m:
        return m[1]  # a platform's user id: its case matters
    for pattern in (_AT_NAME, _BARE_ID):
        m = pattern.fullmatch(token.rstrip(",;:"))
        if m:
            name = m[1] if m.groups() else m[0]
            # a Slack or Discord id keeps its case; a typed name (the console's users) is
            # one person whatever the case
            return name if _PLATFORM_ID.fullmatch(name) else name.casefold()
    raise ParseError(BUDGET_USAGE)


def _parse_budget(args: list[str]) -> TeamBudget:
    if len(args) < 2:
        raise ParseError(BUDGET_USAGE)
    target = _budget_target(args[0])
    amount_text = " ".join(args[1:]).lower()
    if amount_text in _REMOVE_WORDS:
        return TeamBudget(target=target, amount=0, period="day", remove=True)
    if re.fullmatch(r"\d{1,9}", amount_text):
        raise ParseError(
            f"A budget needs a period, credits per `day` or `month`; did you mean "
            f"{code(amount_text + '/day')}?"
        )
    m = _BUDGET.fullmatch(amount_text)
    if m and m[2] in _PERIODS:
        return TeamBudget(target=target, amount=int(m[1]), period=_PERIODS[m[2]])
    if m:
        raise ParseError(
            f"Budget period {_show(m[2])} is not one of `day` or `month`, e.g. `50/day`."
        )
    raise ParseError(
        f"Budget {_show(amount_text)} is not understood; write credits per `day` or `month`, "
        "e.g. `50/day` or `200/month`, or `off`."
    )


def _parse_key(args: list[str], *, command: str) -> tuple[ProviderName, ApiKey | None]:
    """``key [--provider P | P] [KEY]``. Messages never repeat what was typed."""
    scan = _Scan()
    secrets: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        flag = _flag_of(token)
        if flag is not None:
            if _VALUE_FLAGS.get(flag.name) != "provider":
                raise ParseError(
                    f"{code(command)} takes only `--provider` and the key, e.g. "
                    f"{code(command + ' --provider vtrix')} followed by the key."
                )
            raw, i = _flag_value(flag, args, i)
            if not raw:
                raise _missing_value("provider")
            scan.set("provider", normalise_provider(raw))
            continue
        named = _provider_alias(token)
        if named is not None and "provider" not in scan.values:
            scan.set("provider", named.value)
            continue
        secrets.append(token)
    provider = scan.options().provider or capabilities.DEFAULT_PROVIDER
    if not secrets:
        return provider, None
    if len(secrets) > 1:
        raise ParseError(
            f"{code(command)} takes only the API key itself (one word); to make an image whose "
            "description starts with “key”, put the description in quotes, e.g. "
            '`"key lime pie on a plate"`.'
        )
    return provider, key_from_text(provider, secrets[0], command=command)


def key_from_text(provider: ProviderName, text: str, *, command: str = "key") -> ApiKey:
    """A pasted key (e.g. from the key modal), trimmed of whitespace, quotes and backticks,
    and checked with :func:`check_key`. ``command`` names the command in the hint."""
    key = ApiKey(secret=text.strip().strip("`'\"<>"))
    check_key(provider, key, command=command)
    return key


def check_key(provider: ProviderName, key: ApiKey, *, command: str = "key") -> None:
    """Raise :class:`ParseError` unless ``key`` has the shape of ``provider``'s keys. The
    message says what those look like and never repeats the key."""
    pc = capabilities.caps(provider)
    if re.fullmatch(pc.key_pattern, key.secret):
        if provider is not ProviderName.TASTEMACHINE and _key_in_text().fullmatch(key.secret):
            tm = capabilities.caps(ProviderName.TASTEMACHINE)
            raise ParseError(
                f"That is shaped like a key for {tm.display_name} ({tm.key_hint}), so I did not "
                f"save it for {pc.display_name}; for {tm.display_name} use {code(command)} "
                "followed by the key, without `--provider`."
            )
        return
    others = [
        other
        for other in _providers()
        if other.provider != provider and re.fullmatch(other.key_pattern, key.secret)
    ]
    hint = (
        f"; if it is for {others[0].display_name}, use "
        f"{code(command + ' --provider ' + others[0].provider.value)} followed by the key"
        if others
        else ""
    )
    raise ParseError(
        f"That does not look like a key for {pc.display_name}: {pc.key_hint}, so I did not "
        f"save it{hint}."
    )


# --- resolve: one provider's table -----------------------------------------------------


def _model_flag(model: str) -> str:
    for short, name in MODEL_SHORTHANDS.items():
        if name == model:
            return f"--{short}"
    return f"--model {model}"


def _elsewhere(pc: ProviderCaps, offers: Callable[[ProviderCaps], bool], what: str) -> str:
    """``; add `--provider vtrix` for <what>`` when another provider offers it, else ``""``."""
    others = [o.provider.value for o in _providers() if o.provider != pc.provider and offers(o)]
    return f"; add {code('--provider ' + others[0])} for {what}" if others else ""


def _check_model(pc: ProviderCaps, model: str) -> None:
    if model in pc.models:
        return
    raise ParseError(
        f"Model {_show(model)} is not offered by {pc.display_name}, which has "
        f"{choices_text(list(pc.models), conjunction='and')}"
        f"{_elsewhere(pc, lambda o: model in o.models, 'it')}."
    )


def _check_ratio(pc: ProviderCaps, model: str, ratio: str) -> None:
    offered = pc.models[model].aspect_ratios
    if ratio in offered:
        return
    others = [m.name for m in pc.models.values() if ratio in m.aspect_ratios]
    if others:
        raise ParseError(
            f"Aspect ratio {_show(ratio)} needs {code(others[0])} (add "
            f"{code(_model_flag(others[0]))}); {code(model)} takes {choices_text(offered)}."
        )
    raise ParseError(
        f"Aspect ratio {_show(ratio)} is not offered by {pc.display_name} with {code(model)}, "
        f"which takes {choices_text(offered)}."
    )


def _check_resolution(pc: ProviderCaps, resolution: str) -> None:
    if resolution in pc.resolutions:
        return
    offered = _sorted_resolutions(pc.resolutions)
    raise ParseError(
        f"Resolution {_show(resolution)} is not offered by {pc.display_name}, which has "
        f"{choices_text(offered, conjunction='and')}"
        f"{_elsewhere(pc, lambda o: resolution in o.resolutions, 'it')}."
    )


def _check_taste(pc: ProviderCaps, taste: str) -> None:
    if taste in pc.tastes:
        return
    if not pc.tastes:
        raise ParseError(
            f"{pc.display_name} has no tastes, so drop `--taste`"
            f"{_elsewhere(pc, lambda o: taste in o.tastes, 'tastes')}."
        )
    guess = closest(taste, pc.tastes)
    head = (
        f"Taste {_show(taste)} is not offered by {pc.display_name}, which has "
        f"{choices_text(pc.tastes, conjunction='and')}"
    )
    raise ParseError(f"{head}; did you mean {code(guess)}?" if guess else f"{head}.")


def _pick(
    given: str | None,
    saved: str | None,
    *,
    check: Callable[[str], None],
    fits: Callable[[str], bool],
) -> str | None:
    """A flag is checked strictly; a saved setting is used only where it fits."""
    if given is not None:
        check(given)
        return given
    if saved is not None and fits(saved):
        return saved
    return None


def _lenient(normalise: Callable[[str], str], value: str | None) -> str | None:
    """A saved value normalised, or None when it no longer parses."""
    if value is None:
        return None
    try:
        return normalise(value)
    except ParseError:
        return None


def _strict(normalise: Callable[[str], str], value: str | None) -> str | None:
    return normalise(value) if value is not None else None


def _layer(options: BriefOptions, saved: UserSettings) -> tuple[ProviderCaps, UserSettings]:
    """Flags over saved settings, checked against the chosen provider: the provider's caps
    and the chosen values (None where neither gave one that fits)."""
    given_provider = _strict(normalise_provider, options.provider)
    saved_provider = _lenient(normalise_provider, saved.provider)
    provider = given_provider or saved_provider
    pc = capabilities.caps(ProviderName(provider or capabilities.DEFAULT_PROVIDER))
    model = _pick(
        _strict(normalise_model, options.model),
        _lenient(normalise_model, saved.model),
        check=lambda m: _check_model(pc, m),
        fits=lambda m: m in pc.models,
    )
    effective_model = model or pc.default_model
    ratio = _pick(
        _strict(normalise_aspect_ratio, options.aspect_ratio),
        _lenient(normalise_aspect_ratio, saved.aspect_ratio),
        check=lambda r: _check_ratio(pc, effective_model, r),
        fits=lambda r: r in pc.models[effective_model].aspect_ratios,
    )
    resolution = _pick(
        _strict(normalise_resolution, options.resolution),
        _lenient(normalise_resolution, saved.resolution),
        check=lambda r: _check_resolution(pc, r),
        fits=lambda r: r in pc.resolutions,
    )
    taste = _pick(
        _strict(normalise_taste, options.taste),
        _lenient(normalise_taste, saved.taste),
        check=lambda t: _check_taste(pc, t),
        fits=lambda t: t in pc.tastes,
    )
    chosen = UserSettings(
        provider=ProviderName(provider) if provider else None,
        model=model,
        aspect_ratio=ratio,
        resolution=resolution,
        taste=taste,
    )
    return pc, chosen


def _check_brief(pc: ProviderCaps, brief: str) -> str:
    text = clean(brief)
    if not text:
        raise ParseError(EMPTY_BRIEF)
    if not has_visible(text):
        raise ParseError(NOTHING_VISIBLE)
    if contains_secret(text):
        raise ParseError(KEY_IN_TEXT)
    limit = pc.prompt_max_chars
    if limit is not None and len(text) > limit:
        raise ParseError(
            f"{pc.display_name} takes briefs of at most {limit} characters, and yours has "
            f"{len(text)}."
        )
    return text


def _check_images(pc: ProviderCaps, image_urls: Iterable[str]) -> tuple[str, ...]:
    urls: list[str] = []
    for raw in image_urls:
        url = _url_of(raw)
        if url is None:
            raise ParseError("Reference images must be `http://` or `https://` links.")
        if url not in urls:
            urls.append(url)
    cap = pc.max_reference_images
    if len(urls) > cap:
        raise ParseError(
            f"{pc.display_name} takes at most {cap} reference images, and you gave {len(urls)}."
        )
    return tuple(urls)


def resolve(
    options: BriefOptions,
    defaults: UserSettings,
    *,
    brief: str,
    image_urls: tuple[str, ...],
) -> GenerationSpec:
    """A complete, validated request: flags over ``defaults`` over the provider's defaults.

    The provider is ``options.provider``, else ``defaults.provider``, else
    :data:`capabilities.DEFAULT_PROVIDER`. Flags that the provider or model does not offer are
    errors; saved defaults that do not fit are ignored. Raises :class:`ParseError`.
    """
    pc, chosen = _layer(options, defaults)
    model = chosen.model or pc.default_model
    return GenerationSpec(
        provider=pc.provider,
        brief=_check_brief(pc, brief),
        model=model,
        aspect_ratio=chosen.aspect_ratio or pc.default_aspect_ratio,
        resolution=chosen.resolution or pc.default_resolution,
        taste=chosen.taste or pc.default_taste,
        image_urls=_check_images(pc, image_urls),
    )


def resolve_over(
    options: BriefOptions,
    base: GenerationSpec,
    *,
    brief: str,
    image_urls: tuple[str, ...],
) -> GenerationSpec:
    """A refinement's request: ``options`` over ``base``'s parameters (the new flags win;
    the base's values that do not fit a newly chosen provider or model are dropped)."""
    saved = UserSettings(
        provider=base.provider,
        model=base.model,
        aspect_ratio=base.aspect_ratio,
        resolution=base.resolution,
        taste=base.taste,
    )
    return resolve(options, saved, brief=brief, image_urls=image_urls)


def validate_settings(options: BriefOptions, current: UserSettings | None = None) -> UserSettings:
    """The settings to store after ``settings <flags>``: ``options`` over ``current``.

    Each given option is checked against the provider the new settings point at (the given
    ``--provider``, else the saved one, else the default provider) and the model they imply,
    so ``settings --ar 1:8`` fails on ``nano-banana-pro`` and ``settings --ar 1:8 --fast``
    works. Saved values that no longer fit (a taste after ``settings --provider vtrix``) are
    dropped. Unset fields stay None, so provider defaults still apply later.
    """
    return _layer(options, current or UserSettings())[1]
