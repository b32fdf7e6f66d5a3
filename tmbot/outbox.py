"""Hands each platform's stored events to its notifier: in order per generation, at least once.

One :class:`Dispatcher` per platform drains that platform's outbox (see
:mod:`tmbot.lifecycle`, which writes it). A generation's events go one after another in
``seq`` order; different generations go side by side. An event is marked done only when the
notifier returns, together with the :class:`~tmbot.records.MessageLink`s it made, in one
transaction; a notifier that raises gets the event again after a backoff, and after
``max_attempts`` it is given up: a ``Delivered`` event given up fails its generation with a
reason (so nobody waits forever), any other is skipped so the later ones can go.

:class:`Dispatchers` routes the engine's wake-ups to the dispatcher of the event's platform.

Several processes on one store: a generation's events on a platform are handed over by the
process that holds its *claim* (:meth:`tmbot.ports.Coordinator.claim`, a row with an expiry
in the store), never by two at once. Events pushed by the lifecycle go through the same claim
(held claims are remembered, so the fast path asks the store once per generation, not per
event); a claim is released once its events are handed over and recorded, so the next events
go to whichever process makes them. A push this process cannot claim is left in the store and
the holder is poked; rounds also run every few seconds to take over claims that lapsed. With
one process (:class:`tmbot.coordination.SoleCoordinator`) none of this touches the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tmbot.errors import Conflict
from tmbot.events import Failed, decode
from tmbot.lifecycle import Lifecycle
from tmbot.ports import Coordinator, Notice, Notifier, Store
from tmbot.records import (
    EventOutcome,
    Generation,
    GenStatus,
    MessageLink,
    NewEvent,
    OutboxEntry,
)

log = logging.getLogger(__name__)

#: seconds between rounds when other processes share the store (to take over lapsed claims)
SHARED_ROUND = 2.0

GAVE_UP = "The image was made but could not be posted here; ask again in a moment."


@dataclass(frozen=True)
class DispatchPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0  # real seconds before the second attempt, doubling after
    backoff_cap: float = 60.0
    batch: int = 500  # events read from the store at once
    concurrency: int = 32  # notifier calls at once (one per generation)


@dataclass
class _Item:
    """An event waiting in memory for its turn; ``generation`` and ``blob`` are known when
    it came straight from the lifecycle, else read when its turn comes."""

    entry: OutboxEntry
    generation: Generation | None = None
    blob: bytes | None = None


class Dispatcher:
    """Drains one platform's outbox into its notifier. Run :meth:`run` as a task.

    Events arrive two ways: :meth:`push` hands over what the lifecycle has just stored
    (nothing is read back: the fast path every image takes), and a *round* reads what is
    waiting in the store (at start, after a retry's backoff, after :meth:`wake`). Each
    generation has at most one worker taking its events in ``seq`` order. What became of
    each event is written in batches by one flusher, so the store sees one transaction per
    batch, off the path of the next event."""

    def __init__(
        self,
        *,
        store: Store,
        lifecycle: Lifecycle,
        platform: str,
        notifier: Notifier,
        policy: DispatchPolicy | None = None,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.store = store
        self._coordinator = coordinator
        self._sole = coordinator is None or coordinator.sole
        self._held: set[str] = set()  # generations whose claim this process holds
        self._entry_gen: dict[int, str] = {}  # entry id -> generation, for releasing claims
        self._claim_lock = asyncio.Lock()
        self._claiming: set[asyncio.Task[None]] = set()
        self._reads = 0  # reads of the store so far (shared)
        self._recent: dict[int, int] = {}  # entry recorded done -> reads begun by then
        self.lifecycle = lifecycle
        self.platform = platform
        self.notifier = notifier
        self.policy = policy or DispatchPolicy()
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._woken = asyncio.Event()
        self._flush = asyncio.Event()
        self._empty = asyncio.Event()
        self._queues: dict[str, list[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._links: dict[str, list[MessageLink]] = {}
        self._known: set[int] = set()  # entry ids in memory or not yet settled
        self._outcomes: list[EventOutcome] = []
        self._handing: dict[str, int] = {}  # generation -> the entry being handed over
        self._primed = False  # a round has read the store since start
        self._calls = asyncio.Semaphore(self.policy.concurrency)

    # --- arrivals ----------------------------------------------------------------------

    def wake(self) -> None:
        """Look in the store for waiting events soon."""
        self._empty.clear()
        self._woken.set()

    def push(self, generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]) -> None:
        """Events the lifecycle has just stored for ``generation``."""
        self._empty.clear()
        if not self._sole and generation.id not in self._held:
            task = asyncio.create_task(self._claim_pushed(generation, events))
            self._claiming.add(task)
            task.add_done_callback(self._claiming.discard)
            return
        self._take_pushed(generation, events)

    def _take_pushed(
        self, generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]
    ) -> None:
        for entry, event in events:
            if event.replaces:
                self._drop_replaced(entry.generation_id, event.replaces)
            self._enqueue(_Item(entry, generation, event.blob))

    async def _claim_pushed(
        self, generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]
    ) -> None:
        assert self._coordinator is not None  # noqa: S101 (only when shared)
        try:
            async with self._claim_lock:
                if generation.id not in self._held:
                    self._gain(await self._coordinator.claim(self.platform, [generation.id]))
            if generation.id in self._held:
                # Claimed since the push (here or by a round meanwhile): the previous
                # holder may have handed these over (and released the claim after recording
                # it), so what is left of this generation is read again, now that the claim
                # is held. What is still waiting of the pushed events is then taken from
                # memory (the row as written and the image), not read back one by one.
                await self._take_waiting(generation, events)
            else:  # another process hands this generation's events over: it looks again
                await self._coordinator.poke(self.platform)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not claim events of generation %s", generation.id)
            self.wake()  # the store has them: a round tries again

    async def _take_waiting(
        self, generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]
    ) -> None:
        waiting = await self.store.pending_events(
            self.platform, limit=self.policy.batch, generation_id=generation.id
        )
        pushed = {entry.id: event for entry, event in events}
        for entry in waiting:
            event = pushed.get(entry.id)
            if event is None:  # an earlier event, left by another holder: read when due
                self._enqueue(_Item(entry))
            else:
                self._enqueue(_Item(entry, generation, event.blob))
        if len(waiting) >= self.policy.batch:
            self.wake()  # a round reads the rest

    def _drop_replaced(self, generation_id: str, kinds: tuple[str, ...]) -> None:
        """The store marked these done when the newer event was written: forget them too
        (all but the one a worker is handing over right now)."""
        queue = self._queues.get(generation_id)
        if not queue:
            return
        busy = self._handing.get(generation_id)
        for item in [i for i in queue if i.entry.kind in kinds and i.entry.id != busy]:
            queue.remove(item)
            self._known.discard(item.entry.id)

    def _enqueue(self, item: _Item) -> None:
        entry = item.entry
        if entry.id in self._known:
            return
        self._known.add(entry.id)
        if not self._sole:
            self._entry_gen[entry.id] = entry.generation_id
        queue = self._queues.setdefault(entry.generation_id, [])
        queue.append(item)
        queue.sort(key=lambda i: i.entry.seq)
        if (
            entry.generation_id not in self._workers
            and queue[0].entry.next_attempt_at <= self._now()
        ):
            self._start_worker(entry.generation_id)

    def _start_worker(self, generation_id: str) -> None:
        task = asyncio.create_task(self._work(generation_id), name=f"outbox-{generation_id}")
        self._workers[generation_id] = task
        task.add_done_callback(functools.partial(self._worker_done, generation_id))

    def _worker_done(self, generation_id: str, _task: asyncio.Task[None]) -> None:
        self._workers.pop(generation_id, None)
        if self._queues.get(generation_id):
            self._woken.set()  # something is left for a retry: the round times it
        else:
            self._queues.pop(generation_id, None)
        self._check_empty()

    def _check_empty(self) -> None:
        if not self._queues and not self._workers and not self._outcomes and not self._known:
            self._woken.set()  # a round confirms the store has nothing either

    async def drained(self) -> None:
        """Return once nothing is waiting in this platform's outbox (done or given up)."""
        self.wake()
        await self._empty.wait()

    # --- the loops ---------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: rounds over the store, and the flusher of outcomes."""
        flusher = asyncio.create_task(self._flusher(), name=f"outbox-flush-{self.platform}")
        try:
            while True:
                self._woken.clear()
                try:
                    delay = await self._round()
                except Exception:
                    log.exception("the %s outbox could not be read; trying again", self.platform)
                    delay = 1.0
                if not self._sole:  # claims of a process that died lapse: look again soon
                    delay = SHARED_ROUND if delay is None else min(delay, SHARED_ROUND)
                try:
                    async with asyncio.timeout(delay):
                        await self._woken.wait()
                except TimeoutError:
                    pass
        finally:
            tasks = [flusher, *self._workers.values(), *self._claiming]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._write_outcomes()  # what was handed over is not handed over again

    async def _round(self) -> float | None:
        """Queue what the store has waiting; start the workers whose turn has come. Returns
        how long until the next retry is due (None: only a wake-up brings more)."""
        others = False  # events another process holds the claim of
        if self._sole:
            entries = await self.store.pending_events(self.platform, limit=self.policy.batch)
        else:
            entries, others = await self._claimed()
        for entry in entries:
            if entry.id not in self._known:
                # a fresh start tries at once what an earlier run was waiting to retry
                fresh = entry if self._primed else replace(entry, next_attempt_at=0.0)
                self._enqueue(_Item(fresh))
        self._primed = True
        now = self._now()
        next_due: float | None = None
        for generation_id, queue in self._queues.items():
            if generation_id in self._workers or not queue:
                continue
            due = queue[0].entry.next_attempt_at
            if due <= now:
                self._start_worker(generation_id)
            else:
                next_due = due if next_due is None else min(next_due, due)
        if (
            not entries
            and not others
            and not self._queues
            and not self._workers
            and not self._outcomes
        ):
            self._empty.set()
        return None if next_due is None else max(0.0, next_due - now)

    async def _claimed(self) -> tuple[list[OutboxEntry], bool]:
        """What is waiting in the store for the generations this process held the claim of
        before the read began, and whether some of the rest are not (yet) this process's.
        Free or lapsed claims are taken on the way, and another round follows at once for
        them: the previous holder records what it handed over before it releases a claim,
        so only a read that begins after the claim is the truth for it."""
        assert self._coordinator is not None  # noqa: S101 (only when shared)
        held_before = set(self._held)
        self._reads += 1
        began = self._reads
        entries = await self.store.pending_events(self.platform, limit=self.policy.batch)
        wanted = sorted({e.generation_id for e in entries} - self._held)
        if wanted:
            async with self._claim_lock:
                gained = await self._coordinator.claim(self.platform, wanted)
                self._gain(gained)
            if gained:
                self._woken.set()  # the next round reads them
        # Nothing is awaited from here to the queueing. What this process recorded as
        # handed over may still show as waiting (the read may have begun before that was
        # written, on another connection): it is left out. Reads are one after another, so
        # what was recorded before this one began shows in none later.
        entries = [e for e in entries if e.id not in self._recent]
        self._recent = {i: n for i, n in self._recent.items() if n >= began}
        mine = held_before & self._held
        held = [e for e in entries if e.generation_id in mine]
        return held, len(held) < len(entries)

    def _gain(self, claimed: set[str]) -> None:
        self._held |= claimed

    async def _flusher(self) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            await self._write_outcomes()

    async def _write_outcomes(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            await self.store.settle_events(outcomes)
        except Exception:
            log.exception("could not record %d handed-over event(s)", len(outcomes))
            self._outcomes[:0] = outcomes  # kept for the next flush
            return
        for outcome in outcomes:
            if outcome.done:
                self._known.discard(outcome.entry_id)
                if not self._sole:
                    self._recent[outcome.entry_id] = self._reads
        if not self._sole:
            await self._release(outcomes)
        self._check_empty()

    async def _release(self, written: list[EventOutcome]) -> None:
        """Release the claims of generations whose events are all handed over and
        recorded (nothing queued, handed or waiting to be written here)."""
        assert self._coordinator is not None  # noqa: S101 (only when shared)
        unwritten = {self._entry_gen.get(o.entry_id) for o in self._outcomes}
        done: set[str] = set()
        for outcome in written:
            gid = self._entry_gen.get(outcome.entry_id)
            if outcome.done:
                self._entry_gen.pop(outcome.entry_id, None)
            if gid is None or gid in self._queues or gid in self._workers or gid in unwritten:
                continue
            done.add(gid)
        done &= self._held
        if not done:
            return
        async with self._claim_lock:
            # checked again (a push may have queued more meanwhile); from here pushes for
            # these wait for the lock, then claim again through the store
            unwritten = {self._entry_gen.get(o.entry_id) for o in self._outcomes}
            done = {
                g
                for g in done
                if g not in self._queues and g not in self._workers and g not in unwritten
            }
            if not done:
                return
            self._held -= done
            for gid in done:  # another process may post for it next: read its links again
                self._links.pop(gid, None)
            try:
                await self._coordinator.unclaim(self.platform, sorted(done))
            except Exception:
                log.warning("could not release %d claim(s); they lapse", len(done), exc_info=True)

    def _settle(self, outcome: EventOutcome) -> None:
        self._outcomes.append(outcome)
        self._flush.set()

    # --- one generation --------------------------------------------------------------

    async def _work(self, generation_id: str) -> None:
        """Hand over a generation's queued events in order, stopping at one to retry."""
        queue = self._queues.get(generation_id, [])
        while queue:
            item = queue[0]
            if item.entry.next_attempt_at > self._now():
                return
            self._handing[generation_id] = item.entry.id
            try:
                outcome = await self._hand_over(item)
            finally:
                self._handing.pop(generation_id, None)
            if outcome is None:  # the generation is gone: nothing left to show
                for gone in queue:
                    self._settle(
                        EventOutcome(
                            gone.entry.id, True, attempts=gone.entry.attempts, error="gone"
                        )
                    )
                queue.clear()
                break
            self._settle(outcome)
            if not outcome.done:
                queue[0] = _Item(
                    replace(
                        item.entry,
                        attempts=outcome.attempts,
                        next_attempt_at=outcome.next_attempt_at,
                    ),
                    item.generation,
                    item.blob,
                )
                return
            queue.remove(item)
            if item.entry.kind in _LAST:
                self._links.pop(generation_id, None)
        self._queues.pop(generation_id, None)

    async def _hand_over(self, item: _Item) -> EventOutcome | None:
        entry = item.entry
        generation = item.generation or await self.store.get_generation(entry.generation_id)
        if generation is None:
            return None
        blob = item.blob
        if blob is None and entry.has_blob:
            blob = await self.store.event_blob(entry.id)
        links = self._links.get(generation.id)
        if links is None:
            links = self._links[generation.id] = list(
                await self.store.messages_for_generation(generation.id)
            )
        event = decode(entry, generation, blob)

        async def record(link: MessageLink) -> None:
            await self.store.link_message(link)
            links.append(link)

        attempts = entry.attempts + 1
        try:
            async with self._calls:
                made = list(await self.notifier.notify(event, Notice(tuple(links), record)))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning(
                "%s notifier failed on %s of generation %s (attempt %d)",
                self.platform,
                entry.kind,
                entry.generation_id,
                attempts,
                exc_info=True,
            )
            if attempts < self.policy.max_attempts:
                delay = min(self.policy.backoff_cap, self.policy.backoff_base * 2 ** (attempts - 1))
                return EventOutcome(
                    entry.id,
                    False,
                    attempts=attempts,
                    next_attempt_at=self._now() + self._rng.uniform(delay / 2, delay),
                    error=type(err).__name__,
                )
            await self._give_up(entry, generation)
            return EventOutcome(
                entry.id, True, attempts=attempts, error=f"gave up: {type(err).__name__}"
            )
        links.extend(link for link in made if link not in links)
        return EventOutcome(entry.id, True, links=tuple(made), attempts=attempts)

    async def _give_up(self, entry: OutboxEntry, generation: Generation) -> None:
        if entry.kind != "delivered" or generation.status is not GenStatus.DELIVERED:
            return
        try:
            await self.lifecycle.move(
                generation,
                GenStatus.FAILED,
                events=[lambda g: Failed(g, GAVE_UP)],
                error=GAVE_UP,
            )
        except Conflict:
            log.info("generation %s changed while its image was given up", generation.id)


#: after these a generation's links are not kept in memory (a later ``deleted`` reads them)
_LAST = ("delivered", "failed", "deleted")


class Dispatchers:
    """The dispatchers of one process, by platform: the engine's wake-up goes through
    :meth:`wake`. Events of a platform without a dispatcher wait in the outbox."""

    def __init__(self) -> None:
        self._by_platform: dict[str, Dispatcher] = {}

    def add(self, dispatcher: Dispatcher) -> None:
        self._by_platform[dispatcher.platform] = dispatcher

    def get(self, platform: str) -> Dispatcher | None:
        return self._by_platform.get(platform)

    @property
    def all(self) -> list[Dispatcher]:
        return list(self._by_platform.values())

    def wake(self, platform: str) -> None:
        dispatcher = self._by_platform.get(platform)
        if dispatcher is not None:
            dispatcher.wake()

    def stored(
        self, generation: Generation, events: Sequence[tuple[OutboxEntry, NewEvent]]
    ) -> None:
        """The lifecycle's report of stored events: to the dispatcher of their platform."""
        dispatcher = self._by_platform.get(generation.place.platform)
        if dispatcher is not None:
            dispatcher.push(generation, events)

    async def drained(self) -> None:
        for dispatcher in self.all:
            await dispatcher.drained()
