"""A person's own things: binding keys, which key pays, credits, settings and history.

Who pays: the actor's own key for the provider, else the team's key (:meth:`Accounts.binding_for`).
Keys are decrypted only here, and each decrypted secret is handed to ``on_secret`` (the log
redactor) before anything else can see it.
"""

from __future__ import annotations

from collections.abc import Callable

from tmbot import commands as cmds
from tmbot.capabilities import DEFAULT_PROVIDER, caps
from tmbot.domain import Actor, ApiKey, ProviderName
from tmbot.errors import NoKeyBound
from tmbot.funds import Funds, period_start, priced, provider_flag
from tmbot.keystate import open_key, unusable_note, usable
from tmbot.ports import Store
from tmbot.records import BudgetPeriod, KeyBinding, KeyRef, KeyScope, UserSettings
from tmbot.replies import (
    CreditsEntry,
    CreditsView,
    HistoryView,
    KeyBound,
    LoggedOut,
    SettingsView,
)
from tmbot.team import require_admin
from tmbot.vault import Vault


def no_key(provider: ProviderName) -> NoKeyBound:
    name = caps(provider).display_name
    return NoKeyBound(
        f"You have no key for {name} yet, and neither does your team: bind yours with "
        f"`/taste key{provider_flag(provider)}`."
    )


class Accounts:
    def __init__(
        self,
        *,
        store: Store,
        vault: Vault,
        funds: Funds,
        now: Callable[[], float],
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.vault = vault
        self.funds = funds
        self._now = now
        self._on_secret = on_secret

    # --- keys --------------------------------------------------------------------------

    def decrypt(self, binding: KeyBinding) -> ApiKey:
        """The binding's key, or KeyUnusable (the secret changed) saying who can rebind it."""
        key = open_key(self.vault, binding)
        if self._on_secret is not None:
            self._on_secret(key.secret)
        return key

    async def find_binding(self, actor: Actor, provider: ProviderName) -> KeyBinding | None:
        """The actor's own key beats the team's (both where the actor's home keeps them)."""
        home = actor.home
        for ref in (
            KeyRef(KeyScope.USER, home.tenant, home.user_id, provider),
            KeyRef(KeyScope.TEAM, home.team, "", provider),
        ):
            binding = await self.store.get_key(ref)
            if binding is not None:
                return binding
        return None

    async def binding_for(self, actor: Actor, provider: ProviderName) -> KeyBinding:
        binding = await self.find_binding(actor, provider)
        if binding is None:
            raise no_key(provider)
        return binding

    async def key_for(self, ref: KeyRef) -> ApiKey:
        binding = await self.store.get_key(ref)
        if binding is None:
            raise NoKeyBound("The key that was paying for this image has been removed.")
        return self.decrypt(binding)

    def usable(self, binding: KeyBinding) -> bool:
        return usable(self.vault, binding)

    async def bind_key(
        self,
        actor: Actor,
        provider: ProviderName,
        key: ApiKey,
        *,
        scope: KeyScope = KeyScope.USER,
    ) -> KeyBound:
        if scope is KeyScope.TEAM:
            require_admin(actor)
        cmds.check_key(provider, key)
        home = actor.home
        owner = home.user_id if scope is KeyScope.USER else ""
        tenant = home.tenant if scope is KeyScope.USER else home.team
        if self._on_secret is not None:
            self._on_secret(key.secret)
        await self.store.put_key(
            KeyBinding(
                ref=KeyRef(scope, tenant, owner, provider),
                ciphertext=self.vault.encrypt(key),
                fingerprint=key.fingerprint,
                created_at=self._now(),
            )
        )
        return KeyBound(provider=provider, scope=scope, fingerprint=key.fingerprint)

    async def logout(self, actor: Actor, provider: ProviderName | None) -> LoggedOut:
        providers = [provider] if provider is not None else list(ProviderName)
        removed = [
            p
            for p in providers
            if await self.store.delete_key(
                KeyRef(KeyScope.USER, actor.home.tenant, actor.home.user_id, p)
            )
        ]
        return LoggedOut(removed=tuple(removed))

    # --- credits -----------------------------------------------------------------------

    async def credits(self, actor: Actor) -> CreditsView:
        """Per provider the actor can use (their default provider first): which key, its
        balance as last reported, their use today and this month, and their team budget."""
        settings = await self.store.get_settings(actor.home.tenant, actor.home.user_id)
        first = settings.provider or DEFAULT_PROVIDER
        entries = []
        for provider in [first, *(p for p in ProviderName if p is not first)]:
            binding = await self.find_binding(actor, provider)
            if binding is not None:
                entries.append(await self._entry(actor, binding))
        if not entries:
            raise no_key(first)
        return CreditsView(entries=tuple(entries), now=self._now())

    async def _entry(self, actor: Actor, binding: KeyBinding) -> CreditsEntry:
        ref = binding.ref
        now = self._now()
        # your use of the key you are on now: not of one bound before it
        today, month = [
            await self.store.spend(
                ref.tenant,
                actor.home.user_id,
                scope=ref.scope,
                provider=ref.provider,
                since=max(period_start(period, now), binding.created_at),
            )
            for period in (BudgetPeriod.DAY, BudgetPeriod.MONTH)
        ]
        is_priced = priced(ref.provider)
        budget = left = None
        if ref.scope is KeyScope.TEAM and is_priced:
            allowance = await self.funds.allowance(actor.home.team, actor.home.user_id)
            budget, left = allowance.budget, allowance.left
        return CreditsEntry(
            provider=ref.provider,
            scope=ref.scope,
            fingerprint=binding.fingerprint,
            priced=is_priced,
            balance=binding.balance,
            balance_seen_at=binding.balance_seen_at,
            today=today,
            month=month,
            budget=budget,
            budget_left=left,
            unusable=None if usable(self.vault, binding) else unusable_note(binding),
        )

    # --- settings and history ----------------------------------------------------------

    async def settings(self, actor: Actor, command: cmds.Settings) -> SettingsView:
        tenant, user_id = actor.home.tenant, actor.home.user_id
        current = await self.store.get_settings(tenant, user_id)
        if command.reset:
            await self.store.put_settings(tenant, user_id, UserSettings())
            return SettingsView(UserSettings(), "cleared")
        if command.options.is_empty:
            return SettingsView(current, "shown")
        merged = cmds.validate_settings(command.options, current)
        await self.store.put_settings(tenant, user_id, merged)
        return SettingsView(merged, "saved")

    async def history(self, actor: Actor) -> HistoryView:
        gens = await self.store.recent_generations(actor.home.tenant, actor.home.user_id, limit=10)
        return HistoryView(generations=tuple(gens), now=self._now())
