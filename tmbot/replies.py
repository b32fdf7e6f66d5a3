"""What each use case answers, as values: adapters render them (Slack blocks, Discord
embeds); :func:`tmbot.texts.render` turns any of them into the sentences the console prints
and the chat adapters use as fallback text. Nobody parses a sentence back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tmbot.domain import ProviderName
from tmbot.records import (
    Budget,
    Generation,
    KeyScope,
    LinkKind,
    PersonLink,
    Spend,
    TeamLink,
    UserSettings,
)


@dataclass(frozen=True)
class GenerationAccepted:
    """A generation was stored and is on its way (generate, regenerate, refine).
    ``duplicate``: the same trigger was seen within the window, so this is the earlier
    generation and nothing new was made."""

    generation: Generation
    duplicate: bool = False


@dataclass(frozen=True)
class KeyFormRequested:
    """Open the platform's private form for a key (never ask for it in a channel)."""

    provider: ProviderName
    scope: KeyScope


@dataclass(frozen=True)
class KeyBound:
    provider: ProviderName
    scope: KeyScope
    fingerprint: str


@dataclass(frozen=True)
class LoggedOut:
    removed: tuple[ProviderName, ...]  # empty: there was nothing to remove


@dataclass(frozen=True)
class CreditsEntry:
    """One provider the actor can use: which key, its balance, their use, their budget."""

    provider: ProviderName
    scope: KeyScope
    fingerprint: str
    priced: bool  # the provider publishes prices (budgets in credits apply)
    balance: float | None  # as last reported by the provider
    balance_seen_at: float | None
    today: Spend
    month: Spend
    budget: Budget | None = None  # the team budget that applies (team key only)
    budget_left: float | None = None
    #: set when this process cannot decrypt the key (its secret changed): what to do
    unusable: str | None = None


@dataclass(frozen=True)
class CreditsView:
    entries: tuple[CreditsEntry, ...]
    now: float


@dataclass(frozen=True)
class SettingsView:
    settings: UserSettings
    action: Literal["shown", "saved", "cleared"]


@dataclass(frozen=True)
class HistoryView:
    generations: tuple[Generation, ...]  # newest first
    now: float


@dataclass(frozen=True)
class HelpView:
    topic: str | None
    platform: str | None = None  # the console has no forms or reactions to mention


@dataclass(frozen=True)
class TeamKeyView:
    provider: ProviderName
    fingerprint: str
    balance: float | None
    balance_seen_at: float | None
    unusable: str | None = None  # see CreditsEntry.unusable


@dataclass(frozen=True)
class ProviderUse:
    provider: ProviderName
    priced: bool
    today: Spend
    month: Spend


@dataclass(frozen=True)
class MemberUse:
    """A member's use of the team key, and what is left of the budget that applies."""

    member: str
    use: tuple[ProviderUse, ...]
    budget: Budget | None
    left: float | None


@dataclass(frozen=True)
class TeamView:
    keys: tuple[TeamKeyView, ...]
    request_channels: tuple[str, ...]  # channel ids where every new message is a brief
    budgets: tuple[Budget, ...]  # the default first, if any
    members: tuple[MemberUse, ...]
    now: float

    @property
    def default_budget(self) -> Budget | None:
        return next((b for b in self.budgets if b.is_default), None)


@dataclass(frozen=True)
class BudgetSaved:
    budget: Budget
    team_has_key: bool


@dataclass(frozen=True)
class BudgetRemoved:
    member: str  # DEFAULT_MEMBER for the default budget
    removed: bool
    fallback: Budget | None  # the default that applies to the member now


@dataclass(frozen=True)
class ChannelSet:
    """``team channel on|off`` in ``channel``: whether it is now a request channel, and
    whether that changed anything."""

    channel: str
    enabled: bool
    changed: bool


@dataclass(frozen=True)
class DeleteAccepted:
    """Deleted: the adapter is told through a ``Deleted`` event (or ``Failed`` for a
    generation cancelled before it was sent, ``cancelled``)."""

    generation: Generation
    cancelled: bool


@dataclass(frozen=True)
class KeyNote:
    """A key named by provider and fingerprint (never the key)."""

    provider: ProviderName
    fingerprint: str


@dataclass(frozen=True)
class LinkCodeIssued:
    """A one-time code for ``team link`` or ``link``, shown only to whoever asked (it is a
    secret until it is used or expires)."""

    kind: LinkKind
    code: str  # as shown: ABCD-EFGH-JKLM
    platform: str  # where it was made: it is typed on another platform
    expires_at: float
    now: float


@dataclass(frozen=True)
class TeamsLinked:
    """``team link CODE`` joined this tenant to ``link.home``'s team. ``team_keys`` are the
    team's keys now (the home's); ``set_aside_keys`` and ``set_aside_budgets`` are this
    tenant's own, kept unused until ``team unlink``."""

    link: TeamLink
    team_keys: tuple[KeyNote, ...]
    set_aside_keys: tuple[KeyNote, ...]
    set_aside_budgets: int


@dataclass(frozen=True)
class TeamsUnlinked:
    """The removed link (None: there was none); accounts linked across it were unlinked
    with it."""

    link: TeamLink | None


@dataclass(frozen=True)
class AccountsLinked:
    """``link CODE`` made this account use the home account's keys, settings and history;
    its own keys and settings are kept unused until ``unlink``."""

    link: PersonLink
    set_aside_keys: tuple[KeyNote, ...]
    set_aside_settings: bool


@dataclass(frozen=True)
class AccountsUnlinked:
    links: tuple[PersonLink, ...]  # empty: there was nothing to undo
    here: str = ""  # the tenant of the account that asked


Reply = (
    GenerationAccepted
    | KeyFormRequested
    | KeyBound
    | LoggedOut
    | CreditsView
    | SettingsView
    | HistoryView
    | HelpView
    | TeamView
    | BudgetSaved
    | BudgetRemoved
    | ChannelSet
    | DeleteAccepted
    | LinkCodeIssued
    | TeamsLinked
    | TeamsUnlinked
    | AccountsLinked
    | AccountsUnlinked
)
