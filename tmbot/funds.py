"""Whether a request can be paid for, and what a member may still spend.

Before anything is sent the image's price (the capability table) is checked against the
actor's team budget (their own, else the team default; no budget at all means no cap) when
the team's key pays, and against the key's balance as last reported by the provider, less
what is reserved by images not yet sent. Vtrix publishes no prices, so budgets (which are in
credits) cannot cap it. The caller runs :meth:`Funds.check` and the insert of the generation
row under one lock per key, so concurrent requests cannot overspend together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tmbot import commands as cmds
from tmbot.capabilities import DEFAULT_PROVIDER, caps
from tmbot.domain import Actor, ProviderName
from tmbot.errors import BudgetExceeded
from tmbot.ports import Store
from tmbot.records import DEFAULT_MEMBER, Budget, BudgetPeriod, KeyBinding, KeyScope
from tmbot.texts import amount, budget_rate, credits_word, relative_time, renews


@dataclass(frozen=True)
class Allowance:
    """What a member may still spend on the team key in their budget's current period."""

    budget: Budget | None  # None: no budget applies, so no cap
    used: float  # credits used this period (today when there is no budget)

    @property
    def left(self) -> float | None:
        return None if self.budget is None else max(0.0, self.budget.amount - self.used)


def period_start(period: BudgetPeriod, now: float) -> float:
    """When the period holding ``now`` began: 00:00 UTC today, or the 1st of the month."""
    start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.MONTH:
        start = start.replace(day=1)
    return start.timestamp()


def priced(provider: ProviderName) -> bool:
    """Whether the provider publishes prices (so budgets in credits can cap its use)."""
    return any(m.cost is not None for m in caps(provider).models.values())


def provider_flag(provider: ProviderName) -> str:
    """`` --provider vtrix`` for a key command about a provider other than the default."""
    return "" if provider is DEFAULT_PROVIDER else f" --provider {provider.value}"


def _cheaper(provider: ProviderName, left: float) -> str:
    """``, or ask for `--fast --res 1k` (8 credits)`` when something in the provider's table
    fits in ``left``, else ``""``."""
    options = [
        (cost, model, res)
        for model, mc in caps(provider).models.items()
        for res, cost in (mc.cost or {}).items()
        if cost <= left
    ]
    if not options:
        return ""
    cost, model, res = min(options)
    shorthand = {name: short for short, name in cmds.MODEL_SHORTHANDS.items()}
    flag = f"--{shorthand[model]}" if model in shorthand else f"--model {model}"
    return f", or ask for `{flag} --res {res}` ({credits_word(cost)})"


class Funds:
    """Budgets and balances, read from the store; ``now`` is the wall clock (seconds)."""

    def __init__(self, *, store: Store, now: Callable[[], float]) -> None:
        self.store = store
        self._now = now

    async def check(self, actor: Actor, binding: KeyBinding, cost: int | None) -> None:
        """Refuse, before any API call, what the actor's team budget or the key's balance
        cannot cover. Without a price (Vtrix) there is nothing to check against."""
        if cost is None:
            return
        ref = binding.ref
        if ref.scope is KeyScope.TEAM:
            allowance = await self.allowance(actor.home.team, actor.home.user_id)
            left = allowance.left
            if allowance.budget is not None and left is not None and cost > left:
                budget = allowance.budget
                default = " (the team default)" if budget.is_default else ""
                raise BudgetExceeded(
                    f"This image costs {credits_word(cost)} but you have {amount(left)} of your "
                    f"{budget_rate(budget)} team budget{default} left; it renews "
                    f"{renews(budget.period)}{_cheaper(ref.provider, left)}, or ask a workspace "
                    "admin to raise it, or bind your own key with `/taste key`.",
                    required=cost,
                    available=int(left),
                )
        if binding.balance is None:
            return
        reserved = await self.store.pending_cost(ref)
        available = max(0.0, binding.balance - reserved)
        if cost <= available:
            return
        name = caps(ref.provider).display_name
        seen = relative_time(self._now() - (binding.balance_seen_at or self._now()))
        if reserved:
            detail = (
                f" ({amount(binding.balance)} when {name} last reported it {seen}, less "
                f"{amount(reserved)} for images not sent yet)"
            )
        else:
            detail = f" as {name} last reported it {seen}"
        cheaper = _cheaper(ref.provider, available)
        if ref.scope is KeyScope.TEAM:
            whose, todo = "the team's key", f"ask a workspace admin to top it up{cheaper}"
        else:
            flag = provider_flag(ref.provider)
            whose = "your key"
            todo = f"top it up{cheaper}, or bind another key with `/taste key{flag}`"
        raise BudgetExceeded(
            f"This image costs {credits_word(cost)} but {whose} {binding.fingerprint} has "
            f"{amount(available)} left{detail}; {todo}.",
            required=cost,
            available=int(available),
        )

    async def allowance(self, tenant: str, user_id: str) -> Allowance:
        """Budgets count credits on the team's keys of every provider that publishes prices
        (today: the Taste Machine); without a budget, ``used`` is today's use."""
        budget = await self.budget_for(tenant, user_id)
        period = budget.period if budget is not None else BudgetPeriod.DAY
        since = period_start(period, self._now())
        used = 0.0
        for provider in ProviderName:
            if priced(provider):
                spent = await self.store.spend(
                    tenant, user_id, scope=KeyScope.TEAM, provider=provider, since=since
                )
                used += spent.credits
        return Allowance(budget=budget, used=used)

    async def budget_for(self, tenant: str, user_id: str) -> Budget | None:
        """The member's own budget, else the team default, else None (no cap)."""
        own = await self.store.get_budget(tenant, user_id)
        if own is not None:
            return own
        return await self.store.get_budget(tenant, DEFAULT_MEMBER)
