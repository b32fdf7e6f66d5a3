"""The generation use cases — generate, regenerate, refine, delete — and the one entry for
text (:meth:`Engine.execute`), which also routes to the account (:mod:`tmbot.accounts`) and
team (:mod:`tmbot.team`) use cases. Every answer is a typed reply (:mod:`tmbot.replies`).

Every state change of a generation goes through :class:`tmbot.lifecycle.Lifecycle`, which
stores the row and its events (the outbox) in one transaction; each platform's
:class:`tmbot.outbox.Dispatcher` then hands the events to that platform's notifier. The engine
never talks to a notifier itself. :meth:`Engine.resume` picks up unfinished work once the
adapters are connected: tasks already at the provider are polled again (never re-submitted);
a finished image not yet downloaded is downloaded again; one already downloaded is in the
outbox and is posted once.

Who pays: the actor's own key for the provider, else the team's key within the actor's
budget. Before anything is sent :class:`tmbot.funds.Funds` checks the image's price against
that budget and the key's balance. The check and the insert of the generation row run under
one guard per key (:meth:`tmbot.ports.Coordinator.guard`: a lock in this process, an advisory
lock across processes sharing PostgreSQL), so concurrent requests cannot overspend together.

Several processes on one store: each key's lane (``provider:hash-of-the-secret``, what the
scheduler keeps its limits for) is run by one of them (:class:`tmbot.ports.Coordinator`).
A brief accepted here for a lane another process owns is stored and handed off; the owner
picks it up (:meth:`Engine.wake`, the same look as :meth:`Engine.resume`), and a lane whose
owner died is taken over the same way.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from types import TracebackType

from PIL import Image

from tmbot import commands as cmds
from tmbot.accounts import Accounts
from tmbot.capabilities import caps
from tmbot.clock import Clock
from tmbot.coordination import SoleCoordinator, lane_of
from tmbot.domain import Actor, ApiKey, GenerationSpec, Place, ProviderName, Submission, TaskState
from tmbot.errors import (
    Conflict,
    InsufficientCredits,
    KeyRejected,
    NotFound,
    NotPermitted,
    ParseError,
    TmbotError,
)
from tmbot.events import Deleted, Delivered, Failed, Queued, Started
from tmbot.funds import Funds, provider_flag
from tmbot.leaks import refuse_bound_keys
from tmbot.lifecycle import Lifecycle, Stored
from tmbot.links import Links
from tmbot.ports import Coordinator, Store
from tmbot.providers.base import ImageProvider
from tmbot.records import Generation, GenStatus, KeyRef, KeyScope
from tmbot.redact import SecretSink
from tmbot.replies import (
    DeleteAccepted,
    GenerationAccepted,
    HelpView,
    KeyBound,
    KeyFormRequested,
    Reply,
)
from tmbot.scheduling import Job, Scheduler
from tmbot.team import Team, require_admin
from tmbot.vault import Vault

log = logging.getLogger(__name__)

#: repeated regenerate triggers by one person for one result within this many seconds count once
REGENERATE_WINDOW = 10.0

#: a finished image's link is used as a refinement's reference only while it lives this long
REFERENCE_MARGIN = 60.0

#: the words after ``team`` that make a team command (non-admins are refused even when the
#: rest does not parse: they should not learn the syntax from its error messages)
_TEAM_WORDS = ("key", "budget", "channel", "show", "link", "unlink")


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


@dataclass(frozen=True)
class _Running:
    task: asyncio.Task[None]
    progress: _Progress
    lane: str


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        vault: Vault,
        providers: Mapping[ProviderName, ImageProvider],
        clock: Clock,
        scheduler: Scheduler | None = None,
        on_secret: SecretSink | None = None,
        now: Callable[[], float] = time.time,
        stored: Stored | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.store = store
        #: which lanes this process runs (one process: all of them)
        self.coordinator: Coordinator = coordinator or SoleCoordinator()
        self.providers = providers
        self.clock = clock
        self.scheduler = scheduler or Scheduler(providers=providers, clock=clock)
        self._now = now
        self.lifecycle = Lifecycle(store=store, now=now, stored=stored)
        self.funds = Funds(store=store, now=now)
        self.accounts = Accounts(
            store=store, vault=vault, funds=self.funds, now=now, on_secret=on_secret
        )
        self.links = Links(store=store, now=now, on_secret=on_secret)
        self.team = Team(store=store, now=now, usable=self.accounts.usable, links=self.links)
        self._jobs: dict[str, _Running] = {}
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._resumed = False
        self._pickup: asyncio.Task[None] | None = None
        self._pickup_again = False

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def resume(self) -> int:
        """Pick up unfinished generations (call once the adapters are connected); returns
        how many were picked up again. With several processes on one store, only those of
        the lanes this process owns or takes (:meth:`Coordinator.take`); later hand-offs and
        lanes whose owner died are picked up by :meth:`wake`."""
        self._resumed = True
        resumed = 0
        unfinished = await self.store.unfinished_generations()
        # Work already at the provider first: it holds slots there that queued work must
        # not take (the sort is stable, so each group stays oldest first).
        unfinished.sort(key=lambda g: g.status is GenStatus.ACCEPTED)
        sole = self.coordinator.sole
        keys: dict[KeyRef, ApiKey | TmbotError] = {}
        taken: dict[str, bool] = {}  # lane -> this process runs it
        for gen in unfinished:
            if gen.id in self._jobs:
                continue
            found = keys.get(gen.key)
            if found is None:
                try:
                    found = await self.accounts.key_for(gen.key)
                except TmbotError as err:
                    found = err
                keys[gen.key] = found
            lane = (
                lane_of(gen.key.provider, found)
                if isinstance(found, ApiKey)
                else (f"unusable:{gen.key.lane_id}")
            )
            mine = taken.get(lane)
            if mine is None:
                mine = taken[lane] = await self.coordinator.take(
                    lane, waiting=self._now() - gen.updated_at
                )
            if not mine:
                continue  # another process runs this key
            if not sole:
                # read again: it may have moved on since the list was read (here or by
                # the lane's previous owner)
                current = await self.store.get_generation(gen.id)
                if current is None or current.status.final or gen.id in self._jobs:
                    continue
                gen = current
            try:
                if gen.status is GenStatus.SUBMITTING:
                    # We cannot know whether the provider got the create call: sending it
                    # again could bill twice, so the person is told and can ask again.
                    await self._fail(
                        gen,
                        "tmbot restarted while sending this request, so it was not sent again "
                        "(to avoid paying twice); please ask again.",
                    )
                    continue
                if not isinstance(found, ApiKey):
                    await self._fail(gen, found.user_message)
                    continue
            except Conflict:
                continue  # moved by another process meanwhile
            self._launch(gen, found, lane)
            resumed += 1
        if resumed:
            log.info("resumed %d unfinished generation(s)", resumed)
        return resumed

    def wake(self) -> None:
        """Look for work this process should run (a brief handed off by another process,
        a lane whose owner died): one look at a time, another after it if woken meanwhile."""
        if not self._resumed or self._closed:
            return
        if self._pickup is not None and not self._pickup.done():
            self._pickup_again = True
            return
        self._pickup = asyncio.create_task(self._pick_up(), name="engine-pickup")

    async def _pick_up(self) -> None:
        while True:
            self._pickup_again = False
            try:
                await self.resume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not look for work handed to this process")
            if not self._pickup_again or self._closed:
                return

    def lane_lost(self, lane: str) -> None:
        """``lane`` is no longer this process's (its lease lapsed): stop its work here; the
        new owner resumes it from the store."""
        for running in list(self._jobs.values()):
            if running.lane == lane:
                running.task.cancel()
        log.warning("lane %s is no longer this process's; its work stops here", lane)

    def busy_lanes(self) -> set[str]:
        """The lanes with work running in this process."""
        return {running.lane for running in self._jobs.values()}

    def sent_ages(self, lane: str) -> list[float]:
        """How long ago (real seconds) each request of the lane's current window went out
        from this process (:meth:`Coordinator.start`'s ``sent``)."""
        scale = self.clock.scale
        return [age / scale for age in self.scheduler.sent_ages(lane)]

    def inherit_window(self, lane: str, ages: Sequence[float]) -> None:
        """Requests the lane's previous owner sent ``ages`` real seconds ago, counted in the
        key's window here (:meth:`Coordinator.start`'s ``inherit``)."""
        scale = self.clock.scale
        self.scheduler.inherit(lane, [age * scale for age in ages])

    async def wait_idle(self) -> None:
        """Return once every generation this engine runs has ended (delivered or failed)."""
        await self._idle.wait()

    @property
    def running(self) -> int:
        return len(self._jobs)

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Cancel running work; its stored state lets the next start resume it."""
        self._closed = True
        tasks = [job.task for job in self._jobs.values()]
        if self._pickup is not None:
            tasks.append(self._pickup)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.scheduler.aclose()

    def _guard(self, name: str) -> AbstractAsyncContextManager[None]:
        return self.coordinator.guard(name)

    async def _fail(self, gen: Generation, reason: str) -> None:
        await self.lifecycle.move(
            gen, GenStatus.FAILED, events=[lambda g: Failed(g, reason)], error=reason
        )

    # --- the one entry for text --------------------------------------------------------

    async def resolve(self, actor: Actor) -> Actor:
        """The one place an incoming actor is resolved: its home (linked team and account,
        :mod:`tmbot.links`) is looked up in the store. Every public entry that takes an actor
        calls it once; what follows reads keys, budgets, settings and history through
        ``actor.home``."""
        return await self.links.resolve(actor)

    async def execute(self, actor: Actor, text: str, place: Place) -> Reply:
        """Run the text after ``/taste``. Raises TmbotError with a sentence for the user."""
        actor = await self.resolve(actor)
        try:
            command = cmds.parse(text)
        except ParseError:
            if _is_team_command(text):
                require_admin(actor)
            raise
        accounts = self.accounts
        if not isinstance(command, cmds.BindKey | cmds.TeamKey):
            # a key bound anywhere in the workspace (or its linked team) never rides along
            tenants = dict.fromkeys((actor.tenant, actor.home.team, actor.home.tenant))
            await refuse_bound_keys(self.store, accounts.vault, tenants, text)
        match command:
            case cmds.Generate():
                return await self._generate(actor, command, place)
            case cmds.Regenerate(generation_id=generation_id):
                return await self._regenerate(actor, generation_id, None, here=place)
            case cmds.Delete(generation_id=generation_id):
                return await self._delete(actor, generation_id)
            case cmds.Refine():
                change = cmds.Generate(command.brief, command.options, command.image_urls)
                return await self._refine(actor, command.generation_id, change, None, here=place)
            case cmds.BindKey(key=None):
                return KeyFormRequested(command.provider, KeyScope.USER)
            case cmds.BindKey(key=ApiKey() as key):
                return await accounts.bind_key(actor, command.provider, key)
            case cmds.Logout():
                return await accounts.logout(actor, command.provider)
            case cmds.Credits():
                return await accounts.credits(actor)
            case cmds.Settings():
                return await accounts.settings(actor, command)
            case cmds.History():
                return await accounts.history(actor)
            case cmds.Help():
                return HelpView(command.topic, platform=actor.platform)
            case cmds.TeamKey(key=None):
                require_admin(actor)
                return KeyFormRequested(command.provider, KeyScope.TEAM)
            case cmds.TeamKey(key=ApiKey() as key):
                return await accounts.bind_key(actor, command.provider, key, scope=KeyScope.TEAM)
            case cmds.TeamShow():
                return await self.team.show(actor)
            case cmds.TeamBudget():
                return await self.team.set_budget(actor, command)
            case cmds.TeamChannel():
                return await self.team.set_channel(actor, command.enabled, place.channel)
            case cmds.LinkTeams(code=None):
                return await self.links.team_code(actor)
            case cmds.LinkTeams(code=str() as code):
                return await self.links.join_team(actor, code)
            case cmds.UnlinkTeams():
                return await self.links.unlink_team(actor)
            case cmds.LinkAccounts(code=None):
                return await self.links.account_code(actor)
            case cmds.LinkAccounts(code=str() as code):
                return await self.links.join_account(actor, code)
            case cmds.UnlinkAccounts():
                return await self.links.unlink_account(actor)
        raise NotFound("That command is not known.")  # pragma: no cover - exhaustive match

    async def bind_key(
        self,
        actor: Actor,
        provider: ProviderName,
        key: ApiKey,
        *,
        scope: KeyScope = KeyScope.USER,
    ) -> KeyBound:
        """Bind a key given through a private form (never through channel text)."""
        return await self.accounts.bind_key(await self.resolve(actor), provider, key, scope=scope)

    async def first_time(self, scope: str, key: str, *, ttl: float = 24 * 3600.0) -> bool:
        """Whether a platform event (``scope`` e.g. ``slack-event``, ``key`` its id) is seen
        for the first time within ``ttl`` seconds, across restarts: retries and double
        clicks answer False."""
        earlier = await self.store.remember(scope, key, value="1", now=self._now(), ttl=ttl)
        return earlier is None

    async def is_request_channel(self, tenant: str, channel: str) -> bool:
        """Whether every new message in ``channel`` is a brief (``team channel on``)."""
        return await self.store.is_request_channel(tenant, channel)

    async def generation_for_message(
        self, platform: str, channel: str, message_id: str
    ) -> Generation | None:
        """The generation a platform message shows (its card or its image), if any."""
        generation_id = await self.store.generation_for_message(platform, channel, message_id)
        if generation_id is None:
            return None
        return await self.store.get_generation(generation_id)

    # --- generations -------------------------------------------------------------------

    async def generate(
        self, actor: Actor, command: cmds.Generate, place: Place
    ) -> GenerationAccepted:
        return await self._generate(await self.resolve(actor), command, place)

    async def _generate(
        self, actor: Actor, command: cmds.Generate, place: Place
    ) -> GenerationAccepted:
        defaults = await self.store.get_settings(actor.home.tenant, actor.home.user_id)
        spec = cmds.resolve(
            command.options, defaults, brief=command.brief, image_urls=command.image_urls
        )
        return GenerationAccepted(await self._accept(actor, place, spec))

    async def regenerate(
        self, actor: Actor, generation_id: str, place: Place | None = None
    ) -> GenerationAccepted:
        """Run a result's parameters again, with a card of its own in the original's thread
        (unless ``place`` says otherwise), paid by ``actor`` (their own key, else the team's
        key within their budget; never the original requester's personal key). Repeated
        triggers by one person within REGENERATE_WINDOW count once, across restarts."""
        return await self._regenerate(await self.resolve(actor), generation_id, place)

    async def _regenerate(
        self, actor: Actor, generation_id: str, place: Place | None, *, here: Place | None = None
    ) -> GenerationAccepted:
        original = await self._usable_original(actor, generation_id)
        marker = f"{actor.home.tenant}|{actor.home.user_id}|{original.id}"
        new_id = new_generation_id()
        earlier = await self.store.remember(
            "regenerate", marker, value=new_id, now=self._now(), ttl=REGENERATE_WINDOW
        )
        if earlier is not None:
            previous = await self.store.get_generation(earlier)
            if previous is None:
                raise Conflict("Another of that result is already on its way.")
            return GenerationAccepted(previous, duplicate=True)
        try:
            gen = await self._accept(
                actor,
                place or await self._follow_up_place(actor, original, here),
                original.spec,
                regenerated_from=original.id,
                generation_id=new_id,
            )
        except BaseException:
            await self.store.forget("regenerate", marker)
            raise
        return GenerationAccepted(gen)

    async def refine(
        self, actor: Actor, generation_id: str, text: str, place: Place | None = None
    ) -> GenerationAccepted:
        """A new generation from a result: its brief plus ``text``'s words, ``text``'s flags
        over its parameters (the new flags win), and its image as the first reference while
        the provider's link to it lives (within the provider's cap). Paid like a
        regenerate; posted with a card of its own in the original's thread."""
        actor = await self.resolve(actor)
        return await self._refine(actor, generation_id, cmds.parse_refinement(text), place)

    async def _refine(
        self,
        actor: Actor,
        generation_id: str,
        change: cmds.Generate,
        place: Place | None,
        *,
        here: Place | None = None,
    ) -> GenerationAccepted:
        original = await self._usable_original(actor, generation_id)
        brief = " ".join(w for w in (original.spec.brief, change.brief) if w)
        spec = cmds.resolve_over(
            change.options,
            original.spec,
            brief=brief,
            image_urls=self._references(original, change.image_urls),
        )
        gen = await self._accept(
            actor,
            place or await self._follow_up_place(actor, original, here),
            spec,
            regenerated_from=original.id,
        )
        return GenerationAccepted(gen)

    def _references(self, original: Generation, given: tuple[str, ...]) -> tuple[str, ...]:
        """The refinement's reference images: the original's image while its link lives,
        the new links, then the original's references, within the provider's cap (what the
        person gave is never dropped; a cap they exceed is their error to hear)."""
        cap = caps(original.spec.provider).max_reference_images
        result: list[str] = []
        alive = (
            original.image_url is not None
            and original.status is GenStatus.DELIVERED
            and (
                original.expires_at is None
                or original.expires_at > self.clock.wall() + REFERENCE_MARGIN
            )
        )
        if alive and original.image_url is not None and len(given) < cap:
            result.append(original.image_url)
        result.extend(url for url in given if url not in result)
        for url in original.spec.image_urls:
            if len(result) >= max(cap, len(given)):
                break
            if url not in result:
                result.append(url)
        return tuple(result)

    async def _usable_original(self, actor: Actor, generation_id: str) -> Generation:
        original = await self._generation_in(actor, generation_id)
        if original.deleted_at is not None:
            raise NotFound("That result was deleted, so it cannot be made again; ask anew.")
        return original

    async def _follow_up_place(
        self, actor: Actor, original: Generation, here: Place | None
    ) -> Place:
        """Where another of ``original`` goes: its channel, in its thread (the thread its
        card started, when it was not in one), with a card of its own. Asked for from a
        linked team's other platform, it goes ``here``: places stay on the actor's own."""
        if original.place.platform != actor.platform:
            if here is None:
                raise NotFound("That result was made on another platform; ask for it there.")
            return here
        thread = original.place.thread
        if thread is None:
            cards = [
                link
                for link in await self.store.messages_for_generation(original.id)
                if link.kind == "card"
            ]
            thread = cards[0].message_id if cards else None
        return replace(original.place, thread=thread, card_message=None)

    async def delete(self, actor: Actor, generation_id: str) -> DeleteAccepted:
        """Mark a generation deleted; the adapter hears it as a ``Deleted`` event (and
        removes or marks its messages). Allowed to the person who asked for it and to
        admins. A generation still waiting for a slot is cancelled (nothing was sent,
        nothing is charged; a ``Failed`` event says so); one already at the provider cannot
        be stopped and is refused until it has ended. Deleting twice is harmless."""
        return await self._delete(await self.resolve(actor), generation_id)

    async def _delete(self, actor: Actor, generation_id: str) -> DeleteAccepted:
        gen = await self._generation_in(actor, generation_id)
        asked = (gen.actor.home.tenant, gen.actor.home.user_id)
        if asked != (actor.home.tenant, actor.home.user_id) and not actor.is_admin:
            raise NotPermitted(
                "Only the person who asked for that image, or a workspace admin, can delete it."
            )
        now = self._now()
        if gen.deleted_at is not None:
            return DeleteAccepted(gen, cancelled=gen.task_id is None)
        if gen.status.final:
            deleted = await self.lifecycle.move(
                gen,
                gen.status,
                events=[lambda g: Deleted(g, actor.user_id, actor.label)],
                deleted_at=now,
                deleted_by=actor.user_id,
            )
            return DeleteAccepted(deleted, cancelled=False)
        return DeleteAccepted(await self._cancel(actor, gen, now), cancelled=True)

    async def _cancel(self, actor: Actor, gen: Generation, now: float) -> Generation:
        running = self._jobs.get(gen.id)
        waiting = gen.status is GenStatus.ACCEPTED
        if running is not None:
            # Still waiting for a slot when its own record says so: the create call has not
            # started (SUBMITTING is stored before it), so cancelling sends nothing.
            waiting = running.progress.gen.status is GenStatus.ACCEPTED
            if waiting:
                running.task.cancel()
                await asyncio.wait([running.task])
        current = await self.store.get_generation(gen.id)
        if (
            not waiting
            or current is None
            or current.status
            not in (
                GenStatus.ACCEPTED,
                GenStatus.SUBMITTING,
            )
        ):
            raise NotPermitted(
                "That image is already being made and cannot be stopped; delete it once it "
                "has been posted."
            )
        reason = f"Cancelled by {actor.label} before it was sent, so nothing was charged."
        return await self.lifecycle.move(
            current,
            GenStatus.FAILED,
            events=[lambda g: Failed(g, reason)],
            error=reason,
            deleted_at=now,
            deleted_by=actor.user_id,
        )

    async def _generation_in(self, actor: Actor, generation_id: str) -> Generation:
        gen = await self.store.get_generation(generation_id.strip().strip("`").lower())
        # one team's results, on whichever of its platforms they were made
        if gen is None or (
            gen.actor.tenant != actor.tenant and gen.actor.home.team != actor.home.team
        ):
            raise NotFound("That result is not one tmbot knows in this workspace.")
        return gen

    async def _accept(
        self,
        actor: Actor,
        place: Place,
        spec: GenerationSpec,
        *,
        regenerated_from: str | None = None,
        generation_id: str | None = None,
    ) -> Generation:
        binding = await self.accounts.binding_for(actor, spec.provider)
        cost = caps(spec.provider).cost(spec.model, spec.resolution)
        # One check-and-reserve at a time per key, across processes: the reservation (the
        # stored row) is in place before the next request on this key is checked.
        async with self._guard(f"key:{binding.ref.lane_id}"):
            binding = await self.store.get_key(binding.ref) or binding
            await self.funds.check(actor, binding, cost)
            key = self.accounts.decrypt(binding)
            now = self._now()
            gen = Generation(
                id=generation_id or new_generation_id(),
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
            await self.lifecycle.create(gen)
        lane = lane_of(gen.key.provider, key)
        if await self.coordinator.take(lane):
            self._launch(gen, key, lane)
        else:
            await self.coordinator.hand_off(lane)  # its owner runs it
        return gen

    def _launch(self, gen: Generation, key: ApiKey, lane: str) -> None:
        if gen.id in self._jobs:
            # already running here: a look for work (resume) can find a brief between its
            # acceptance and its launch (while the key's guard is given back) and launch it
            # first; a second job would race it, and its end would unlist the first, which
            # a later look would then fail as "restarted while sending"
            return
        elapsed = 0.0
        if gen.submitted_at is not None:
            elapsed = max(0.0, self._now() - gen.submitted_at) * self.clock.scale
        job = Job(
            generation_id=gen.id,
            # limits belong to the key itself, however many bindings share it
            lane_id=lane,
            user=f"{gen.actor.home.tenant}:{gen.actor.home.user_id}",
            key=key,
            spec=gen.spec,
            task_id=gen.task_id,
            estimate=gen.estimate_seconds,
            elapsed=elapsed,
            image_url=gen.image_url if gen.status is GenStatus.COMPLETED else None,
        )
        progress = _Progress(
            gen,
            lifecycle=self.lifecycle,
            store=self.store,
            key_guard=functools.partial(self._guard, f"key:{gen.key.lane_id}"),
            owns=functools.partial(self.coordinator.owns, lane),
            now=self._now,
        )
        task = asyncio.create_task(self.scheduler.run(job, progress), name=f"gen-{gen.id}")
        self._jobs[gen.id] = _Running(task, progress, lane)
        self._idle.clear()
        task.add_done_callback(functools.partial(self._finished, gen.id))

    def _finished(self, generation_id: str, task: asyncio.Task[None]) -> None:
        running = self._jobs.get(generation_id)
        if running is not None and running.task is task:
            del self._jobs[generation_id]
        if not self._jobs:
            self._idle.set()


class _Progress:
    """One job's reports from the scheduler (:class:`tmbot.scheduling.JobHooks`), each
    stored through the lifecycle before the scheduler goes on. ``gen`` is the row as this
    job last wrote it."""

    def __init__(
        self,
        gen: Generation,
        *,
        lifecycle: Lifecycle,
        store: Store,
        key_guard: Callable[[], AbstractAsyncContextManager[None]],
        owns: Callable[[], bool],
        now: Callable[[], float],
    ) -> None:
        self.gen = gen
        #: the provider's result, stored with the image (or the failure) in one write
        self._result: dict[str, object] = {}
        self._balance_read: asyncio.Future[float | None] | None = None
        self._lifecycle = lifecycle
        self._store = store
        self._key_guard = key_guard
        self._owns = owns
        self._now = now

    async def _move(
        self,
        to: GenStatus,
        *,
        events: list[Callable[[Generation], Queued | Started | Delivered | Failed]] | None = None,
        **fields: object,
    ) -> Generation:
        self.gen = await self._lifecycle.move(self.gen, to, events=events or (), **fields)
        return self.gen

    async def queued(self, job: Job, position: int, eta: float | None) -> None:
        # only while still waiting: a late report never lands after Started
        await self._lifecycle.emit(
            self.gen, Queued(self.gen, position, eta), expect=GenStatus.ACCEPTED
        )

    async def submitting(self, job: Job) -> None:
        if not self._owns():
            # The lane's lease lapsed (this process stalled or lost the database): its new
            # owner runs this generation from the store; nothing is sent from here.
            task = asyncio.current_task()
            if task is not None:
                task.cancel()
                await asyncio.sleep(0)  # the cancellation lands here
        await self._move(GenStatus.SUBMITTING)

    async def submitted(self, job: Job, submission: Submission) -> None:
        # The reservation ends (status SUBMITTED) and the balance that includes the charge is
        # recorded together, as far as the funds check (under the same lock) can tell.
        async with self._key_guard():
            gen = await self._move(
                GenStatus.SUBMITTED,
                events=[Started],
                task_id=submission.task_id,
                estimate_seconds=submission.estimated_seconds,
                submitted_at=self._now(),
                credits_remaining=submission.credits_remaining,
            )
            if submission.credits_remaining is not None:
                await self._store.record_balance(
                    gen.key, remaining=submission.credits_remaining, seen_at=self._now()
                )

    async def completed(self, job: Job, state: TaskState) -> None:
        # Nothing is acted on between the provider's answer and the download (no charge, no
        # post), so the result is stored with the image, or with the failure, in one write:
        # a restart in between costs one more poll, never a second task.
        self._result = {
            "image_url": state.image_urls[0] if state.image_urls else None,
            "prompt_used": state.prompt_used,
            "expires_at": state.expires_at,
            "credits_consumed": state.credits_consumed,
            "completed_at": self._now(),
        }
        # the key's balance for the card is read while the image downloads: at load each
        # store call waits its turn, and this one in turn after the download took 0.6 s
        self._balance_read = asyncio.ensure_future(self._balance(self.gen))
        self._balance_read.add_done_callback(_retrieved)

    async def downloaded(self, job: Job, state: TaskState, image: bytes) -> None:
        width, height = await image_size(image)
        gen = replace(self.gen, **self._result)  # type: ignore[arg-type]
        used = gen.credits_consumed if gen.credits_consumed is not None else gen.cost
        read, self._balance_read = self._balance_read, None
        remaining = await (read if read is not None else self._balance(gen))
        await self._move(
            GenStatus.DELIVERED,
            events=[
                lambda g: Delivered(
                    generation=g,
                    image=image,
                    filename=f"tmbot-{g.id}.png",
                    width=width,
                    height=height,
                    credits_used=used,
                    credits_remaining=remaining,
                )
            ],
            delivered_at=self._now(),
            **self._result,
        )

    async def _balance(self, gen: Generation) -> float | None:
        """The key's balance as last reported by the provider (this generation's create
        answer, or a later answer for the same key if there was one)."""
        binding = await self._store.get_key(gen.key)
        if (
            binding is not None
            and binding.balance is not None
            and binding.created_at <= gen.created_at  # the same key, not one bound since
        ):
            return binding.balance
        return gen.credits_remaining

    async def failed(self, job: Job, error: TmbotError) -> None:
        gen = self.gen
        if isinstance(error, InsufficientCredits) and error.available is not None:
            # the provider just told us the balance: later requests are checked against it
            await self._store.record_balance(
                gen.key, remaining=error.available, seen_at=self._now()
            )
        reason = failure_text(gen, error)
        try:
            await self._move(
                GenStatus.FAILED,
                events=[lambda g: Failed(g, reason)],
                error=reason,
                **self._result,  # a charge the provider reported still counts
            )
        except Conflict:
            log.info("generation %s ended elsewhere meanwhile", gen.id)


def _retrieved(future: asyncio.Future[float | None]) -> None:
    """Mark a read nobody awaits any more (its generation failed meanwhile) as seen."""
    if not future.cancelled():
        future.exception()


async def image_size(image: bytes) -> tuple[int, int]:
    """The image's width and height. Opening reads only the file's header (nothing is
    decoded), which costs less than the trip to a worker thread would."""
    with Image.open(io.BytesIO(image)) as img:
        return img.size
