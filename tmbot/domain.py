"""Core value types: what every part of tmbot speaks.

Provider clients translate the two APIs' words into these at their edge; adapters build
:class:`Actor` and :class:`Place` from platform events (strings only, never SDK objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ProviderName(StrEnum):
    TASTEMACHINE = "tastemachine"
    VTRIX = "vtrix"


@dataclass(frozen=True)
class ApiKey:
    """A provider API key. Its text forms (str, repr, f-strings) show only a fingerprint,
    so a key that slips into a log line or an exception shows as ``…a1b2``."""

    secret: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return "…" + self.secret[-4:]

    def __str__(self) -> str:
        return self.fingerprint

    def __repr__(self) -> str:
        return f"ApiKey({self.fingerprint})"

    def __format__(self, spec: str) -> str:
        return format(self.fingerprint, spec)


def tenant_of(platform: str, tenant_id: str) -> str:
    """A tenant namespaced by its platform (``slack:T123``, ``discord:42``,
    ``console:local``), so two platforms' ids can never meet."""
    prefix = f"{platform}:"
    return tenant_id if tenant_id.startswith(prefix) else prefix + tenant_id


@dataclass(frozen=True)
class Home:
    """Where an actor's things are kept (see :mod:`tmbot.links`). ``team`` is the tenant
    whose team keys, budgets and team-key use apply; ``tenant`` and ``user_id`` are the
    account whose personal keys, settings and history are theirs, and ``user_id`` is also
    their member id in the team's budgets. Unlinked, all three are the actor's own."""

    team: str
    tenant: str
    user_id: str


@dataclass(frozen=True)
class Actor:
    """Who asked. ``tenant`` is the Slack workspace / Discord guild / console session,
    namespaced by platform (see :func:`tenant_of`); ``platform``, ``tenant`` and ``user_id``
    always stay the actor's own (where they are, who to mention). ``linked`` is set by the
    engine when it resolves an incoming actor whose team or account is linked to another
    platform's (:meth:`tmbot.links.Links.resolve`); read it through :attr:`home`."""

    platform: str
    tenant: str
    user_id: str
    is_admin: bool = False
    display_name: str = ""
    linked: Home | None = None

    def __post_init__(self) -> None:
        if not self.tenant.startswith(f"{self.platform}:"):
            raise ValueError(
                f"an actor's tenant must be namespaced by its platform ({self.platform}:…); "
                "build it with tenant_of()"
            )

    @property
    def label(self) -> str:
        return self.display_name or self.user_id

    @property
    def home(self) -> Home:
        """Where this actor's keys, budgets, settings and history are kept."""
        return self.linked or Home(self.tenant, self.tenant, self.user_id)


@dataclass(frozen=True)
class Place:
    """Where results go: a channel and a thread in it. The notifier posts the request card
    on the ``Accepted`` event; ``card_message`` is set only when the adapter made the card
    itself before asking (the notifier then adopts it instead of posting one)."""

    platform: str
    channel: str
    thread: str | None = None
    card_message: str | None = None


@dataclass(frozen=True)
class GenerationSpec:
    """A validated request in the core vocabulary.

    ``model`` is the core model name (``nano-banana-pro``, ``nano-banana-2``); ``resolution``
    is lower-case (``0.5k``, ``1k``, ``2k``, ``4k``). Each provider client spells them as its
    API wants.
    """

    provider: ProviderName
    brief: str
    model: str
    aspect_ratio: str
    resolution: str
    taste: str | None = None
    image_urls: tuple[str, ...] = ()


class TaskStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskState:
    """A provider task as last seen."""

    task_id: str
    status: TaskStatus
    image_urls: tuple[str, ...] = ()
    prompt_used: str | None = None
    expires_at: float | None = None  # epoch seconds (provider time)
    credits_consumed: float | None = None
    error: str | None = None  # a sentence a person can read, for FAILED


@dataclass(frozen=True)
class Submission:
    """The answer to a create call."""

    task_id: str
    estimated_seconds: float | None = None
    credits_required: float | None = None
    credits_remaining: float | None = None
    #: Set when the task already ended in the create answer (Vtrix fast path).
    state: TaskState | None = None
