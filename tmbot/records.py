"""What tmbot remembers: generations, key bindings, settings, budgets, message links.

Frozen values; the :class:`tmbot.ports.Store` persists them. Credit use is derived from
generation rows, so there is no second ledger to drift from them: a generation's ``cost`` is
*reserved* while it runs, *settled* at ``credits_consumed`` (when the provider reported it,
else ``cost``) once it completed, and *released* (0) when it failed without the provider
reporting a charge. :class:`Spend` is that sum over a set of rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tmbot.domain import Actor, GenerationSpec, Place, ProviderName


class GenStatus(StrEnum):
    ACCEPTED = "accepted"  # stored; waiting for a slot on its key
    SUBMITTING = "submitting"  # the create call is in flight
    SUBMITTED = "submitted"  # the provider has a task id; being polled
    COMPLETED = "completed"  # the provider finished; the image is not yet delivered
    DELIVERED = "delivered"  # final
    FAILED = "failed"  # final

    @property
    def final(self) -> bool:
        return self in (GenStatus.DELIVERED, GenStatus.FAILED)


class KeyScope(StrEnum):
    USER = "user"
    TEAM = "team"


@dataclass(frozen=True)
class KeyRef:
    """Which binding pays: a user's personal key, or the team's key, for one provider."""

    scope: KeyScope
    tenant: str
    owner: str  # the user id for USER; "" for TEAM
    provider: ProviderName

    @property
    def lane_id(self) -> str:
        """Stable identity of the key for the scheduler (limits are per key)."""
        return f"{self.provider}:{self.scope}:{self.tenant}:{self.owner}"


@dataclass(frozen=True)
class KeyBinding:
    ref: KeyRef
    ciphertext: bytes
    fingerprint: str
    created_at: float
    balance: float | None = None  # the provider's last reported remaining credits
    balance_seen_at: float | None = None


@dataclass(frozen=True)
class UserSettings:
    """Per-user defaults applied to later briefs; flags in a brief still win."""

    provider: ProviderName | None = None
    model: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    taste: str | None = None


@dataclass(frozen=True)
class Generation:
    id: str
    actor: Actor
    place: Place
    spec: GenerationSpec
    key: KeyRef
    status: GenStatus
    created_at: float  # epoch seconds, wall clock
    updated_at: float
    cost: float | None = None  # credits reserved before submit (price table)
    task_id: str | None = None
    estimate_seconds: float | None = None
    submitted_at: float | None = None
    completed_at: float | None = None
    image_url: str | None = None
    prompt_used: str | None = None
    expires_at: float | None = None
    credits_consumed: float | None = None
    credits_remaining: float | None = None
    error: str | None = None
    delivered_at: float | None = None
    regenerated_from: str | None = None
    #: set when the requester or an admin deleted it (its messages are to be removed); the
    #: row stays, so its credits still count
    deleted_at: float | None = None
    deleted_by: str | None = None


@dataclass(frozen=True)
class MessageLink:
    """A platform message that shows a generation (its request card or its image)."""

    platform: str
    channel: str
    message_id: str
    generation_id: str
    kind: str = "card"  # "card" or "image"


class BudgetPeriod(StrEnum):
    DAY = "day"  # from 00:00 UTC today
    MONTH = "month"  # from the 1st of this month, 00:00 UTC


#: ``Budget.member`` of a tenant's default budget (members without their own).
DEFAULT_MEMBER = ""


@dataclass(frozen=True)
class Budget:
    """A member's cap on the team key, in credits per period (priced providers only)."""

    tenant: str
    member: str  # a user id, or DEFAULT_MEMBER for everyone without their own budget
    amount: int
    period: BudgetPeriod
    updated_at: float | None = None

    @property
    def is_default(self) -> bool:
        return self.member == DEFAULT_MEMBER


@dataclass(frozen=True)
class Spend:
    """Credit use derived from generation rows (see the module docstring).

    ``credits`` sums provider-reported or price-table amounts; for a provider without prices
    (Vtrix) it is only what the provider reported (``usage.cost``), so ``images`` is the
    measure that is always known.
    """

    credits: float = 0.0
    images: int = 0


# --- linked teams and accounts -----------------------------------------------------------


class LinkKind(StrEnum):
    TEAM = "team"  # ``team link``: two tenants become one team
    PERSON = "person"  # ``link``: one person's two accounts become one


@dataclass(frozen=True)
class LinkCode:
    """A one-time code as stored: only its hash (:func:`tmbot.links.code_hash`), who made it
    where, and until when it may be used; ``used_at`` is set when a link used it."""

    code_hash: str
    kind: LinkKind
    tenant: str  # where it was made (its platform is the tenant's prefix)
    user_id: str  # who made it
    created_at: float
    expires_at: float
    used_at: float | None = None

    @property
    def platform(self) -> str:
        return self.tenant.split(":", 1)[0]


@dataclass(frozen=True)
class TeamLink:
    """``joined`` shares ``home``'s team: its keys, budgets and team-key use. A tenant takes
    part in at most one team link."""

    home: str
    joined: str
    linked_by: str  # the admin who typed the code (a user id of ``joined``)
    linked_at: float


@dataclass(frozen=True)
class PersonLink:
    """The account ``(tenant, user_id)`` uses the account ``(home_tenant, home_user_id)``'s
    keys, settings and history, and counts as that member in the team's budgets. Only
    between the two tenants of one team link."""

    home_tenant: str
    home_user_id: str
    tenant: str
    user_id: str
    linked_at: float


# --- the outbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    """An event to write to the outbox with the state change that produced it (see
    :mod:`tmbot.events` for the kinds and their payloads). Writing it marks the generation's
    undelivered events whose kind is in ``replaces`` as done: a newer progress state replaces
    an older one nobody has seen yet."""

    kind: str
    payload: Mapping[str, object] = field(default_factory=dict)
    blob: bytes | None = field(default=None, repr=False)
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxEntry:
    """A stored event waiting for (or handed to) a platform's notifier. ``seq`` orders a
    generation's events; ``platform`` is its place's platform."""

    id: int
    generation_id: str
    platform: str
    seq: int
    kind: str
    payload: Mapping[str, object]
    attempts: int = 0
    next_attempt_at: float = 0.0
    has_blob: bool = False


@dataclass(frozen=True)
class EventOutcome:
    """What became of one handed-over event: ``done`` with the links the notifier made, or
    not done with the time of the next attempt. ``error`` on a done event says it was given
    up (kept for inspection)."""

    entry_id: int
    done: bool
    links: tuple[MessageLink, ...] = ()
    attempts: int = 0
    next_attempt_at: float = 0.0
    error: str | None = None


# --- what an operator sees --------------------------------------------------------------


@dataclass(frozen=True)
class KeyLoad:
    """One key's work at the provider and waiting for it (fingerprint only)."""

    provider: ProviderName
    scope: KeyScope
    fingerprint: str
    waiting: int  # accepted, not yet sent
    running: int  # being sent, at the provider, or being downloaded


@dataclass(frozen=True)
class Overview:
    """The database at a glance (``tmbot status``)."""

    by_status: Mapping[GenStatus, int]
    keys: tuple[KeyLoad, ...]
    undelivered_events: Mapping[str, int]  # platform -> events not yet handed over
    recent_failures: tuple[Generation, ...]  # newest first
