"""The use cases: generate, regenerate, delete, bind keys, credits, team budgets, settings,
history.

The engine stores every state change before acting on it and hands typed events to the
:class:`tmbot.ports.Notifier`. On start it resumes unfinished work: tasks already at the
provider are polled again (never re-submitted); finished images are handed over again and
adapters deliver them at most once per generation.

Who pays: the actor's own key for the provider, else the team's key within the actor's
budget. Before anything is sent :class:`tmbot.funds.Funds` checks the image's price against
that budget and the key's balance; Vtrix publishes no prices, so its images are counted and
its reported cost shown, but budgets (which are in credits) cannot cap them. The check and
the insert of the generation row run under one lock per key, so concurrent requests cannot
overspend together; the ledger is derived from generation rows (see :mod:`tmbot.records`).
The team's admin commands live in :mod:`tmbot.team`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from PIL import Image

from tmbot import commands as cmds
from tmbot.capabilities import DEFAULT_PROVIDER, caps
from tmbot.clock import Clock
from tmbot.domain import (
    Actor,
    ApiKey,
    GenerationSpec,
    Place,
    ProviderName,
    Submission,
    TaskState,
)
from tmbot.errors import (
    DeliveryFailed,
    InsufficientCredits,
    KeyRejected,
    NoKeyBound,
    NotFound,
    NotPermitted,
    ParseError,
    TmbotError,
)
from tmbot.events import Delivered, Event, Failed, Queued, Started
from tmbot.funds import Allowance as Allowance  # re-exported: it used to live here
from tmbot.funds import Funds, priced, provider_flag
from tmbot.funds import period_start as period_start  # re-exported: tests import it from here
from tmbot.keystate import open_key, unusable_note, usable
from tmbot.leaks import refuse_bound_keys
from tmbot.ports import Notifier, Store
from tmbot.providers.base import ImageProvider
from tmbot.records import (
    BudgetPeriod,
    Generation,
    GenStatus,
    KeyBinding,
    KeyRef,
    KeyScope,
    MessageLink,
    UserSettings,
)
from tmbot.scheduler import Job, Scheduler
from tmbot.team import Team, require_admin
from tmbot.texts import (
    amount,
    budget_rate,
    credits_word,
    describe_spec,
    help_text,
    history_line,
    images_word,
    period_word,
    relative_time,
)
from tmbot.vault import Vault

log = logging.getLogger(__name__)

#: repeated regenerate triggers by one person for one result within this many seconds count once
REGENERATE_WINDOW = 10.0

#: how often the notifier is asked to post a finished image before the generation fails
DELIVERY_ATTEMPTS = 3

#: the words after ``team`` that make a team command (non-admins are refused even when the
#: rest does not parse: they should not learn the syntax from its error messages)
_TEAM_WORDS = ("key", "budget", "channel", "show")


@dataclass(frozen=True)
class Reply:
    """What the actor is told right away (the adapter decides how: ephemeral, a card…)."""

    text: str
    generation: Generation | None = None
    #: set when the adapter should open its private key form for this provider and scope
    key_form: ProviderName | None = None
    key_scope: KeyScope = KeyScope.USER


def new_generation_id() -> str:
    return secrets.token_hex(5)


def _is_team_command(text: str) -> bool:
    words = text.split()
    return len(words) >= 2 and words[0].lower() == "team" and words[1].lower() in _TEAM_WORDS


def failure_text(gen: Generation, error: TmbotError) -> str:
    """A failure told to the person who asked. For key trouble, what to do depends on whose
    key it was (a member cannot fix the team's key; an admin can) and its provider."""
    if not isinstance(error, KeyRejected | InsufficientCredits):
        return error.user_message
    flag = provider_flag(gen.key.provider)
    fix = "bind a new one" if isinstance(error, KeyRejected) else "top it up or bind another"
    if gen.key.scope is KeyScope.TEAM:
        advice = (
            f"this is the team's key, so ask a workspace admin to {fix} with "
            f"`/taste team key{flag}`"
        )
    else:
        advice = f"{fix} with `/taste key{flag}`"
    return f"{error.user_message.removesuffix('.')}; {advice}."


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        vault: Vault,
        providers: Mapping[ProviderName, ImageProvider],
        notifier: Notifier,
        clock: Clock,
        scheduler: Scheduler | None = None,
        on_secret: Callable[[str], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vault = vault
        self.providers = providers
        self.notifier = notifier
        self.clock = clock
        self.scheduler = scheduler or Scheduler(providers=providers, clock=clock)
        self._on_secret = on_secret
        self._now = now
        self._live: dict[str, Generation] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._recent_regens: dict[tuple[str, str, str], tuple[float, Generation]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.funds = Funds(store=store, now=now)
        self.team = Team(store=store, now=now, usable=functools.partial(usable, vault))

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        """Resume unfinished generations; returns how many were picked up again."""
        resumed = 0
        unfinished = await self.store.unfinished_generations()
        # Work already at the provider first: it holds slots there that queued work must
        # not take (the sort is stable, so each group stays oldest first).
        unfinished.sort(key=lambda g: g.status is GenStatus.ACCEPTED)
        for gen in unfinished:
            if gen.status is GenStatus.SUBMITTING:
                # We cannot know whether the provider got the create call: sending it again
                # could bill twice, so the person is told and can ask again.
                await self._fail(
                    gen,
                    "tmbot restarted while sending this request, so it was not sent again "
                    "(to avoid paying twice); please ask again.",
                )
                continue
            try:
                key = await self._key_for(gen.key)
            except TmbotError as err:
                await self._fail(gen, err.user_message)
                continue
            self._launch(gen, key)
            resumed += 1
        if resumed:
            log.info("resumed %d unfinished generation(s)", resumed)
        return resumed

    async def wait_idle(self) -> None:
        """Return once every accepted generation has ended (delivered or failed)."""
        await self._idle.wait()

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel running work; its stored state lets the next start resume it."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.scheduler.aclose()

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    # --- the one entry for text --------------------------------------------------------

    async def execute(self, actor: Actor, text: str, place: Place) -> Reply:
        """Run the text after ``/taste``. Raises TmbotError with a sentence for the user."""
        try:
            command = cmds.parse(text)
        except ParseError:
            if _is_team_command(text):
                require_admin(actor)
            raise
        if not isinstance(command, cmds.BindKey | cmds.TeamKey):
            await refuse_bound_keys(self.store, self.vault, actor.tenant, text)
        match command:
            case cmds.Generate():
                gen = await self.generate(actor, command, place)
                return Reply(f"Accepted {describe_spec(gen.spec)}.", generation=gen)
            case cmds.BindKey(key=None):
                return Reply(
                    f"Paste your key for {caps(command.provider).display_name} in the private "
                    "form.",
                    key_form=command.provider,
                )
            case cmds.BindKey(key=ApiKey() as key):
                return await self.bind_key(actor, command.provider, key)
            case cmds.Logout():
                return await self.logout(actor, command.provider)
            case cmds.Credits():
                return await self.credits(actor)
            case cmds.Settings():
                return await self.settings(actor, command)
            case cmds.History():
                return await self.history(actor)
            case cmds.Help():
                return Reply(help_text(command.topic, platform=actor.platform))
            case cmds.TeamKey(key=None):
                require_admin(actor)
                return Reply(
                    f"Paste the team's key for {caps(command.provider).display_name} in the "
                    "private form.",
                    key_form=command.provider,
                    key_scope=KeyScope.TEAM,
                )
            case cmds.TeamKey(key=ApiKey() as key):
                return await self.bind_key(actor, command.provider, key, scope=KeyScope.TEAM)
            case cmds.TeamShow():
                return await self.team_show(actor)
            case cmds.TeamBudget():
                return await self.set_budget(actor, command)
            case cmds.TeamChannel():
                return await self.set_team_channel(actor, command.enabled)
            case cmds.Regenerate():
                gen = await self.regenerate(actor, command.generation_id, place)
                text = f"Accepted {describe_spec(gen.spec)}, another of {command.generation_id}."
                return Reply(text, generation=gen)
            case cmds.Delete() | cmds.Refine():
                raise NotFound(
                    "Delete or refine a result from where it was posted (its reaction or "
                    "thread); the console takes `delete ID`."
                )
        raise NotFound("That command is not known.")  # pragma: no cover - exhaustive match

    # --- generations -------------------------------------------------------------------

    async def generate(self, actor: Actor, command: cmds.Generate, place: Place) -> Generation:
        defaults = await self.store.get_settings(actor.tenant, actor.user_id)
        spec = cmds.resolve(
            command.options, defaults, brief=command.brief, image_urls=command.image_urls
        )
        return await self._accept(actor, place, spec)

    async def regenerate(
        self, actor: Actor, generation_id: str, place: Place | None = None
    ) -> Generation:
        """Run a result's parameters again, posted to the same place, paid by ``actor`` (their
        own key, else the team's key within their budget; never the original requester's
        personal key). Repeated triggers by one person within REGENERATE_WINDOW count once."""
        original = await self._generation_in(actor, generation_id)
        if original.deleted_at is not None:
            raise NotFound("That result was deleted, so it cannot be made again; ask anew.")
        marker = (actor.tenant, actor.user_id, generation_id)
        async with self._lock(f"regenerate:{actor.tenant}:{actor.user_id}"):
            now = self._now()
            earlier = self._recent_regens.get(marker)
            if earlier is not None and now - earlier[0] < REGENERATE_WINDOW:
                return earlier[1]
            gen = await self._accept(
                actor, place or original.place, original.spec, regenerated_from=original.id
            )
            self._recent_regens[marker] = (now, gen)
            for stale in [m for m, (t, _) in self._recent_regens.items() if now - t >= 60]:
                del self._recent_regens[stale]
        return gen

    async def delete(self, actor: Actor, generation_id: str) -> list[MessageLink]:
        """Mark a generation deleted and return the platform messages the adapter should
        remove. Allowed to the person who asked for it and to admins. A generation still
        waiting for a slot is cancelled (nothing was sent, nothing is charged); one already at
        the provider cannot be stopped and is refused until it has ended. Deleting twice is
        harmless (the links are returned again)."""
        gen = await self._generation_in(actor, generation_id)
        if gen.actor.user_id != actor.user_id and not actor.is_admin:
            raise NotPermitted(
                "Only the person who asked for that image, or a workspace admin, can delete it."
            )
        if gen.deleted_at is None:
            await self._mark_deleted(actor, gen)
        return await self.store.messages_for_generation(gen.id)

    async def _generation_in(self, actor: Actor, generation_id: str) -> Generation:
        gen = await self.store.get_generation(generation_id.strip().strip("`").lower())
        if gen is None or gen.actor.tenant != actor.tenant:
            raise NotFound("That result is not one tmbot knows in this workspace.")
        return gen

    async def _mark_deleted(self, actor: Actor, gen: Generation) -> None:
        now = self._now()
        if gen.status.final:
            deleted = replace(gen, deleted_at=now, deleted_by=actor.user_id, updated_at=now)
            await self.store.update_generation(deleted)
            return
        live, task = self._live.get(gen.id), self._tasks.get(gen.id)
        if live is None or task is None or live.status is not GenStatus.ACCEPTED:
            raise NotPermitted(
                "That image is already being made and cannot be stopped; delete it once it "
                "has been posted."
            )
        # Still waiting for a slot: the create call has not started (its status would have
        # been stored as SUBMITTING first), so cancelling now sends and charges nothing.
        task.cancel()
        await asyncio.wait([task])
        current = await self.store.get_generation(gen.id) or live
        reason = f"Cancelled by {actor.label} before it was sent, so nothing was charged."
        cancelled = replace(
            current,
            status=GenStatus.FAILED,
            error=reason,
            deleted_at=now,
            deleted_by=actor.user_id,
            updated_at=now,
        )
        await self.store.update_generation(cancelled)
        await self._notify(Failed(cancelled, reason))

    async def _accept(
        self,
        actor: Actor,
        place: Place,
        spec: GenerationSpec,
        *,
        regenerated_from: str | None = None,
    ) -> Generation:
        binding = await self._binding_for(actor, spec.provider)
        cost = caps(spec.provider).cost(spec.model, spec.resolution)
        # One check-and-reserve at a time per key: the reservation (the stored row) is in
        # place before the next request on this key is checked.
        async with self._lock(f"key:{binding.ref.lane_id}"):
            binding = await self.store.get_key(binding.ref) or binding
            await self.funds.check(actor, binding, cost)
            key = self._decrypt(binding)
            now = self._now()
            gen = Generation(
                id=new_generation_id(),
                actor=actor,
                place=place,
                spec=spec,
                key=binding.ref,
                status=GenStatus.ACCEPTED,
                created_at=now,
                updated_at=now,
                cost=cost,
                regenerated_from=regenerated_from,
            )
            await self.store.insert_generation(gen)
        self._launch(gen, key)
        return gen

    def _launch(self, gen: Generation, key: ApiKey) -> None:
        self._live[gen.id] = gen
        elapsed = 0.0
        if gen.submitted_at is not None:
            elapsed = max(0.0, self._now() - gen.submitted_at) * self.clock.scale
        job = Job(
            generation_id=gen.id,
            # limits belong to the key itself, however many bindings share it
            lane_id=f"{gen.key.provider}:{hashlib.sha256(key.secret.encode()).hexdigest()[:16]}",
            user=f"{gen.actor.tenant}:{gen.actor.user_id}",
            key=key,
            spec=gen.spec,
            task_id=gen.task_id,
            estimate=gen.estimate_seconds,
            elapsed=elapsed,
            image_url=gen.image_url if gen.status is GenStatus.COMPLETED else None,
        )
        task = asyncio.create_task(self.scheduler.run(job, _Hooks(self)), name=f"gen-{gen.id}")
        self._tasks[gen.id] = task
        self._idle.clear()
        task.add_done_callback(functools.partial(self._finished, gen.id))

    def _finished(self, generation_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(generation_id, None)
        self._live.pop(generation_id, None)
        if not self._tasks:
            self._idle.set()

    async def _change(self, generation_id: str, **changes: object) -> Generation:
        gen = self._live.get(generation_id) or await self.store.get_generation(generation_id)
        if gen is None:
            raise NotFound("That generation is gone.")
        gen = replace(gen, updated_at=self._now(), **changes)  # type: ignore[arg-type]
        await self.store.update_generation(gen)
        if generation_id in self._live:
            self._live[generation_id] = gen
        return gen

    async def _fail(self, gen: Generation, reason: str) -> None:
        failed = replace(gen, status=GenStatus.FAILED, error=reason, updated_at=self._now())
        await self.store.update_generation(failed)
        if gen.id in self._live:
            self._live[gen.id] = failed
        await self._notify(Failed(failed, reason))

    async def _notify(self, event: Event) -> None:
        """Progress and failure notices are best effort: a chat platform's hiccup must not
        fail (or lose) the work itself."""
        try:
            await self.notifier.notify(event)
        except Exception:
            log.warning(
                "could not show %s for generation %s",
                type(event).__name__,
                event.generation.id,
                exc_info=True,
            )

    async def _deliver(self, event: Delivered) -> None:
        """Hand the image over, retrying a few times before giving up with a reason."""
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                await self.notifier.notify(event)
                return
            except Exception:
                log.warning(
                    "posting generation %s failed (attempt %d)",
                    event.generation.id,
                    attempt,
                    exc_info=True,
                )
                await asyncio.sleep(0.5 * attempt)
        raise DeliveryFailed(
            "The image was made but could not be posted here; ask again in a moment."
        )

    # --- keys --------------------------------------------------------------------------

    def _decrypt(self, binding: KeyBinding) -> ApiKey:
        key = open_key(self.vault, binding)
        if self._on_secret is not None:
            self._on_secret(key.secret)
        return key

    async def _find_binding(self, actor: Actor, provider: ProviderName) -> KeyBinding | None:
        """The actor's own key beats the team's."""
        for ref in (
            KeyRef(KeyScope.USER, actor.tenant, actor.user_id, provider),
            KeyRef(KeyScope.TEAM, actor.tenant, "", provider),
        ):
            binding = await self.store.get_key(ref)
            if binding is not None:
                return binding
        return None

    async def _binding_for(self, actor: Actor, provider: ProviderName) -> KeyBinding:
        binding = await self._find_binding(actor, provider)
        if binding is None:
            raise _no_key(provider)
        return binding

    async def _key_for(self, ref: KeyRef) -> ApiKey:
        binding = await self.store.get_key(ref)
        if binding is None:
            raise NoKeyBound("The key that was paying for this image has been removed.")
        return self._decrypt(binding)

    async def bind_key(
        self,
        actor: Actor,
        provider: ProviderName,
        key: ApiKey,
        *,
        scope: KeyScope = KeyScope.USER,
    ) -> Reply:
        if scope is KeyScope.TEAM:
            require_admin(actor)
        cmds.check_key(provider, key)
        owner = actor.user_id if scope is KeyScope.USER else ""
        ref = KeyRef(scope, actor.tenant, owner, provider)
        if self._on_secret is not None:
            self._on_secret(key.secret)
        await self.store.put_key(
            KeyBinding(
                ref=ref,
                ciphertext=self.vault.encrypt(key),
                fingerprint=key.fingerprint,
                created_at=self._now(),
            )
        )
        whose = "your" if scope is KeyScope.USER else "the team's"
        return Reply(
            f"Saved {whose} key for {caps(provider).display_name} ({key.fingerprint}), encrypted."
        )

    async def logout(self, actor: Actor, provider: ProviderName | None) -> Reply:
        providers = [provider] if provider is not None else list(ProviderName)
        removed = [
            p
            for p in providers
            if await self.store.delete_key(KeyRef(KeyScope.USER, actor.tenant, actor.user_id, p))
        ]
        if not removed:
            return Reply("You had no personal key bound; nothing to remove.")
        names = " and ".join(caps(p).display_name for p in removed)
        return Reply(f"Removed your key for {names}.")

    # --- credits -----------------------------------------------------------------------

    async def credits(self, actor: Actor) -> Reply:
        """Per provider the actor can use (their default provider first): which key, its
        balance as last reported, their use today and this month, and their team budget."""
        settings = await self.store.get_settings(actor.tenant, actor.user_id)
        first = settings.provider or DEFAULT_PROVIDER
        lines = []
        for provider in [first, *(p for p in ProviderName if p is not first)]:
            binding = await self._find_binding(actor, provider)
            if binding is not None:
                lines.append(await self._credits_line(actor, binding))
        if not lines:
            raise _no_key(first)
        return Reply("\n".join(lines))

    async def _credits_line(self, actor: Actor, binding: KeyBinding) -> str:
        ref = binding.ref
        name = caps(ref.provider).display_name
        is_priced = priced(ref.provider)
        now = self._now()
        whose = "your personal key" if ref.scope is KeyScope.USER else "the team's key"
        if not usable(self.vault, binding):
            note = unusable_note(binding)
            return f"You're on {whose} for {name} ({binding.fingerprint}): {note}."
        if binding.balance is not None:
            seen = relative_time(now - (binding.balance_seen_at or now))
            balance = f"{credits_word(binding.balance)} left as of {seen}"
        elif is_priced:
            balance = "no balance reported yet (it shows after the next image)"
        else:
            balance = f"{name} reports no balance"
        # your use of the key you are on now: not of one bound before it
        today = await self.store.spend(
            actor.tenant,
            actor.user_id,
            scope=ref.scope,
            provider=ref.provider,
            since=max(period_start(BudgetPeriod.DAY, now), binding.created_at),
        )
        month = await self.store.spend(
            actor.tenant,
            actor.user_id,
            scope=ref.scope,
            provider=ref.provider,
            since=max(period_start(BudgetPeriod.MONTH, now), binding.created_at),
        )
        if is_priced:
            use = (
                f"your use of it: {credits_word(today.credits)} today, "
                f"{amount(month.credits)} this month"
            )
        else:
            use = f"your use of it: {images_word(today.images)} today, {month.images} this month"
            if month.credits:
                use += f" (reported cost {amount(month.credits)} this month)"
        if ref.scope is KeyScope.TEAM:
            use += "; " + await self._budget_line(actor, ref.provider)
        return f"You're on {whose} for {name} ({binding.fingerprint}): {balance}; {use}."

    async def _budget_line(self, actor: Actor, provider: ProviderName) -> str:
        if not priced(provider):
            name = caps(provider).display_name
            return f"{name} publishes no prices, so team budgets do not cap it"
        allowance = await self.funds.allowance(actor.tenant, actor.user_id)
        budget, left = allowance.budget, allowance.left
        if budget is None or left is None:
            return "no budget applies to you, so your use of the team key is not capped"
        default = " (the team default)" if budget.is_default else ""
        return (
            f"your team budget is {budget_rate(budget)}{default}, with {amount(left)} left "
            f"{period_word(budget.period)}"
        )

    # --- settings and history ----------------------------------------------------------

    async def settings(self, actor: Actor, command: cmds.Settings) -> Reply:
        current = await self.store.get_settings(actor.tenant, actor.user_id)
        if command.reset:
            await self.store.put_settings(actor.tenant, actor.user_id, UserSettings())
            return Reply("Your defaults are cleared.")
        if command.options.is_empty:
            return Reply(f"Your defaults: {describe_settings(current)}.")
        merged = cmds.validate_settings(command.options, current)
        await self.store.put_settings(actor.tenant, actor.user_id, merged)
        return Reply(f"Saved. Your defaults: {describe_settings(merged)}.")

    async def history(self, actor: Actor) -> Reply:
        gens = await self.store.recent_generations(actor.tenant, actor.user_id, limit=10)
        if not gens:
            return Reply("You have no images yet.")
        lines = [history_line(g, now=self._now()) for g in gens]
        return Reply("Your last images:\n" + "\n".join(lines))

    # --- team (admins) -----------------------------------------------------------------

    async def set_budget(self, actor: Actor, command: cmds.TeamBudget) -> Reply:
        return Reply(await self.team.set_budget(actor, command))

    async def set_team_channel(self, actor: Actor, enabled: bool) -> Reply:
        return Reply(await self.team.set_channel(actor, enabled))

    async def team_show(self, actor: Actor) -> Reply:
        """The team's keys (fingerprints and balances), the channel setting, the budgets, and
        each member's use of the team key this period."""
        return Reply(await self.team.show(actor))

    async def image_size(self, image: bytes) -> tuple[int, int]:
        def measure() -> tuple[int, int]:
            with Image.open(io.BytesIO(image)) as img:
                return img.size

        return await asyncio.to_thread(measure)


def _no_key(provider: ProviderName) -> NoKeyBound:
    name = caps(provider).display_name
    return NoKeyBound(
        f"You have no key for {name} yet, and neither does your team: bind yours with "
        f"`/taste key{provider_flag(provider)}`."
    )


def describe_settings(settings: UserSettings) -> str:
    fields = [
        ("provider", settings.provider.value if settings.provider else None),
        ("model", settings.model),
        ("aspect ratio", settings.aspect_ratio),
        ("resolution", settings.resolution),
        ("taste", settings.taste),
    ]
    chosen = [f"{name} {value}" for name, value in fields if value]
    return ", ".join(chosen) if chosen else "none set (the provider's defaults apply)"


class _Hooks:
    """The scheduler's reports, stored before the next step and turned into events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def queued(self, job: Job, position: int, eta: float | None) -> None:
        gen = self.engine._live.get(job.generation_id)
        if gen is not None and gen.status is GenStatus.ACCEPTED:
            await self.engine._notify(Queued(gen, position, eta))

    async def submitting(self, job: Job) -> None:
        await self.engine._change(job.generation_id, status=GenStatus.SUBMITTING)

    async def submitted(self, job: Job, submission: Submission) -> None:
        engine = self.engine
        # The reservation ends (status SUBMITTED) and the balance that includes the charge is
        # recorded together, as far as the funds check (under the same lock) can tell.
        gen = engine._live.get(job.generation_id)
        key_lock = engine._lock(f"key:{gen.key.lane_id}") if gen else asyncio.Lock()
        async with key_lock:
            gen = await engine._change(
                job.generation_id,
                status=GenStatus.SUBMITTED,
                task_id=submission.task_id,
                estimate_seconds=submission.estimated_seconds,
                submitted_at=engine._now(),
                credits_remaining=submission.credits_remaining,
            )
            if submission.credits_remaining is not None:
                await engine.store.record_balance(
                    gen.key, remaining=submission.credits_remaining, seen_at=engine._now()
                )
        await engine._notify(Started(gen))

    async def completed(self, job: Job, state: TaskState) -> None:
        engine = self.engine
        await engine._change(
            job.generation_id,
            status=GenStatus.COMPLETED,
            image_url=state.image_urls[0] if state.image_urls else None,
            prompt_used=state.prompt_used,
            expires_at=state.expires_at,
            credits_consumed=state.credits_consumed,
            completed_at=engine._now(),
        )

    async def downloaded(self, job: Job, state: TaskState, image: bytes) -> None:
        engine = self.engine
        gen = engine._live.get(job.generation_id) or await engine.store.get_generation(
            job.generation_id
        )
        if gen is None:
            return
        width, height = await engine.image_size(image)
        used = gen.credits_consumed if gen.credits_consumed is not None else gen.cost
        await engine._deliver(
            Delivered(
                generation=gen,
                image=image,
                filename=f"tmbot-{gen.id}.png",
                width=width,
                height=height,
                credits_used=used,
                credits_remaining=await self._balance(gen),
            )
        )
        await engine._change(
            job.generation_id, status=GenStatus.DELIVERED, delivered_at=engine._now()
        )

    async def _balance(self, gen: Generation) -> float | None:
        """The key's balance as last reported by the provider (this generation's create
        answer, or a later answer for the same key if there was one)."""
        binding = await self.engine.store.get_key(gen.key)
        if (
            binding is not None
            and binding.balance is not None
            and binding.created_at <= gen.created_at  # the same key, not one bound since
        ):
            return binding.balance
        return gen.credits_remaining

    async def failed(self, job: Job, error: TmbotError) -> None:
        engine = self.engine
        gen = engine._live.get(job.generation_id) or await engine.store.get_generation(
            job.generation_id
        )
        if gen is None:
            return
        if isinstance(error, InsufficientCredits) and error.available is not None:
            # the provider just told us the balance: later requests are checked against it
            await engine.store.record_balance(
                gen.key, remaining=error.available, seen_at=engine._now()
            )
        await engine._fail(gen, failure_text(gen, error))
