"""Sentences the core hands to people: help, descriptions of requests, history lines.

Platform-neutral text with `code` spans, which Slack, Discord and the console all render.
"""

from __future__ import annotations

from tmbot.capabilities import PROVIDERS
from tmbot.domain import GenerationSpec
from tmbot.records import Budget, BudgetPeriod, Generation, GenStatus, KeyScope


def describe_spec(spec: GenerationSpec) -> str:
    brief = spec.brief if len(spec.brief) <= 60 else spec.brief[:57] + "…"
    parts = [spec.model, spec.aspect_ratio, spec.resolution]
    if spec.taste:
        parts.append(f"taste {spec.taste}")
    if spec.image_urls:
        n = len(spec.image_urls)
        parts.append(f"{n} reference image{'s' if n != 1 else ''}")
    if spec.provider is not next(iter(PROVIDERS)):
        parts.append(f"via {PROVIDERS[spec.provider].display_name}")
    return f"“{brief}” ({', '.join(parts)})"


def relative_time(seconds_ago: float) -> str:
    s = max(0, int(seconds_ago))
    if s < 60:
        return "just now" if s < 5 else f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


_STATUS_WORDS = {
    GenStatus.ACCEPTED: "waiting",
    GenStatus.SUBMITTING: "sending",
    GenStatus.SUBMITTED: "generating",
    GenStatus.COMPLETED: "downloading",
    GenStatus.DELIVERED: "delivered",
    GenStatus.FAILED: "failed",
}


def amount(value: float) -> str:
    """Credits as people write them: ``10``, ``2.5``, ``0.04``."""
    return f"{value:g}"


def credits_word(value: float) -> str:
    return f"{amount(value)} credit{'' if value == 1 else 's'}"


def images_word(count: int) -> str:
    return f"{count} image{'' if count == 1 else 's'}"


def budget_rate(budget: Budget) -> str:
    """``50/day``, ``200/month``."""
    return f"{budget.amount}/{budget.period.value}"


def period_word(period: BudgetPeriod) -> str:
    """How a budget's current period is named: ``today``, ``this month``."""
    return "today" if period is BudgetPeriod.DAY else "this month"


def renews(period: BudgetPeriod) -> str:
    return "at 00:00 UTC" if period is BudgetPeriod.DAY else "on the 1st at 00:00 UTC"


def history_line(gen: Generation, *, now: float) -> str:
    where = gen.place.channel + (f" (thread {gen.place.thread})" if gen.place.thread else "")
    status = _STATUS_WORDS[gen.status]
    if gen.deleted_at is not None:
        status += ", deleted"
    line = (
        f"`{gen.id}` {relative_time(now - gen.created_at)} · {status} · "
        f"{describe_spec(gen.spec)} · in {where}"
    )
    paid = "the team key" if gen.key.scope is KeyScope.TEAM else "your key"
    used = gen.credits_consumed if gen.credits_consumed is not None else gen.cost
    if gen.status is GenStatus.FAILED and gen.credits_consumed is None:
        line += f" · nothing charged to {paid}"
    elif used is not None:
        line += f" · {credits_word(used)} on {paid}"
    else:
        line += f" · on {paid}"
    if gen.regenerated_from:
        line += f" · another of `{gen.regenerated_from}`"
    if gen.status is GenStatus.FAILED and gen.error:
        line += f" · {gen.error}"
    return line


def _choices() -> str:
    lines = []
    for caps in PROVIDERS.values():
        ratios = sorted({r for m in caps.models.values() for r in m.aspect_ratios}, key=_ratio)
        lines.append(
            f"• {caps.display_name} (`--provider {caps.provider.value}`): models "
            f"{', '.join(caps.models)}; resolutions {', '.join(caps.resolutions.values())}; "
            f"aspect ratios {' '.join(ratios)}; up to {caps.max_reference_images} reference "
            "images" + (f"; tastes {', '.join(caps.tastes)}" if caps.tastes else "")
        )
    return "\n".join(lines)


def _ratio(text: str) -> float:
    w, h = text.split(":")
    return int(w) / int(h)


HELP_GENERAL = """\
`/taste <brief> [flags] [image URLs]` makes an image and posts it in a thread.
Flags: `--ar 3:4` aspect ratio · `--pro` / `--fast` / `--model NAME` · `--res 1k|2k|4k` · \
`--taste realistic-photo` · `--provider vtrix`. Links to images in the text become references.
Commands: `key` (bind your API key) · `logout` · `credits` · `settings [flags|reset]` · \
`history` · `help flags` · `team key|budget|channel|show` (admins, see `help team`).
A brief that starts with one of those words goes in quotes: `"history of the Tokyo subway"`.
React 🔁 on a result to make another, paid with your own key or budget."""


#: The console has no reactions and no private forms: its help says what it has instead.
_CONSOLE_HELP: dict[str, str] = {
    "makes an image and posts it in a thread.": "makes an image and saves it as a file.",
    "React 🔁 on a result to make another, paid with your own key or budget.": (
        "`regenerate ID` makes another of a result, paid with your own key or budget; "
        "`delete ID` deletes one."
    ),
    "`/taste key` opens a private form for your API key (`/taste key --provider vtrix` "
    "for Vtrix).": "`key <your key>` binds your API key (`key --provider vtrix <key>` for Vtrix).",
}


def help_text(topic: str | None, *, platform: str | None = None) -> str:
    """The help on ``topic``; ``platform="console"`` speaks of what the console has."""
    text = _help_text(topic)
    if platform == "console":
        for general, console in _CONSOLE_HELP.items():
            text = text.replace(general, console)
        text = text.replace("/taste ", "")
    return text


def _help_text(topic: str | None) -> str:
    if topic in (None, ""):
        return HELP_GENERAL
    if topic in ("flags", "models", "ratios"):
        return "What each provider offers:\n" + _choices()
    if topic == "key":
        return (
            "`/taste key` opens a private form for your API key (`/taste key --provider vtrix` "
            "for Vtrix). Keys are stored encrypted and only ever shown as their last four "
            "characters; `/taste logout` removes yours."
        )
    if topic == "settings":
        return (
            "`/taste settings --ar 3:4 --fast` saves defaults for your later briefs (flags in "
            "a brief still win); `/taste settings` shows them; `/taste settings reset` clears."
        )
    if topic == "credits":
        return (
            "`/taste credits` shows which key you're on (yours beats the team's), its balance "
            "as last reported by the provider, your use today and this month, and what is left "
            "of your team budget. Each image's cost (model × resolution) is checked against "
            "your budget and the key's balance before anything is sent."
        )
    if topic == "team":
        return (
            "Admins only: `/taste team key` binds the team's key, which members without their "
            "own key use; `/taste team budget @bob 50/day` (or `default 200/month`, or "
            "`@bob off`) caps a member's use of it in credits; `/taste team channel on|off` "
            "lets members mention tmbot in channels; `/taste team show` lists keys, budgets "
            "and this period's use. Without any budget the team key is not capped."
        )
    return HELP_GENERAL
