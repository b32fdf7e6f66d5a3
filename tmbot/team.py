"""The team's admin use cases: budgets, channel mentions, and the team overview.

Each returns the sentence to tell the admin; :class:`tmbot.engine.Engine` wraps it in its
reply. Binding the team's key stays with the other key use cases in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tmbot import commands as cmds
from tmbot.capabilities import DEFAULT_PROVIDER, caps
from tmbot.domain import Actor, ProviderName
from tmbot.errors import NotPermitted
from tmbot.funds import period_start, priced
from tmbot.keystate import unusable_note
from tmbot.ports import Store
from tmbot.records import (
    DEFAULT_MEMBER,
    Budget,
    BudgetPeriod,
    KeyBinding,
    KeyRef,
    KeyScope,
    Spend,
    TeamSettings,
)
from tmbot.texts import amount, budget_rate, credits_word, images_word, relative_time, renews


def require_admin(actor: Actor) -> None:
    """Refuse a team command (or a team key) to anyone who is not a workspace admin."""
    if not actor.is_admin:
        raise NotPermitted(
            "Only workspace admins can see or change the team's key, budgets and channel "
            "setting; ask one of them."
        )


class Team:
    """Admin-only team settings, read from and stored in the store; ``now`` is the wall
    clock (seconds)."""

    def __init__(
        self,
        *,
        store: Store,
        now: Callable[[], float],
        usable: Callable[[KeyBinding], bool] = lambda binding: True,
    ) -> None:
        self.store = store
        self._now = now
        #: False for a key this process cannot decrypt (see tmbot.keystate)
        self._usable = usable

    async def set_budget(self, actor: Actor, command: cmds.TeamBudget) -> str:
        require_admin(actor)
        tenant = actor.tenant
        member = command.target if command.target is not None else DEFAULT_MEMBER
        if command.remove:
            removed = await self.store.delete_budget(tenant, member)
            if member == DEFAULT_MEMBER:
                if not removed:
                    return "There was no default budget; nothing changed."
                return (
                    "Removed the default budget; members without their own budget now use the "
                    "team key without a cap."
                )
            if not removed:
                return f"{member} had no budget of their own; nothing changed."
            fallback = await self.store.get_budget(tenant, DEFAULT_MEMBER)
            after = (
                f"the default budget ({budget_rate(fallback)}) applies to them now"
                if fallback is not None
                else "their use of the team key is not capped now"
            )
            return f"Removed {member}'s budget; {after}."
        budget = Budget(
            tenant=tenant,
            member=member,
            amount=command.amount,
            period=BudgetPeriod(command.period),
            updated_at=self._now(),
        )
        await self.store.put_budget(budget)
        who = "members without their own budget" if budget.is_default else member
        text = (
            f"Saved: {who} may use up to {credits_word(budget.amount)} a {budget.period.value} "
            f"of the team's key (it renews {renews(budget.period)})."
        )
        team_key = await self.store.get_key(KeyRef(KeyScope.TEAM, tenant, "", DEFAULT_PROVIDER))
        if team_key is None:
            text += " The team has no key yet: bind one with `/taste team key`."
        return text

    async def set_channel(self, actor: Actor, enabled: bool) -> str:
        require_admin(actor)
        await self.store.put_team_settings(actor.tenant, TeamSettings(channel_enabled=enabled))
        if enabled:
            return "Channel mentions are on: members can mention tmbot in a channel."
        return "Channel mentions are off: members use `/taste` to make images."

    async def show(self, actor: Actor) -> str:
        """The team's keys (fingerprints and balances), the channel setting, the budgets, and
        each member's use of the team key this period."""
        require_admin(actor)
        tenant, now = actor.tenant, self._now()
        keys = []
        for provider in ProviderName:
            binding = await self.store.get_key(KeyRef(KeyScope.TEAM, tenant, "", provider))
            if binding is None:
                continue
            shown = f"{caps(provider).display_name} {binding.fingerprint}"
            if not self._usable(binding):
                shown += f" ({unusable_note(binding)})"
            elif binding.balance is not None:
                seen = relative_time(now - (binding.balance_seen_at or now))
                shown += f" ({credits_word(binding.balance)} left as of {seen})"
            keys.append(shown)
        lines = [
            "Team keys: " + "; ".join(keys) + "."
            if keys
            else "The team has no key bound; an admin can add one with `/taste team key`."
        ]
        settings = await self.store.get_team_settings(tenant)
        lines.append(
            f"Channel mentions: {'on' if settings.channel_enabled else 'off'} "
            "(`/taste team channel on|off`)."
        )
        budgets = await self.store.list_budgets(tenant)
        by_member = {b.member: b for b in budgets}
        default = by_member.get(DEFAULT_MEMBER)
        if budgets:
            shown_budgets = [
                f"{'default' if b.is_default else b.member} {budget_rate(b)}" for b in budgets
            ]
            lines.append(
                "Budgets (credits on the team key): "
                + ", ".join(shown_budgets)
                + "; "
                + (
                    "members without their own budget get the default."
                    if default is not None
                    else "members without a budget are not capped."
                )
            )
        else:
            lines.append("Budgets: none, so members may use the team key without a cap.")
        lines.extend(await self._use_lines(tenant, by_member, default))
        return "\n".join(lines)

    async def _use_lines(
        self, tenant: str, by_member: Mapping[str, Budget], default: Budget | None
    ) -> list[str]:
        now = self._now()
        day, month = (period_start(p, now) for p in (BudgetPeriod.DAY, BudgetPeriod.MONTH))
        use: dict[ProviderName, tuple[dict[str, Spend], dict[str, Spend]]] = {}
        for provider in ProviderName:
            use[provider] = (
                await self.store.spend_by_member(
                    tenant, scope=KeyScope.TEAM, provider=provider, since=day
                ),
                await self.store.spend_by_member(
                    tenant, scope=KeyScope.TEAM, provider=provider, since=month
                ),
            )
        members = sorted(
            {m for m in by_member if m != DEFAULT_MEMBER}
            | {m for _, by_month in use.values() for m in by_month}
        )
        if not members:
            return ["Nobody has used the team key this month."]
        lines = ["Use of the team key (today / this month):"]
        for member in members:
            parts = []
            for provider, (by_day, by_month) in use.items():
                t, m = by_day.get(member, Spend()), by_month.get(member, Spend())
                if priced(provider):
                    if m.images or provider is DEFAULT_PROVIDER:
                        parts.append(f"{amount(t.credits)} / {credits_word(m.credits)}")
                elif m.images:
                    name = caps(provider).display_name
                    parts.append(f"{t.images} / {images_word(m.images)} on {name}")
            budget = by_member.get(member) or default
            if budget is not None:
                # budgets count credits on the providers that publish prices
                index = 0 if budget.period is BudgetPeriod.DAY else 1
                used = sum(
                    spent[index].get(member, Spend()).credits
                    for provider, spent in use.items()
                    if priced(provider)
                )
                left = amount(max(0.0, budget.amount - used))
                which = "default budget" if budget.is_default else "budget"
                parts.append(f"{which} {budget_rate(budget)}, {left} left")
            lines.append(f"• {member}: " + "; ".join(parts))
        return lines
