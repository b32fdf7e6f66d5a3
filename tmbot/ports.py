"""The Protocols the core needs; adapters and storage implement them."""

from __future__ import annotations

from typing import Protocol

from tmbot.events import Event
from tmbot.records import Generation, KeyBinding, KeyRef, MessageLink, UserSettings


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

    # --- settings --------------------------------------------------------------------
    async def get_settings(self, tenant: str, user_id: str) -> UserSettings: ...

    async def put_settings(self, tenant: str, user_id: str, settings: UserSettings) -> None: ...

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
