"""The Protocols the core needs; adapters and storage implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from tmbot.domain import Home, ProviderName
from tmbot.events import Event
from tmbot.records import (
    Budget,
    EventOutcome,
    Generation,
    GenStatus,
    KeyBinding,
    KeyRef,
    KeyScope,
    LinkCode,
    MessageLink,
    NewEvent,
    OutboxEntry,
    Overview,
    PersonLink,
    Spend,
    TeamLink,
    UserSettings,
)


@dataclass(frozen=True)
class Notice:
    """What a notifier is handed with an event: the messages already stored for the
    generation (its card, an image posted before a crash…), and ``record``, which stores a
    link at once. A notifier that posts an image records its link right after the platform
    answers, so a crash between the two is the only way an image could be posted twice."""

    links: tuple[MessageLink, ...]
    record: Callable[[MessageLink], Awaitable[None]]

    def link(self, kind: str) -> MessageLink | None:
        """The newest stored link of ``kind`` (``"card"``, ``"image"``)."""
        found = [link for link in self.links if link.kind == kind]
        return found[-1] if found else None


class Notifier(Protocol):
    """Renders core events on one platform (implemented by each adapter). Returns the
    messages it created, which the dispatcher stores before it marks the event done; raising
    means "try again later" (with backoff, a bounded number of times)."""

    async def notify(self, event: Event, notice: Notice) -> Sequence[MessageLink]: ...


class Store(Protocol):
    """Everything tmbot keeps. Implementations must make each call atomic."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers (readiness)."""

    async def lock_lost(self) -> None:
        """Return once the engine lock the store was opened with (``exclusive``) has been
        lost, so another engine may be running on the same database; never while it holds
        it, nor when it holds none. The runtime stops the process when this returns."""

    # --- keys ------------------------------------------------------------------------
    async def put_key(self, binding: KeyBinding) -> None:
        """Insert or replace the binding for ``binding.ref``."""

    async def get_key(self, ref: KeyRef) -> KeyBinding | None: ...

    async def delete_key(self, ref: KeyRef) -> bool:
        """True when a binding was removed."""

    async def record_balance(self, ref: KeyRef, *, remaining: float, seen_at: float) -> None:
        """Remember the provider's last reported balance for a bound key (no-op if unbound)."""

    async def list_keys(self, tenant: str | None = None) -> list[KeyBinding]:
        """Every binding of ``tenant`` (None: of every tenant), personal and team."""

    # --- settings --------------------------------------------------------------------
    async def get_settings(self, tenant: str, user_id: str) -> UserSettings: ...

    async def put_settings(self, tenant: str, user_id: str, settings: UserSettings) -> None: ...

    # --- team budgets and settings ----------------------------------------------------
    async def put_budget(self, budget: Budget) -> None:
        """Insert or replace the budget of ``(budget.tenant, budget.member)``."""

    async def get_budget(self, tenant: str, member: str) -> Budget | None:
        """A member's own budget (``member=DEFAULT_MEMBER``: the tenant's default)."""

    async def delete_budget(self, tenant: str, member: str) -> bool:
        """True when a budget was removed."""

    async def list_budgets(self, tenant: str) -> list[Budget]:
        """The default budget first (if any), then members' budgets by member id."""

    async def set_request_channel(
        self, tenant: str, channel: str, *, enabled: bool, by: str, at: float
    ) -> bool:
        """Make ``channel`` a request channel of ``tenant`` (or not); True when that
        changed something."""

    async def request_channels(self, tenant: str) -> list[str]:
        """The tenant's request channels, in the order they were added."""

    async def is_request_channel(self, tenant: str, channel: str) -> bool: ...

    # --- credit use, derived from generations -----------------------------------------
    async def spend(
        self, tenant: str, user_id: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> Spend:
        """What ``user_id`` asked for on ``tenant``'s keys of ``scope`` and ``provider`` since
        ``since`` (epoch seconds, by ``created_at``): reserved, settled or charged-then-failed
        credits (see :mod:`tmbot.records`), and how many images that was."""

    async def spend_by_member(
        self, tenant: str, *, scope: KeyScope, provider: ProviderName, since: float
    ) -> dict[str, Spend]:
        """:meth:`spend` for every member with any use since ``since``."""

    async def pending_cost(self, ref: KeyRef) -> float:
        """Credits reserved on a key by generations whose create call has not been answered
        yet (accepted or submitting): not yet in the provider's reported balance."""

    # --- generations -----------------------------------------------------------------
    async def insert_generation(
        self, generation: Generation, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry]:
        """Store a new generation and its first events, in one transaction; returns the
        stored events. Its home is the one the stored links give in that transaction,
        whatever ``generation.actor`` was resolved to before."""

    async def update_generation(self, generation: Generation) -> None:
        """Replace the stored row with the same id (fields only; status moves go through
        :meth:`transition`)."""

    async def transition(
        self, generation: Generation, *, expect: GenStatus, events: Sequence[NewEvent] = ()
    ) -> list[OutboxEntry] | None:
        """Replace the row and append ``events`` to its outbox in one transaction, only if
        the stored status is still ``expect``: the stored events, or None (nothing
        written)."""

    async def get_generation(self, generation_id: str) -> Generation | None: ...

    async def unfinished_generations(self) -> list[Generation]:
        """Every generation not DELIVERED or FAILED, oldest first."""

    async def recent_generations(
        self, tenant: str, user_id: str, *, limit: int = 10
    ) -> list[Generation]:
        """The user's newest generations, newest first."""

    # --- platform messages -----------------------------------------------------------
    async def link_message(self, link: MessageLink) -> None: ...

    async def generation_for_message(
        self, platform: str, channel: str, message_id: str
    ) -> str | None: ...

    async def messages_for_generation(self, generation_id: str) -> list[MessageLink]: ...

    # --- the outbox ------------------------------------------------------------------
    async def add_events(
        self,
        generation_id: str,
        events: Sequence[NewEvent],
        *,
        expect: GenStatus | None = None,
    ) -> list[OutboxEntry] | None:
        """Append events to a generation's outbox (numbered after its last one), only if
        its stored status is ``expect`` (when given): the stored events, or None (nothing
        written)."""

    async def pending_events(
        self, platform: str, *, limit: int, generation_id: str | None = None
    ) -> list[OutboxEntry]:
        """Events of ``platform`` not yet done, oldest first per generation (by ``seq``),
        at most ``limit``; without their blobs. Only ``generation_id``'s when given."""

    async def event_blob(self, entry_id: int) -> bytes | None: ...

    async def settle_events(self, outcomes: Sequence[EventOutcome]) -> None:
        """Record what became of handed-over events, and store the links they made, in one
        transaction. A done event's blob is dropped."""

    # --- seen platform events and repeated triggers ----------------------------------
    async def remember(
        self, scope: str, key: str, *, value: str, now: float, ttl: float
    ) -> str | None:
        """Record ``(scope, key) -> value`` for ``ttl`` seconds unless a live record
        exists: then nothing is written and its value is returned; None when this call
        recorded it. Holds across restarts (and processes sharing the store)."""

    async def forget(self, scope: str, key: str) -> None: ...

    # --- linked teams and accounts -------------------------------------------------------
    async def put_link_code(self, code: LinkCode) -> None:
        """Store a new code (its hash, never the code). The issuer's earlier unused codes of
        the same kind are withdrawn; codes long past their expiry are forgotten."""

    async def get_link_code(self, code_hash: str) -> LinkCode | None: ...

    async def team_link(self, tenant: str) -> TeamLink | None:
        """The team link ``tenant`` takes part in (as home or joined), if any."""

    async def link_teams(self, link: TeamLink, *, code_hash: str, now: float) -> bool:
        """In one transaction: use the code (only if it is an unused, unexpired team code
        made in ``link.home``) and record the link (only if neither tenant takes part in a
        team link yet), re-homing both tenants' generations. False: nothing was written."""

    async def unlink_teams(self, tenant: str) -> TeamLink | None:
        """Remove ``tenant``'s team link and every person link between its two tenants in
        one transaction, re-homing their generations; the removed link, or None."""

    async def person_links(self, tenant: str, user_id: str) -> list[PersonLink]:
        """The person links the account takes part in (as home or joined)."""

    async def link_people(self, link: PersonLink, *, code_hash: str, now: float) -> bool:
        """In one transaction: use the code (only if it is an unused, unexpired person code
        made by the home account) and record the link (only if the two tenants are
        team-linked and neither account takes part in a person link yet), re-homing the
        joined account's generations. False: nothing was written."""

    async def unlink_people(self, tenant: str, user_id: str) -> list[PersonLink]:
        """Remove the person links the account takes part in, re-homing their generations;
        the removed links."""

    async def resolve_home(self, tenant: str, user_id: str) -> Home | None:
        """Where the account's things are kept when its tenant or itself is linked (see
        :class:`tmbot.domain.Home`); None when neither is."""

    # --- operations --------------------------------------------------------------------
    async def overview(self, *, failures: int = 5) -> Overview:
        """Generations by status, work per key, events waiting per platform, and the
        newest failures (read only)."""


def none_sent(_lane: str) -> Sequence[float]:
    """No requests to tell of (a :meth:`Coordinator.start` default)."""
    return ()


def inherit_nothing(_lane: str, _ages: Sequence[float]) -> None:
    """Ignore what a previous owner sent (a :meth:`Coordinator.start` default)."""


class Leases(Protocol):
    """Named leases beside the lanes: things one live process at a time holds for as long
    as it runs (Discord's gateway shards, :mod:`tmbot.shards`). Held leases are renewed with
    the lanes and given up on close; a process that dies loses them after a lease's time.
    ``sole`` coordinators grant every one at once."""

    @property
    def member(self) -> str:
        """This process as the store knows it (``pid@host:…``)."""

    async def leases(self, prefix: str) -> dict[str, str]:
        """The live leases whose names start with ``prefix``: name -> holder (a member)."""

    async def acquire(self, name: str) -> bool:
        """Hold ``name`` if it is free, lapsed or already this process's: True when held."""

    async def release(self, name: str) -> None:
        """Give ``name`` up (others may take it at once)."""

    def holds(self, name: str) -> bool:
        """Whether this process holds ``name`` now (False once its renewal may have
        lapsed)."""


class Coordinator(Leases, Protocol):
    """Who does what when several processes share one store (issue 14, item 3).

    A key's *lane* (``provider:hash-of-the-secret``, what the scheduler keeps its limits for)
    is run by exactly one process at a time, its owner: only the owner submits and polls for
    that key, so the per-key limits hold as in one process. A process that accepts a brief
    for a lane it does not own stores it and calls :meth:`hand_off` to wake the owner.
    A generation's events on a platform are handed over by one process at a time, the holder
    of its *claim* (:meth:`claim`). ``sole`` coordinators (one process per store: SQLite) own
    every lane and hold every claim without asking the store."""

    @property
    def sole(self) -> bool:
        """True when this process is the only one: every lane and claim is its own."""

    @property
    def member(self) -> str:
        """This process as the store knows it (``pid@host:…``)."""

    async def start(
        self,
        *,
        work: Callable[[], None],
        events: Callable[[str], None],
        lost: Callable[[str], None],
        busy: Callable[[], Collection[str]],
        sent: Callable[[str], Sequence[float]] = none_sent,
        inherit: Callable[[str, Sequence[float]], None] = inherit_nothing,
    ) -> None:
        """Begin: ``work()`` is called when lanes may have work for this process (a hand-off,
        a lapsed owner), ``events(platform)`` when a platform's outbox may hold events this
        process can claim, ``lost(lane)`` when a lane this process ran is no longer its own;
        ``busy()`` names the lanes with work running here (their leases are kept).
        ``sent(lane)`` says how long ago (real seconds) each request of the lane's current
        rate window went out here; ``inherit(lane, ages)`` is told the same of a lane this
        process takes over from another, so the key's window holds across the takeover."""

    async def close(self) -> None:
        """Give up every lane and claim (others take over at once) and stop."""

    def owns(self, lane: str) -> bool:
        """Whether this process holds ``lane`` now."""

    async def take(self, lane: str, *, waiting: float = 0.0) -> bool:
        """Own ``lane`` if it should be this process's: True when it is now. A free lane
        goes to the live process the spread picks; any process takes it once its work has
        been ``waiting`` (seconds) longer than a lease lasts."""

    async def hand_off(self, lane: str) -> None:
        """Wake the owner of ``lane`` (a brief for it was stored here)."""

    def guard(self, name: str) -> AbstractAsyncContextManager[None]:
        """Held around a check and the write it allows (a key's funds check and the
        reservation), by one holder at a time across every process."""

    async def claim(self, platform: str, generation_ids: Sequence[str]) -> set[str]:
        """Claim the right to hand over these generations' events on ``platform``: the ids
        this process holds now (claims of others that lapsed are taken over)."""

    async def unclaim(self, platform: str, generation_ids: Sequence[str]) -> None:
        """Release claims once their events are handed over and recorded."""

    async def poke(self, platform: str) -> None:
        """Tell every process that ``platform``'s outbox has events it may not know of."""
