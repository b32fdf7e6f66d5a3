"""Hands each platform's stored events to its notifier: in order per generation, at least once.

One :class:`Dispatcher` per platform drains that platform's outbox (see
:mod:`tmbot.lifecycle`, which writes it). A generation's events go one after another in
``seq`` order; different generations go side by side. An event is marked done only when the
notifier returns, together with the :class:`~tmbot.records.MessageLink`s it made, in one
transaction; a notifier that raises gets the event again after a backoff, and after
``max_attempts`` it is given up: a ``Delivered`` event given up fails its generation with a
reason (so nobody waits forever), any other is skipped so the later ones can go.

:class:`Dispatchers` routes the engine's wake-ups to the dispatcher of the event's platform.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tmbot.errors import Conflict
from tmbot.events import Failed, decode
from tmbot.lifecycle import Lifecycle
from tmbot.ports import Notice, Notifier, Store
from tmbot.records import EventOutcome, Generation, GenStatus, MessageLink, OutboxEntry

log = logging.getLogger(__name__)

GAVE_UP = "The image was made but could not be posted here; ask again in a moment."


@dataclass(frozen=True)
class DispatchPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0  # real seconds before the second attempt, doubling after
    backoff_cap: float = 60.0
    batch: int = 500  # events read at once
    concurrency: int = 32  # notifier calls at once (one per generation)


class Dispatcher:
    """Drains one platform's outbox into its notifier. Run :meth:`run` as a task; call
    :meth:`wake` after writing events (the lifecycle's wake-up does)."""

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
    ) -> None:
        self.store = store
        self.lifecycle = lifecycle
        self.platform = platform
        self.notifier = notifier
        self.policy = policy or DispatchPolicy()
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._woken = asyncio.Event()
        self._empty = asyncio.Event()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._calls = asyncio.Semaphore(self.policy.concurrency)

    def wake(self) -> None:
        self._empty.clear()
        self._woken.set()

    async def drained(self) -> None:
        """Return once nothing is waiting in this platform's outbox (done or given up)."""
        self.wake()
        await self._empty.wait()

    async def run(self) -> None:
        """Until cancelled: hand over whatever is due, sleep until woken or the next retry."""
        try:
            while True:
                self._woken.clear()
                try:
                    delay = await self._round()
                except Exception:
                    log.exception("the %s outbox could not be read; trying again", self.platform)
                    delay = 1.0
                try:
                    async with asyncio.timeout(delay):
                        await self._woken.wait()
                except TimeoutError:
                    pass
        finally:
            busy = list(self._busy.values())
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)

    async def _round(self) -> float | None:
        """Start a chain for each generation with events due; returns how long until the
        next retry is due (None: only a wake-up brings more)."""
        entries = await self.store.pending_events(self.platform, limit=self.policy.batch)
        chains: dict[str, list[OutboxEntry]] = {}
        for entry in entries:
            chains.setdefault(entry.generation_id, []).append(entry)
        now = self._now()
        next_due: float | None = None
        for generation_id, chain in chains.items():
            if generation_id in self._busy:
                continue
            first = chain[0].next_attempt_at
            if first > now:
                next_due = first if next_due is None else min(next_due, first)
                continue
            task = asyncio.create_task(self._chain(chain), name=f"outbox-{generation_id}")
            self._busy[generation_id] = task
            task.add_done_callback(functools.partial(self._chain_done, generation_id))
        if not entries and not self._busy:
            self._empty.set()
        return None if next_due is None else max(0.0, next_due - now)

    def _chain_done(self, generation_id: str, _task: asyncio.Task[None]) -> None:
        self._busy.pop(generation_id, None)
        self._woken.set()

    async def _chain(self, chain: Sequence[OutboxEntry]) -> None:
        """One generation's due events, in order, stopping at the first to be retried."""
        outcomes: list[EventOutcome] = []
        generation_id = chain[0].generation_id
        try:
            generation = await self.store.get_generation(generation_id)
            if generation is None:  # deleted from under us: nothing left to show
                outcomes = [
                    EventOutcome(e.id, True, attempts=e.attempts, error="gone") for e in chain
                ]
                return
            links = list(await self.store.messages_for_generation(generation_id))
            for entry in chain:
                if entry.next_attempt_at > self._now():
                    break
                outcome = await self._hand_over(entry, generation, links)
                outcomes.append(outcome)
                if not outcome.done:
                    break
                links.extend(outcome.links)
        finally:
            await self.store.settle_events(outcomes)

    async def _hand_over(
        self, entry: OutboxEntry, generation: Generation, links: list[MessageLink]
    ) -> EventOutcome:
        blob = await self.store.event_blob(entry.id) if entry.has_blob else None
        event = decode(entry, generation, blob)

        async def record(link: MessageLink) -> None:
            await self.store.link_message(link)
            links.append(link)

        attempts = entry.attempts + 1
        try:
            async with self._calls:
                made = await self.notifier.notify(event, Notice(tuple(links), record))
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

    async def drained(self) -> None:
        for dispatcher in self.all:
            await dispatcher.drained()
