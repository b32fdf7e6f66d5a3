"""tmbot.commands: the happy paths of parse, resolve and validate_settings.

Malformed input, did-you-mean texts and property tests live in test_commands_corpus.py.
"""

from __future__ import annotations

import pytest

from tmbot import capabilities
from tmbot.capabilities import EXTREME_RATIOS, TASTEMACHINE, VTRIX
from tmbot.commands import (
    HELP_TOPICS,
    MODEL_SHORTHANDS,
    BindKey,
    BriefOptions,
    Credits,
    Generate,
    Help,
    History,
    Logout,
    Settings,
    TeamBudget,
    TeamChannel,
    TeamKey,
    TeamShow,
    check_key,
    key_from_text,
    make_options,
    parse,
    resolve,
    validate_settings,
)
from tmbot.domain import ApiKey, GenerationSpec, ProviderName
from tmbot.errors import ParseError
from tmbot.records import UserSettings

TM = ProviderName.TASTEMACHINE
VX = ProviderName.VTRIX
TM_KEY = "tm_live_" + "a1B2c3D4e5F6"
VX_KEY = "vx" + "0123456789abcdefXYZ"  # 21 characters


def gen(text: str) -> Generate:
    command = parse(text)
    assert isinstance(command, Generate), command
    return command


def spec(
    options: BriefOptions | None = None,
    defaults: UserSettings | None = None,
    *,
    brief: str = "a cat",
    image_urls: tuple[str, ...] = (),
) -> GenerationSpec:
    return resolve(
        options or BriefOptions(), defaults or UserSettings(), brief=brief, image_urls=image_urls
    )


def urls(n: int) -> tuple[str, ...]:
    return tuple(f"https://img.example.com/{i}.png" for i in range(n))


# --- briefs and flags ------------------------------------------------------------------


def test_plain_brief() -> None:
    command = gen("a minimal poster for a Tokyo coffee shop --ar 3:4")
    assert command == Generate(
        brief="a minimal poster for a Tokyo coffee shop",
        options=BriefOptions(aspect_ratio="3:4"),
        image_urls=(),
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("--ar 3:4", BriefOptions(aspect_ratio="3:4")),
        ("--ar=3:4", BriefOptions(aspect_ratio="3:4")),
        ("--aspect 16:9", BriefOptions(aspect_ratio="16:9")),
        ("--aspect-ratio 21:9", BriefOptions(aspect_ratio="21:9")),
        ("--aspect_ratio 4:5", BriefOptions(aspect_ratio="4:5")),
        ("--ratio 1:1", BriefOptions(aspect_ratio="1:1")),
        ("--AR 3:4", BriefOptions(aspect_ratio="3:4")),
        ("—ar 3:4", BriefOptions(aspect_ratio="3:4")),
        ("–ar 3:4", BriefOptions(aspect_ratio="3:4")),
        ("—-ar 3:4", BriefOptions(aspect_ratio="3:4")),
        ("--ar 1:8", BriefOptions(aspect_ratio="1:8")),
        ("--model nano-banana-2", BriefOptions(model="nano-banana-2")),
        ("--model nano_banana_2", BriefOptions(model="nano-banana-2")),
        ("--model NanoBanana2", BriefOptions(model="nano-banana-2")),
        ("--model NANO-BANANA-PRO", BriefOptions(model="nano-banana-pro")),
        ("--model=nano-banana-pro", BriefOptions(model="nano-banana-pro")),
        ("--model pro", BriefOptions(model="nano-banana-pro")),
        ("--model fast", BriefOptions(model="nano-banana-2")),
        ("--pro", BriefOptions(model="nano-banana-pro")),
        ("--fast", BriefOptions(model="nano-banana-2")),
        ("--Fast", BriefOptions(model="nano-banana-2")),
        ("—fast", BriefOptions(model="nano-banana-2")),
        ("--res 4K", BriefOptions(resolution="4k")),
        ("--res 4k", BriefOptions(resolution="4k")),
        ("--resolution 0.5K", BriefOptions(resolution="0.5k")),
        ("--res=2k", BriefOptions(resolution="2k")),
        ("--taste realistic-photo", BriefOptions(taste="realistic-photo")),
        ("--taste Realistic_Photo", BriefOptions(taste="realistic-photo")),
        ("--taste default", BriefOptions(taste="default")),
        ("--provider vtrix", BriefOptions(provider=VX)),
        ("--provider VTRIX", BriefOptions(provider=VX)),
        ("--provider vtrix.ai", BriefOptions(provider=VX)),
        ("--provider tastemachine", BriefOptions(provider=TM)),
        ("--provider tm", BriefOptions(provider=TM)),
        ("--provider taste-machine", BriefOptions(provider=TM)),
        ("--provider TheTasteMachine", BriefOptions(provider=TM)),
        (
            "--ar 9:16 --fast --res 1k --taste realistic-photo --provider tm",
            BriefOptions(
                provider=TM,
                model="nano-banana-2",
                aspect_ratio="9:16",
                resolution="1k",
                taste="realistic-photo",
            ),
        ),
    ],
)
def test_flags(flags: str, expected: BriefOptions) -> None:
    command = gen(f"a red fox {flags}")
    assert command.brief == "a red fox"
    assert command.options == expected


def test_flags_anywhere_and_whitespace_collapsed() -> None:
    command = gen("  --pro  a\tfox \n in   the --ar 3:4 snow  ")
    assert command.brief == "a fox in the snow"
    assert command.options == BriefOptions(model="nano-banana-pro", aspect_ratio="3:4")


def test_same_flag_twice_with_the_same_value_is_fine() -> None:
    command = gen("a fox --ar 3:4 --aspect 3:4 --pro --model nano-banana-pro")
    assert command.options == BriefOptions(model="nano-banana-pro", aspect_ratio="3:4")


@pytest.mark.parametrize(
    "brief",
    [
        'a "quoted poster',
        "it's a fox's den",
        "🦊 in a 🌲 forest ✨",
        "東京のコーヒーショップのミニマルなポスター",
        "café — crème brûlée",
        "a poster —minimal and clean",
        "the year -- 1999 -10 degrees",
        "mailto:someone@example.com on a postcard",
        "x" * 3000,
    ],
)
def test_unicode_quotes_and_punctuation_stay_in_the_brief(brief: str) -> None:
    assert gen(brief).brief == brief


def test_urls_become_image_urls_deduplicated_in_order() -> None:
    command = gen(
        "moodboard https://a.example.com/1.png <https://b.example.com/2.jpg|2.jpg> "
        "(https://a.example.com/1.png), <https://c.example.com/3.png> HTTP://d.example.com/4"
    )
    assert command.brief == "moodboard"
    assert command.image_urls == (
        "https://a.example.com/1.png",
        "https://b.example.com/2.jpg",
        "https://c.example.com/3.png",
        "HTTP://d.example.com/4",
    )


def test_slack_link_label_with_spaces_is_dropped() -> None:
    command = gen("like this <https://a.example.com/x.png|my reference image> please")
    assert command.brief == "like this please"
    assert command.image_urls == ("https://a.example.com/x.png",)


def test_url_keeps_query_and_balanced_parentheses() -> None:
    command = gen("fox https://en.example.org/wiki/Fox_(animal)?a=1&b=2.")
    assert command.image_urls == ("https://en.example.org/wiki/Fox_(animal)?a=1&b=2",)


# --- briefs that merely start like a sub-command ---------------------------------------

STARTS_WITH_A_COMMAND_WORD = [
    "history museum poster",
    "team photo in a park",
    "help wanted sign",
    "help me",
    "credits roll on a movie screen",
    "settings of a fairy tale",
    "logout screen design",
    "settings reset button",
    "team spirit mural",
    "history of the Tokyo subway as a poster",
    "delete key on a keyboard",
    "refine",
]


@pytest.mark.parametrize("text", STARTS_WITH_A_COMMAND_WORD)
def test_a_line_starting_with_a_command_word_is_that_command(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    word = text.split()[0]
    assert f"starts with “{word}”, put the description in quotes" in info.value.user_message


@pytest.mark.parametrize("text", STARTS_WITH_A_COMMAND_WORD)
@pytest.mark.parametrize(("opening", "closing"), [('"', '"'), ("“", "”"), ("'", "'")])
def test_quoted_it_is_a_brief_without_the_quotes(text: str, opening: str, closing: str) -> None:
    command = gen(f"{opening}{text}{closing} --ar 3:4")
    assert command.brief == text
    assert command.options.aspect_ratio == "3:4"


@pytest.mark.parametrize(
    "text",
    [
        "logout button on a phone --ar 9:16",
        "settings sunset https://a.example.com/x.png",
    ],
)
def test_quoted_with_flags_and_links_after_the_quote(text: str) -> None:
    brief, _, tail = text.partition(" ")
    command = gen(f'"{brief}" {tail}')
    assert command.brief.startswith(brief)
    assert '"' not in command.brief


@pytest.mark.parametrize(
    "text",
    [
        "sunset",
        "logo",
        "steam",
        "a history museum poster",
        "Tokyo subway history",
        "taste of summer, a poster",
        '"OPEN" sign on a café door',
        "“Hello” in neon",
    ],
)
def test_briefs_that_look_like_commands(text: str) -> None:
    command = parse(text)
    assert isinstance(command, Generate)
    assert command.brief == text  # quotes that do not guard a command word stay


# --- sub-commands ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Help()),
        ("HELP", Help()),
        ("credits", Credits()),
        ("Credits", Credits()),
        ("history", History()),
        ("logout", Logout(provider=None)),
        ("logout all", Logout(provider=None)),
        ("logout vtrix", Logout(provider=VX)),
        ("logout --provider vtrix", Logout(provider=VX)),
        ("logout --provider=tm", Logout(provider=TM)),
        ("logout tm --provider tastemachine", Logout(provider=TM)),
        ("settings", Settings(options=BriefOptions())),
        ("settings reset", Settings(options=BriefOptions(), reset=True)),
        ("Settings Clear", Settings(options=BriefOptions(), reset=True)),
        (
            "settings --ar 3:4 --pro",
            Settings(options=BriefOptions(model="nano-banana-pro", aspect_ratio="3:4")),
        ),
        (
            "settings --provider vtrix --res 0.5K",
            Settings(BriefOptions(provider=VX, resolution="0.5k")),
        ),
        ("team", TeamShow()),
        ("team show", TeamShow()),
        ("TEAM SHOW", TeamShow()),
        ("team channel on", TeamChannel(enabled=True)),
        ("team channel OFF", TeamChannel(enabled=False)),
        ("team channel enable", TeamChannel(enabled=True)),
        ("team channel disable", TeamChannel(enabled=False)),
    ],
)
def test_subcommands(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("topic", HELP_TOPICS)
def test_help_topics(topic: str) -> None:
    assert parse(f"help {topic}") == Help(topic=topic)
    assert parse(f"help {topic.upper()}") == Help(topic=topic)


@pytest.mark.parametrize(
    ("text", "provider", "secret"),
    [
        ("key", TM, None),
        ("KEY", TM, None),
        ("key --provider vtrix", VX, None),
        ("key vtrix", VX, None),
        (f"key {TM_KEY}", TM, TM_KEY),
        (f"key `{TM_KEY}`", TM, TM_KEY),
        (f"key tm_test_{'z' * 30}", TM, f"tm_test_{'z' * 30}"),
        (f"key --provider vtrix {VX_KEY}", VX, VX_KEY),
        (f"key {VX_KEY} --provider=vtrix", VX, VX_KEY),
        (f"key vtrix {VX_KEY}", VX, VX_KEY),
        (f"key —provider vtrix {VX_KEY}", VX, VX_KEY),
        (f"key --provider tm {TM_KEY}", TM, TM_KEY),
    ],
)
def test_key(text: str, provider: ProviderName, secret: str | None) -> None:
    expected = None if secret is None else ApiKey(secret=secret)
    assert parse(text) == BindKey(provider=provider, key=expected)
    assert parse("team " + text) == TeamKey(provider=provider, key=expected)


def test_key_command_value_never_shows_the_secret() -> None:
    command = parse(f"key {TM_KEY}")
    assert TM_KEY not in repr(command)
    assert TM_KEY not in str(command)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team budget @bob 50/day", TeamBudget("bob", 50, "day")),
        ("team budget default 200/month", TeamBudget(None, 200, "month")),
        ("team budget DEFAULT 200/Month", TeamBudget(None, 200, "month")),
        ("team budget @bob off", TeamBudget("bob", 0, "day", remove=True)),
        ("team budget default none", TeamBudget(None, 0, "day", remove=True)),
        ("team budget <@U123> 50/day", TeamBudget("U123", 50, "day")),
        ("team budget <@U123|bob> 50/day", TeamBudget("U123", 50, "day")),
        ("team budget <@U123|Bob Smith> 5/d", TeamBudget("U123", 5, "day")),
        ("team budget <@123456789> 50 per day", TeamBudget("123456789", 50, "day")),
        ("team budget <@!123456789> 50 a month", TeamBudget("123456789", 50, "month")),
        ("team budget @bob, 10/mo", TeamBudget("bob", 10, "month")),
        ("team budget U123 0/day", TeamBudget("U123", 0, "day")),
        ("team budget @bob 50 / monthly", TeamBudget("bob", 50, "month")),
    ],
)
def test_team_budget(text: str, expected: TeamBudget) -> None:
    assert parse(text) == expected


# --- resolve ---------------------------------------------------------------------------


def test_resolve_defaults_taste_machine() -> None:
    assert spec() == GenerationSpec(
        provider=capabilities.DEFAULT_PROVIDER,
        brief="a cat",
        model=TASTEMACHINE.default_model,
        aspect_ratio=TASTEMACHINE.default_aspect_ratio,
        resolution=TASTEMACHINE.default_resolution,
        taste=TASTEMACHINE.default_taste,
        image_urls=(),
    )


def test_resolve_defaults_vtrix() -> None:
    assert spec(BriefOptions(provider=VX)) == GenerationSpec(
        provider=VX,
        brief="a cat",
        model=VTRIX.default_model,
        aspect_ratio=VTRIX.default_aspect_ratio,
        resolution=VTRIX.default_resolution,
        taste=None,
        image_urls=(),
    )


def test_flags_beat_settings_beat_provider_defaults() -> None:
    saved = UserSettings(aspect_ratio="16:9", resolution="4k", taste="realistic-photo")
    result = spec(BriefOptions(aspect_ratio="3:4"), saved)
    assert result.aspect_ratio == "3:4"  # flag
    assert result.resolution == "4k"  # saved
    assert result.taste == "realistic-photo"  # saved
    assert result.model == TASTEMACHINE.default_model  # provider default


def test_saved_provider_is_used_and_a_flag_overrides_it() -> None:
    saved = UserSettings(provider=VX)
    assert spec(defaults=saved).provider == VX
    assert spec(BriefOptions(provider=TM), saved).provider == TM


def test_saved_settings_that_do_not_fit_are_ignored() -> None:
    saved = UserSettings(
        model="nano-banana-pro", resolution="4k", taste="realistic-photo", aspect_ratio="1:8"
    )
    on_vtrix = spec(BriefOptions(provider=VX), saved)
    assert on_vtrix.model == "nano-banana-2"
    assert on_vtrix.taste is None
    assert on_vtrix.resolution == "4k"
    assert on_vtrix.aspect_ratio == "1:8"
    # 1:8 does not fit nano-banana-pro on the Taste Machine: the saved ratio gives way
    assert spec(defaults=saved).aspect_ratio == TASTEMACHINE.default_aspect_ratio
    # and 0.5k (a Vtrix resolution) does not fit the Taste Machine
    assert spec(defaults=UserSettings(resolution="0.5k")).resolution == "2k"


def test_saved_garbage_is_ignored() -> None:
    saved = UserSettings(
        provider="nope",  # type: ignore[arg-type]
        model="x",
        aspect_ratio="3x4",
        resolution="huge",
        taste="??",
    )
    assert spec(defaults=saved) == spec()


def test_resolve_normalises_loose_option_values() -> None:
    options = BriefOptions(model="NANO_BANANA_2", resolution="4K", aspect_ratio="1:8")
    result = spec(options)
    assert (result.model, result.resolution, result.aspect_ratio) == ("nano-banana-2", "4k", "1:8")


@pytest.mark.parametrize("provider", list(capabilities.PROVIDERS))
def test_every_table_value_is_accepted_end_to_end(provider: ProviderName) -> None:
    pc = capabilities.caps(provider)
    for model in pc.models.values():
        for ratio in model.aspect_ratios:
            for res in pc.resolutions:
                for taste in pc.tastes or (None,):
                    text = f"a fox --provider {provider.value} --model {model.name} --ar {ratio}"
                    text += f" --res {res.upper()}" + (f" --taste {taste}" if taste else "")
                    command = gen(text)
                    result = spec(command.options)
                    assert (result.provider, result.model, result.aspect_ratio) == (
                        provider,
                        model.name,
                        ratio,
                    )
                    assert (result.resolution, result.taste) == (res, taste or pc.default_taste)


@pytest.mark.parametrize("ratio", EXTREME_RATIOS)
def test_extreme_ratios_only_on_nano_banana_2(ratio: str) -> None:
    assert spec(gen(f"a tower --ar {ratio} --fast").options).aspect_ratio == ratio
    assert spec(gen(f"a tower --ar {ratio} --provider vtrix").options).aspect_ratio == ratio
    with pytest.raises(ParseError, match="--fast"):
        spec(gen(f"a tower --ar {ratio}").options)
    with pytest.raises(ParseError, match="--fast"):
        spec(gen(f"a tower --ar {ratio} --pro").options)


def test_extreme_ratio_with_saved_fast_model() -> None:
    saved = UserSettings(model="nano-banana-2")
    assert spec(BriefOptions(aspect_ratio="8:1"), saved).aspect_ratio == "8:1"


def test_resolution_per_provider() -> None:
    assert spec(BriefOptions(provider=VX, resolution="0.5k")).resolution == "0.5k"
    with pytest.raises(ParseError, match="--provider vtrix"):
        spec(BriefOptions(resolution="0.5k"))


def test_taste_only_where_the_provider_has_tastes() -> None:
    assert spec(BriefOptions(taste="realistic-photo")).taste == "realistic-photo"
    with pytest.raises(ParseError, match="no tastes"):
        spec(BriefOptions(provider=VX, taste="realistic-photo"))


def test_model_per_provider() -> None:
    with pytest.raises(ParseError, match="--provider tastemachine"):
        spec(BriefOptions(provider=VX, model="nano-banana-pro"))
    assert spec(BriefOptions(provider=VX, model="nano-banana-2")).model == "nano-banana-2"


@pytest.mark.parametrize(
    ("provider", "cap"),
    [(TM, TASTEMACHINE.max_reference_images), (VX, VTRIX.max_reference_images)],
)
def test_reference_image_caps(provider: ProviderName, cap: int) -> None:
    options = BriefOptions(provider=provider)
    assert spec(options, image_urls=urls(cap)).image_urls == urls(cap)
    with pytest.raises(ParseError, match=f"at most {cap} reference images"):
        spec(options, image_urls=urls(cap + 1))


def test_reference_caps_are_14_and_3() -> None:
    assert (TASTEMACHINE.max_reference_images, VTRIX.max_reference_images) == (14, 3)


def test_reference_images_from_the_text_are_counted() -> None:
    command = gen("moodboard " + " ".join(urls(4)) + " --provider vtrix")
    with pytest.raises(ParseError, match="at most 3"):
        resolve(command.options, UserSettings(), brief=command.brief, image_urls=command.image_urls)


def test_duplicate_image_urls_count_once_in_resolve() -> None:
    assert spec(BriefOptions(provider=VX), image_urls=urls(3) * 2).image_urls == urls(3)


def test_vtrix_prompt_limit() -> None:
    limit = VTRIX.prompt_max_chars
    assert limit == 2500
    options = BriefOptions(provider=VX)
    assert len(spec(options, brief="x" * limit).brief) == limit
    with pytest.raises(ParseError, match=f"at most {limit} characters"):
        spec(options, brief="x" * (limit + 1))
    assert len(spec(brief="x" * (limit + 1)).brief) == limit + 1  # the Taste Machine's is higher


def test_taste_machine_brief_cap() -> None:
    limit = TASTEMACHINE.prompt_max_chars
    assert limit == 4000
    assert len(spec(brief="x" * limit).brief) == limit
    with pytest.raises(ParseError, match="at most 4000 characters, and yours has 4001"):
        spec(brief="x" * (limit + 1))


def test_resolve_collapses_whitespace_and_refuses_empty() -> None:
    assert spec(brief="  a \n cat ").brief == "a cat"
    with pytest.raises(ParseError, match="Tell me what to make"):
        spec(brief="   ")


def test_resolve_refuses_non_http_images() -> None:
    with pytest.raises(ParseError, match="https://"):
        spec(image_urls=("ftp://a.example.com/x.png",))
    with pytest.raises(ParseError, match="https://"):
        spec(image_urls=("not a url",))


# --- settings ----------------------------------------------------------------------------


def test_validate_settings_checks_against_the_implied_model() -> None:
    with pytest.raises(ParseError, match="--fast"):
        validate_settings(BriefOptions(aspect_ratio="1:8"))
    assert validate_settings(BriefOptions(aspect_ratio="1:8", model="nano-banana-2")) == (
        UserSettings(model="nano-banana-2", aspect_ratio="1:8")
    )
    current = UserSettings(model="nano-banana-2")
    assert validate_settings(BriefOptions(aspect_ratio="1:8"), current) == UserSettings(
        model="nano-banana-2", aspect_ratio="1:8"
    )


def test_validate_settings_keeps_unset_fields_unset() -> None:
    assert validate_settings(BriefOptions()) == UserSettings()
    assert validate_settings(BriefOptions(resolution="4K")) == UserSettings(resolution="4k")


def test_validate_settings_merges_over_current() -> None:
    current = UserSettings(aspect_ratio="3:4", taste="realistic-photo")
    assert validate_settings(BriefOptions(resolution="4k"), current) == UserSettings(
        aspect_ratio="3:4", resolution="4k", taste="realistic-photo"
    )


def test_validate_settings_drops_saved_values_the_new_provider_lacks() -> None:
    current = UserSettings(model="nano-banana-pro", taste="realistic-photo", aspect_ratio="3:4")
    assert validate_settings(BriefOptions(provider=VX), current) == UserSettings(
        provider=VX, aspect_ratio="3:4"
    )


def test_validate_settings_refuses_flags_the_provider_lacks() -> None:
    with pytest.raises(ParseError, match="no tastes"):
        validate_settings(BriefOptions(provider=VX, taste="default"))
    with pytest.raises(ParseError, match="no tastes"):
        validate_settings(BriefOptions(taste="default"), UserSettings(provider=VX))
    with pytest.raises(ParseError, match=r"0\.5k"):
        validate_settings(BriefOptions(resolution="0.5k"))


def test_settings_command_then_validate() -> None:
    command = parse("settings --ar 1:8 --fast")
    assert isinstance(command, Settings)
    assert validate_settings(command.options) == UserSettings(
        model="nano-banana-2", aspect_ratio="1:8"
    )


# --- helpers for adapters ------------------------------------------------------------------


def test_make_options_normalises_like_flags() -> None:
    assert make_options(
        provider="Vtrix", model="nano_banana_2", aspect_ratio="4:1", resolution="0.5K", taste=""
    ) == BriefOptions(provider=VX, model="nano-banana-2", aspect_ratio="4:1", resolution="0.5k")
    with pytest.raises(ParseError, match="did you mean `4k`"):
        make_options(resolution="4")


def test_options_over() -> None:
    typed = BriefOptions(aspect_ratio="1:1", provider=VX)
    flags = BriefOptions(aspect_ratio="3:4", resolution="4k")
    assert typed.over(flags) == BriefOptions(provider=VX, aspect_ratio="1:1", resolution="4k")
    assert BriefOptions().is_empty
    assert not typed.is_empty


def test_model_shorthands_name_real_models() -> None:
    models = {m for pc in capabilities.PROVIDERS.values() for m in pc.models}
    assert set(MODEL_SHORTHANDS.values()) <= models


def test_check_key_and_key_from_text_for_the_modal() -> None:
    check_key(TM, ApiKey(secret=TM_KEY))
    check_key(VX, ApiKey(secret=VX_KEY))
    assert key_from_text(TM, f"  `{TM_KEY}`\n") == ApiKey(secret=TM_KEY)
    with pytest.raises(ParseError, match="tm_live_ or tm_test_") as info:
        check_key(TM, ApiKey(secret=VX_KEY))
    assert VX_KEY not in info.value.user_message
    assert "--provider vtrix" in info.value.user_message
    with pytest.raises(ParseError, match="Vtrix keys"):
        key_from_text(VX, "short", command="team key")
