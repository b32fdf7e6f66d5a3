"""The Protocols the core needs; adapters and storage implement them."""

from __future__ import annotations

from typing import Protocol

from tmbot.domain import ProviderName
from tmbot.events import Event
from tmbot.records import (
    Budget,
    Generation,
    KeyBinding,
    KeyRef,
    KeyScope,
    MessageLink,
    Spend,
    TeamSettings,
    UserSettings,
)


class Notifier(Protocol):
    """Renders core events on a platform (implemented by each adapter)."""

    async def notify(self, event: Event) -> None: ...


class Store(Protocol):
    """Everything tmbot keeps. Implementations must make each call atomic."""

    async def close(self) -> None: ...

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

    async def get_team_settings(self, tenant: str) -> TeamSettings: ...

    async def put_team_settings(self, tenant: str, settings: TeamSettings) -> None: ...

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
    async def insert_generation(self, generation: Generation) -> None: ...

    async def update_generation(self, generation: Generation) -> None:
        """Replace the stored row with the same id."""

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
