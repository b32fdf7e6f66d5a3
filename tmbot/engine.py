"""The use cases: generate, regenerate, bind keys, credits, settings, history.

The engine stores every state change before acting on it and hands typed events to the
:class:`tmbot.ports.Notifier`. On start it resumes unfinished work: tasks already at the
provider are polled again (never re-submitted); finished images are handed over again and
adapters deliver them at most once per generation.
"""

from __future__ import annotations

import asyncio
import functools
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
from tmbot.errors import BudgetExceeded, NoKeyBound, NotFound, NotPermitted, TmbotError
from tmbot.events import Delivered, Event, Failed, Queued, Started
from tmbot.ports import Notifier, Store
from tmbot.providers.base import ImageProvider
from tmbot.records import Generation, GenStatus, KeyBinding, KeyRef, KeyScope, UserSettings
from tmbot.scheduler import Job, Scheduler
from tmbot.texts import describe_spec, help_text, history_line, relative_time
from tmbot.vault import Vault

log = logging.getLogger(__name__)

#: repeated regenerate triggers by one person for one result within this many seconds count once
REGENERATE_WINDOW = 10.0


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

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> int:
        """Resume unfinished generations; returns how many were picked up again."""
        resumed = 0
        for gen in await self.store.unfinished_generations():
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

    # --- the one entry for text --------------------------------------------------------

    async def execute(self, actor: Actor, text: str, place: Place) -> Reply:
        """Run the text after ``/taste``. Raises TmbotError with a sentence for the user."""
        command = cmds.parse(text)
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
                return Reply(help_text(command.topic))
            case cmds.TeamKey(key=None):
                self._require_admin(actor)
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
            case cmds.TeamBudget() | cmds.TeamChannel():
                self._require_admin(actor)
                raise NotPermitted("Team budgets and channel settings are not available yet.")
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
        """Run a result's parameters again, posted to the same place, paid by ``actor``."""
        original = await self.store.get_generation(generation_id)
        if original is None or original.actor.tenant != actor.tenant:
            raise NotFound("That result is not one tmbot knows in this workspace.")
        marker = (actor.tenant, actor.user_id, generation_id)
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
        if cost is not None and binding.balance is not None and cost > binding.balance:
            raise BudgetExceeded(
                f"This image costs {cost:g} credits but the key {binding.fingerprint} had "
                f"{binding.balance:g} left when last seen; top up or use a cheaper model "
                "or resolution.",
                required=int(cost),
                available=int(binding.balance),
            )
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
            lane_id=gen.key.lane_id,
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
        await self.notifier.notify(event)

    # --- keys --------------------------------------------------------------------------

    def _decrypt(self, binding: KeyBinding) -> ApiKey:
        key = self.vault.decrypt(binding.ciphertext)
        if self._on_secret is not None:
            self._on_secret(key.secret)
        return key

    async def _binding_for(self, actor: Actor, provider: ProviderName) -> KeyBinding:
        """The actor's own key beats the team's."""
        for ref in (
            KeyRef(KeyScope.USER, actor.tenant, actor.user_id, provider),
            KeyRef(KeyScope.TEAM, actor.tenant, "", provider),
        ):
            binding = await self.store.get_key(ref)
            if binding is not None:
                return binding
        name = caps(provider).display_name
        flag = "" if provider is DEFAULT_PROVIDER else f" --provider {provider.value}"
        raise NoKeyBound(
            f"You have no key for {name} yet, and neither does your team: bind yours with "
            f"`/taste key{flag}`."
        )

    async def _key_for(self, ref: KeyRef) -> ApiKey:
        binding = await self.store.get_key(ref)
        if binding is None:
            raise NoKeyBound("The key that was paying for this image has been removed.")
        return self._decrypt(binding)

    def _require_admin(self, actor: Actor) -> None:
        if not actor.is_admin:
            raise NotPermitted("Only workspace admins can change team settings.")

    async def bind_key(
        self,
        actor: Actor,
        provider: ProviderName,
        key: ApiKey,
        *,
        scope: KeyScope = KeyScope.USER,
    ) -> Reply:
        if scope is KeyScope.TEAM:
            self._require_admin(actor)
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

    async def credits(self, actor: Actor) -> Reply:
        settings = await self.store.get_settings(actor.tenant, actor.user_id)
        provider = settings.provider or DEFAULT_PROVIDER
        binding = await self._binding_for(actor, provider)
        whose = "your personal" if binding.ref.scope is KeyScope.USER else "the team's"
        name = caps(provider).display_name
        if binding.balance is None:
            balance = "no balance seen yet (it shows after your next image)"
        else:
            seen = relative_time(self._now() - (binding.balance_seen_at or self._now()))
            balance = f"{binding.balance:g} credits left as of {seen}"
        return Reply(f"You're on {whose} key for {name} ({binding.fingerprint}): {balance}.")

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

    async def team_show(self, actor: Actor) -> Reply:
        self._require_admin(actor)
        parts = []
        for provider in ProviderName:
            binding = await self.store.get_key(KeyRef(KeyScope.TEAM, actor.tenant, "", provider))
            if binding is not None:
                parts.append(f"{caps(provider).display_name} {binding.fingerprint}")
        if not parts:
            return Reply("The team has no key bound; an admin can add one with `/taste team key`.")
        return Reply("Team keys: " + "; ".join(parts) + ".")

    async def image_size(self, image: bytes) -> tuple[int, int]:
        def measure() -> tuple[int, int]:
            with Image.open(io.BytesIO(image)) as img:
                return img.size

        return await asyncio.to_thread(measure)


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
        await engine._notify(
            Delivered(
                generation=gen,
                image=image,
                filename=f"tmbot-{gen.id}.png",
                width=width,
                height=height,
                credits_used=used,
                credits_remaining=gen.credits_remaining,
            )
        )
        await engine._change(
            job.generation_id, status=GenStatus.DELIVERED, delivered_at=engine._now()
        )

    async def failed(self, job: Job, reason: str) -> None:
        engine = self.engine
        gen = engine._live.get(job.generation_id) or await engine.store.get_generation(
            job.generation_id
        )
        if gen is not None:
            await engine._fail(gen, reason)
