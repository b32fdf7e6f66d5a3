"""Sentences the core hands to people: every reply (:func:`render`), help, descriptions of
requests, history lines.

Platform-neutral text with `code` spans, which Slack, Discord and the console all render.
"""

from __future__ import annotations

from tmbot.capabilities import PROVIDERS
from tmbot.domain import GenerationSpec
from tmbot.records import (
    DEFAULT_MEMBER,
    Budget,
    BudgetPeriod,
    Generation,
    GenStatus,
    KeyScope,
    LinkKind,
    Overview,
    UserSettings,
)
from tmbot.replies import (
    AccountsLinked,
    AccountsUnlinked,
    BudgetRemoved,
    BudgetSaved,
    ChannelSet,
    CreditsEntry,
    CreditsView,
    DeleteAccepted,
    GenerationAccepted,
    HelpView,
    HistoryView,
    KeyBound,
    KeyFormRequested,
    KeyNote,
    LinkCodeIssued,
    LoggedOut,
    Reply,
    SettingsView,
    TeamsLinked,
    TeamsUnlinked,
    TeamView,
)


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
`history` · `link` (your accounts on Slack and Discord) · `help flags` · \
`team key|budget|channel|show|link` (admins, see `help team`).
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
            "typed in a channel makes every new message there a brief (or stops it); "
            "`/taste team show` lists keys, budgets "
            "and this period's use. Without any budget the team key is not capped. "
            "`/taste team link` gives a code that an admin on the other platform (Slack or "
            "Discord) types there, making the two one team; `/taste team unlink` undoes it."
        )
    return HELP_GENERAL


# --- replies ---------------------------------------------------------------------------


def render(reply: Reply) -> str:
    """The sentences for a use case's answer (the console prints them; chat adapters use
    them where they have no richer rendering, and as notification fallback text)."""
    match reply:
        case GenerationAccepted(generation=gen, duplicate=duplicate):
            text = f"Accepted {describe_spec(gen.spec)}"
            if gen.regenerated_from:
                text += f", another of {gen.regenerated_from}"
            if duplicate:
                text += " (already asked for a moment ago)"
            return text + "."
        case KeyFormRequested(provider=provider, scope=scope):
            whose = "your key" if scope is KeyScope.USER else "the team's key"
            return f"Paste {whose} for {PROVIDERS[provider].display_name} in the private form."
        case KeyBound(provider=provider, scope=scope, fingerprint=fingerprint):
            whose = "your" if scope is KeyScope.USER else "the team's"
            name = PROVIDERS[provider].display_name
            return f"Saved {whose} key for {name} ({fingerprint}), encrypted."
        case LoggedOut(removed=removed):
            if not removed:
                return "You had no personal key bound; nothing to remove."
            names = " and ".join(PROVIDERS[p].display_name for p in removed)
            return f"Removed your key for {names}."
        case CreditsView():
            return "\n".join(credits_line(entry, now=reply.now) for entry in reply.entries)
        case SettingsView(settings=settings, action=action):
            if action == "cleared":
                return "Your defaults are cleared."
            prefix = "Saved. " if action == "saved" else ""
            return f"{prefix}Your defaults: {describe_settings(settings)}."
        case HistoryView(generations=gens, now=now):
            if not gens:
                return "You have no images yet."
            return "Your last images:\n" + "\n".join(history_line(g, now=now) for g in gens)
        case HelpView(topic=topic, platform=platform):
            return help_text(topic, platform=platform)
        case TeamView():
            return team_text(reply)
        case BudgetSaved():
            return budget_saved_text(reply)
        case BudgetRemoved():
            return budget_removed_text(reply)
        case ChannelSet(enabled=enabled, changed=changed):
            if enabled:
                already = "" if changed else " (it already was)"
                return (
                    f"This channel is a request channel{already}: every new message here is a "
                    "brief, and its image is posted in the message's thread."
                )
            if not changed:
                return "This channel was not a request channel; nothing changed."
            return (
                "This channel is no longer a request channel: mention tmbot or use `/taste` "
                "to make images here."
            )
        case DeleteAccepted(generation=gen, cancelled=cancelled):
            if cancelled:
                return f"Cancelled {gen.id} before it was sent; nothing was charged."
            return f"Deleted {gen.id}."
        case LinkCodeIssued():
            return link_code_text(reply)
        case TeamsLinked():
            return teams_linked_text(reply)
        case TeamsUnlinked(link=link):
            if link is None:
                return "This team is not linked with one on another platform; nothing changed."
            return (
                f"{_cap(tenant_name(link.joined))} and {tenant_name(link.home)} are no longer "
                "one team: each has its own team keys, budgets and use again, and accounts "
                "linked across them are unlinked."
            )
        case AccountsLinked():
            return accounts_linked_text(reply)
        case AccountsUnlinked(links=links, here=here):
            if not links:
                return "Your account here is not linked with another; nothing changed."
            others = " and ".join(
                tenant_name(k.tenant if k.home_tenant == here else k.home_tenant) for k in links
            )
            return (
                f"Your accounts are no longer linked (with {others}): each has its own keys, "
                "settings and history again."
            )


# --- linked teams and accounts ------------------------------------------------------------

_PLATFORM_NAMES = {"slack": "Slack", "discord": "Discord", "console": "console"}
#: how a code is typed on each platform, by kind
_USE_CODE = {
    LinkKind.TEAM: {
        "slack": "in Slack `/taste team link {code}`",
        "discord": "in Discord `/taste-team link code:{code}`",
        "console": "in the console `team link {code}`",
    },
    LinkKind.PERSON: {
        "slack": "in Slack `/taste link {code}`",
        "discord": "in Discord `/taste-link code:{code}`",
        "console": "in the console `link {code}`",
    },
}


def platform_name(platform: str) -> str:
    return _PLATFORM_NAMES.get(platform, platform)


def tenant_name(tenant: str) -> str:
    """``the Slack workspace T123``, ``the Discord server 42``, ``the console``."""
    platform, _, rest = tenant.partition(":")
    if platform == "slack":
        return f"the Slack workspace {rest.rsplit(':', 1)[-1]}"
    if platform == "discord":
        if rest.startswith("dm:"):
            return "your Discord direct messages"
        return f"the Discord server {rest}"
    if platform == "console":
        return "the console"
    return tenant


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _keys(keys: tuple[KeyNote, ...]) -> str:
    return ", ".join(f"{PROVIDERS[k.provider].display_name} {k.fingerprint}" for k in keys)


def link_code_text(reply: LinkCodeIssued) -> str:
    minutes = max(1, round((reply.expires_at - reply.now) / 60))
    ways = (
        " or ".join(
            way.format(code=reply.code)
            for platform, way in _USE_CODE[reply.kind].items()
            if platform != reply.platform and platform != "console"
        )
        or "on the other platform"
    )
    if reply.kind is LinkKind.TEAM:
        return (
            f"Your team link code is `{reply.code}`: it works once, for {minutes} minutes, so "
            f"keep it private. An admin of the team on the other platform types it there "
            f"({ways}); that team then shares this one's team keys, budgets and use."
        )
    return (
        f"Your link code is `{reply.code}`: it works once, for {minutes} minutes, so keep it "
        f"private. Type it where your other account is ({ways}); that account then uses this "
        "one's keys, settings and history."
    )


def teams_linked_text(reply: TeamsLinked) -> str:
    link = reply.link
    text = (
        f"Linked: {tenant_name(link.joined)} is now one team with {tenant_name(link.home)}, "
        "sharing its team keys, budgets and use"
    )
    text += (
        f" (team keys: {_keys(reply.team_keys)})."
        if reply.team_keys
        else ("; it has no team key yet (an admin on either side can bind one with `team key`).")
    )
    aside = []
    if reply.set_aside_keys:
        aside.append(f"team keys ({_keys(reply.set_aside_keys)})")
    if reply.set_aside_budgets:
        n = reply.set_aside_budgets
        aside.append(f"{n} budget{'s' if n != 1 else ''}")
    if aside:
        text += (
            f" This side's own {' and '.join(aside)} are set aside, not deleted: unused while "
            "linked, back after `team unlink`."
        )
    return text + " Members can now link their own accounts with `link`."


def accounts_linked_text(reply: AccountsLinked) -> str:
    link = reply.link
    text = (
        f"Linked: your account here now uses the keys, settings and history of your account "
        f"in {tenant_name(link.home_tenant)}, and counts as the same member in the team's "
        "budgets."
    )
    aside = []
    if reply.set_aside_keys:
        aside.append(f"keys ({_keys(reply.set_aside_keys)})")
    if reply.set_aside_settings:
        aside.append("settings")
    if aside:
        text += (
            f" This account's own {' and '.join(aside)} are set aside, not deleted: back "
            "after `unlink`."
        )
    return text


def describe_settings(settings: UserSettings) -> str:
    fields = [
        ("provider", settings.provider.value if settings.provider else None),
        ("model", settings.model),
        ("aspect ratio", settings.aspect_ratio),
        ("resolution", settings.resolution),
        ("taste", settings.taste),
    ]
    chosen = [f"{name} {value}" for name, value in fields if value]
    return ", ".join(chosen) if chosen else "none set (the provider's defaults apply)"


def credits_line(entry: CreditsEntry, *, now: float) -> str:
    name = PROVIDERS[entry.provider].display_name
    whose = "your personal key" if entry.scope is KeyScope.USER else "the team's key"
    if entry.unusable is not None:
        return f"You're on {whose} for {name} ({entry.fingerprint}): {entry.unusable}."
    if entry.balance is not None:
        seen = relative_time(now - (entry.balance_seen_at or now))
        balance = f"{credits_word(entry.balance)} left as of {seen}"
    elif entry.priced:
        balance = "no balance reported yet (it shows after the next image)"
    else:
        balance = f"{name} reports no balance"
    today, month = entry.today, entry.month
    if entry.priced:
        use = (
            f"your use of it: {credits_word(today.credits)} today, "
            f"{amount(month.credits)} this month"
        )
    else:
        use = f"your use of it: {images_word(today.images)} today, {month.images} this month"
        if month.credits:
            use += f" (reported cost {amount(month.credits)} this month)"
    if entry.scope is KeyScope.TEAM:
        use += "; " + _budget_clause(entry)
    return f"You're on {whose} for {name} ({entry.fingerprint}): {balance}; {use}."


def _budget_clause(entry: CreditsEntry) -> str:
    if not entry.priced:
        name = PROVIDERS[entry.provider].display_name
        return f"{name} publishes no prices, so team budgets do not cap it"
    budget, left = entry.budget, entry.budget_left
    if budget is None or left is None:
        return "no budget applies to you, so your use of the team key is not capped"
    default = " (the team default)" if budget.is_default else ""
    return (
        f"your team budget is {budget_rate(budget)}{default}, with {amount(left)} left "
        f"{period_word(budget.period)}"
    )


def budget_saved_text(reply: BudgetSaved) -> str:
    budget = reply.budget
    who = "members without their own budget" if budget.is_default else budget.member
    text = (
        f"Saved: {who} may use up to {credits_word(budget.amount)} a {budget.period.value} "
        f"of the team's key (it renews {renews(budget.period)})."
    )
    if not reply.team_has_key:
        text += " The team has no key yet: bind one with `/taste team key`."
    return text


def budget_removed_text(reply: BudgetRemoved) -> str:
    if reply.member == DEFAULT_MEMBER:
        if not reply.removed:
            return "There was no default budget; nothing changed."
        return (
            "Removed the default budget; members without their own budget now use the "
            "team key without a cap."
        )
    if not reply.removed:
        return f"{reply.member} had no budget of their own; nothing changed."
    after = (
        f"the default budget ({budget_rate(reply.fallback)}) applies to them now"
        if reply.fallback is not None
        else "their use of the team key is not capped now"
    )
    return f"Removed {reply.member}'s budget; {after}."


def team_text(view: TeamView) -> str:
    keys = []
    for key in view.keys:
        shown = f"{PROVIDERS[key.provider].display_name} {key.fingerprint}"
        if key.unusable is not None:
            shown += f" ({key.unusable})"
        elif key.balance is not None:
            seen = relative_time(view.now - (key.balance_seen_at or view.now))
            shown += f" ({credits_word(key.balance)} left as of {seen})"
        keys.append(shown)
    lines = [
        "Team keys: " + "; ".join(keys) + "."
        if keys
        else "The team has no key bound; an admin can add one with `/taste team key`."
    ]
    channels = ", ".join(view.request_channels) if view.request_channels else "none"
    lines.append(f"Request channels: {channels} (`/taste team channel on|off` typed in a channel).")
    if view.budgets:
        shown_budgets = [
            f"{'default' if b.is_default else b.member} {budget_rate(b)}" for b in view.budgets
        ]
        lines.append(
            "Budgets (credits on the team key): "
            + ", ".join(shown_budgets)
            + "; "
            + (
                "members without their own budget get the default."
                if view.default_budget is not None
                else "members without a budget are not capped."
            )
        )
    else:
        lines.append("Budgets: none, so members may use the team key without a cap.")
    if not view.members:
        lines.append("Nobody has used the team key this month.")
        return "\n".join(lines)
    lines.append("Use of the team key (today / this month):")
    default_provider = next(iter(PROVIDERS))
    for member in view.members:
        parts = []
        for use in member.use:
            t, m = use.today, use.month
            if use.priced:
                if m.images or use.provider is default_provider:
                    parts.append(f"{amount(t.credits)} / {credits_word(m.credits)}")
            elif m.images:
                name = PROVIDERS[use.provider].display_name
                parts.append(f"{t.images} / {images_word(m.images)} on {name}")
        if member.budget is not None and member.left is not None:
            which = "default budget" if member.budget.is_default else "budget"
            parts.append(f"{which} {budget_rate(member.budget)}, {amount(member.left)} left")
        lines.append(f"• {member.member}: " + "; ".join(parts))
    return "\n".join(lines)


# --- operators ---------------------------------------------------------------------------


def overview_text(view: Overview, *, now: float) -> str:
    """``tmbot status``: generations by state, work per key (fingerprints only), events
    waiting for a platform, the newest failures."""
    counts = view.by_status
    order = [s for s in GenStatus if counts.get(s)]
    lines = [
        "Generations: "
        + (", ".join(f"{counts[s]} {_STATUS_WORDS[s]}" for s in order) if order else "none")
        + "."
    ]
    if view.keys:
        lines.append("Per key (waiting / at the provider):")
        for key in view.keys:
            name = PROVIDERS[key.provider].display_name
            whose = "team" if key.scope is KeyScope.TEAM else "personal"
            lines.append(f"• {name} {key.fingerprint} ({whose}): {key.waiting} / {key.running}")
    else:
        lines.append("No key has work waiting or running.")
    if view.undelivered_events:
        waiting = ", ".join(f"{n} for {p}" for p, n in sorted(view.undelivered_events.items()))
        lines.append(f"Events not yet shown: {waiting}.")
    else:
        lines.append("Every event has been shown.")
    if view.recent_failures:
        lines.append("Newest failures:")
        for gen in view.recent_failures:
            lines.append(f"• `{gen.id}` {relative_time(now - gen.updated_at)}: {gen.error}")
    return "\n".join(lines)
