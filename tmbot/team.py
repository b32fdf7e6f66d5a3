"""The team's admin use cases: budgets, channel mentions, and the team overview.

Each returns a typed reply (:mod:`tmbot.replies`); :func:`tmbot.texts.render` words it.
Binding the team's key stays with the other key use cases in :mod:`tmbot.accounts`.
"""

from __future__ import annotations

from collections.abc import Callable

from tmbot import commands as cmds
from tmbot.capabilities import DEFAULT_PROVIDER
from tmbot.domain import Actor, ProviderName
from tmbot.errors import NotPermitted
from tmbot.funds import period_start, priced
from tmbot.keystate import unusable_note
from tmbot.links import Links
from tmbot.ports import Store
from tmbot.records import (
    DEFAULT_MEMBER,
    Budget,
    BudgetPeriod,
    KeyBinding,
    KeyRef,
    KeyScope,
    Spend,
)
from tmbot.replies import (
    BudgetRemoved,
    BudgetSaved,
    ChannelSet,
    MemberUse,
    ProviderUse,
    TeamKeyView,
    TeamView,
)


def require_admin(actor: Actor) -> None:
    """Refuse a team command (or a team key) to anyone who is not a workspace admin."""
    if not actor.is_admin:
        raise NotPermitted(
            "Only workspace admins can see or change the team's key, budgets, channel "
            "setting and links; ask one of them."
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
        links: Links | None = None,
    ) -> None:
        self.store = store
        self.links = links or Links(store=store, now=now)
        self._now = now
        #: False for a key this process cannot decrypt (see tmbot.keystate)
        self._usable = usable

    async def set_budget(
        self, actor: Actor, command: cmds.TeamBudget
    ) -> BudgetSaved | BudgetRemoved:
        require_admin(actor)
        tenant = actor.home.team
        member = DEFAULT_MEMBER
        if command.target is not None:
            # a member named here counts as their linked account, if they linked one
            member = await self.links.member(actor.tenant, command.target)
        if command.remove:
            removed = await self.store.delete_budget(tenant, member)
            fallback = None
            if member != DEFAULT_MEMBER:
                fallback = await self.store.get_budget(tenant, DEFAULT_MEMBER)
            return BudgetRemoved(member=member, removed=removed, fallback=fallback)
        budget = Budget(
            tenant=tenant,
            member=member,
            amount=command.amount,
            period=BudgetPeriod(command.period),
            updated_at=self._now(),
        )
        await self.store.put_budget(budget)
        team_key = await self.store.get_key(KeyRef(KeyScope.TEAM, tenant, "", DEFAULT_PROVIDER))
        return BudgetSaved(budget=budget, team_has_key=team_key is not None)

    async def set_channel(self, actor: Actor, enabled: bool, channel: str) -> ChannelSet:
        """Make the channel the command was typed in a request channel (or not). Channels
        stay with the platform's own tenant, where its adapter looks them up."""
        require_admin(actor)
        changed = await self.store.set_request_channel(
            actor.tenant, channel, enabled=enabled, by=actor.user_id, at=self._now()
        )
        return ChannelSet(channel=channel, enabled=enabled, changed=changed)

    async def show(self, actor: Actor) -> TeamView:
        """The team's keys (fingerprints and balances), the channel setting, the budgets, and
        each member's use of the team key this period."""
        require_admin(actor)
        tenant, now = actor.home.team, self._now()
        keys = []
        for provider in ProviderName:
            binding = await self.store.get_key(KeyRef(KeyScope.TEAM, tenant, "", provider))
            if binding is not None:
                keys.append(
                    TeamKeyView(
                        provider,
                        binding.fingerprint,
                        binding.balance,
                        binding.balance_seen_at,
                        unusable=None if self._usable(binding) else unusable_note(binding),
                    )
                )
        budgets = await self.store.list_budgets(tenant)
        return TeamView(
            keys=tuple(keys),
            request_channels=tuple(await self.store.request_channels(actor.tenant)),
            budgets=tuple(budgets),
            members=await self._members(tenant, budgets, now),
            now=now,
        )

    async def _members(
        self, tenant: str, budgets: list[Budget], now: float
    ) -> tuple[MemberUse, ...]:
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
        by_member = {b.member: b for b in budgets}
        default = by_member.get(DEFAULT_MEMBER)
        members = sorted(
            {m for m in by_member if m != DEFAULT_MEMBER}
            | {m for _, by_month in use.values() for m in by_month}
        )
        out = []
        for member in members:
            uses = tuple(
                ProviderUse(
                    provider,
                    priced(provider),
                    by_day.get(member, Spend()),
                    by_month.get(member, Spend()),
                )
                for provider, (by_day, by_month) in use.items()
            )
            budget = by_member.get(member) or default
            left = None
            if budget is not None:
                # budgets count credits on the providers that publish prices
                used = sum(
                    (u.today if budget.period is BudgetPeriod.DAY else u.month).credits
                    for u in uses
                    if u.priced
                )
                left = max(0.0, budget.amount - used)
            out.append(MemberUse(member=member, use=uses, budget=budget, left=left))
        return tuple(out)
