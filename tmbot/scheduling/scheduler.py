"""Runs generations against the providers within each key's limits.

Per key (a *lane*): one request budget shared by creates and polls (:mod:`.ratelimit`), a
concurrency cap with a fair queue across users (:mod:`.fairqueue`) and adaptive polling
(:mod:`.polling`). Faults: a 429 slows the whole key for its Retry-After; 5xx, timeouts and
connection errors retry with capped exponential backoff and full jitter; a malformed answer
is retried a bounded number of times; a task past the deadline fails.

The scheduler never touches storage: it reports each step to :class:`JobHooks` (the engine),
which stores the change before the scheduler goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tmbot.capabilities import Limits, caps
from tmbot.clock import Clock
from tmbot.domain import ApiKey, GenerationSpec, ProviderName, Submission, TaskState, TaskStatus
from tmbot.errors import (
    DownloadFailed,
    GenerationTimedOut,
    MalformedResponse,
    NotResent,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TaskFailed,
    TmbotError,
)
from tmbot.providers.base import ImageProvider
from tmbot.scheduling.fairqueue import FairSlots
from tmbot.scheduling.polling import PollPlanner, PollPolicy, Profile
from tmbot.scheduling.ratelimit import CREATE, POLL, RateWindow, Value

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_RESENT = (
    "it may have reached the provider, so it was not sent again (to avoid paying twice); "
    "please ask again."
)


@dataclass(frozen=True)
class Job:
    """One generation as the scheduler sees it. ``task_id`` / ``image_url`` are set when
    resuming work that had already reached the provider."""

    generation_id: str
    lane_id: str
    user: str  # fairness key: requests are served round-robin across users
    key: ApiKey
    spec: GenerationSpec
    task_id: str | None = None
    estimate: float | None = None
    elapsed: float = 0.0  # provider seconds since submission, when resuming
    image_url: str | None = None

    @property
    def provider(self) -> ProviderName:
        return self.spec.provider

    @property
    def profile(self) -> Profile:
        return (self.spec.provider.value, self.spec.model, self.spec.resolution)


def worth_reporting(last: int | None, position: int) -> bool:
    """Whether a waiter hears about its new queue position: the first one, then only when it
    has improved by a fifth or reaches the last three, so a long queue draining costs each
    waiter a few dozen updates rather than one per slot freed."""
    if last is None:
        return True
    if position >= last:
        return False
    return position <= 3 or position <= last * 0.8


class JobHooks(Protocol):
    """Where the scheduler reports progress. Each call returns once the change is stored."""

    async def queued(self, job: Job, position: int, eta: float | None) -> None: ...

    async def submitting(self, job: Job) -> None: ...

    async def submitted(self, job: Job, submission: Submission) -> None: ...

    async def completed(self, job: Job, state: TaskState) -> None: ...

    async def downloaded(self, job: Job, state: TaskState, image: bytes) -> None: ...

    async def failed(self, job: Job, error: TmbotError) -> None: ...


@dataclass(frozen=True)
class SchedulerSettings:
    deadline: float = 600.0  # provider seconds a task may run before it is failed
    budget_reserve: int = 2  # requests per window kept unused below the provider's limit
    window_margin: float = 1.0  # provider seconds added to the window for clock skew
    max_malformed: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    default_retry_after: float = 5.0
    download_attempts: int = 4
    #: provider seconds a create keeps retrying while the provider cannot be reached at all
    #: (connection refused or failed: nothing was sent, nothing charged) before it fails
    unreachable_limit: float = 45.0
    poll: PollPolicy = field(default_factory=PollPolicy)
    #: per-provider overrides of the capability table's limits (e.g. Vtrix publishes none)
    limits: Mapping[ProviderName, Limits] = field(default_factory=dict)


class KeyLane:
    """The limits of one API key."""

    def __init__(self, lane_id: str, limits: Limits, *, clock: Clock, settings: SchedulerSettings):
        self.lane_id = lane_id
        self.limits = limits
        self.rate: RateWindow | None = None
        if limits.requests_per_window:
            self.rate = RateWindow(
                clock=clock,
                budget=max(1, limits.requests_per_window - settings.budget_reserve),
                window=limits.window_seconds,
                margin=settings.window_margin,
            )
        self.slots = FairSlots(limits.max_concurrent)

    async def permit(self, priority: int = POLL, value: Value | None = None) -> None:
        """Wait for the key's budget. ``value`` ranks a poll against the others waiting: its
        chance of finding the task done."""
        if self.rate is not None:
            # while briefs wait for a slot, a poll leaves room for one create, so the slot a
            # finished task frees is filled at once rather than after the next token
            reserve = 1 if priority == POLL and self.slots.waiting else 0
            await self.rate.acquire(priority, reserve, value)

    def slow_down(self, seconds: float) -> None:
        if self.rate is not None:
            self.rate.block_for(seconds)


class Scheduler:
    def __init__(
        self,
        *,
        providers: Mapping[ProviderName, ImageProvider],
        clock: Clock,
        settings: SchedulerSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._providers = providers
        self._clock = clock
        self.settings = settings or SchedulerSettings()
        self.planner = PollPlanner(self.settings.poll)
        self._lanes: dict[str, KeyLane] = {}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._side_tasks: set[asyncio.Task[None]] = set()
        #: lane -> when (provider monotonic) a previous owner sent requests, until it is made
        self._inherited: dict[str, list[float]] = {}

    # --- lanes -------------------------------------------------------------------------

    def lane(self, job: Job) -> KeyLane:
        lane = self._lanes.get(job.lane_id)
        if lane is None:
            limits = self.settings.limits.get(job.provider) or caps(job.provider).limits
            lane = KeyLane(job.lane_id, limits, clock=self._clock, settings=self.settings)
            self._lanes[job.lane_id] = lane
            inherited = self._inherited.pop(job.lane_id, None)
            if inherited and lane.rate is not None:
                now = self._clock.monotonic()
                lane.rate.seed(now - sent for sent in inherited)
        return lane

    def sent_ages(self, lane_id: str) -> list[float]:
        """How long ago (provider seconds) each request of the lane's current window was
        sent (none when this process has not run the lane)."""
        lane = self._lanes.get(lane_id)
        return lane.rate.ages() if lane is not None and lane.rate is not None else []

    def inherit(self, lane_id: str, ages: Sequence[float]) -> None:
        """Requests the lane's previous owner (another process) sent ``ages`` provider
        seconds ago: counted in its window, so its limits hold across a takeover."""
        lane = self._lanes.get(lane_id)
        if lane is None:
            now = self._clock.monotonic()
            self._inherited[lane_id] = [now - age for age in ages]
        elif lane.rate is not None:
            lane.rate.seed(ages)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)

    # --- the run loop --------------------------------------------------------------------

    async def run(self, job: Job, hooks: JobHooks) -> None:
        """Take one job to delivered or failed. Cancellation leaves the stored state as it
        is, so a later start resumes from there."""
        try:
            await self._run(job, hooks)
        except asyncio.CancelledError:
            raise
        except TmbotError as err:
            await hooks.failed(job, err)
        except Exception:
            log.exception("generation %s failed on an unexpected error", job.generation_id)
            await hooks.failed(
                job, TmbotError("Something went wrong inside tmbot; the error was logged.")
            )

    async def _run(self, job: Job, hooks: JobHooks) -> None:
        lane = self.lane(job)
        provider = self._providers[job.provider]
        if job.image_url is not None:
            state = TaskState(
                task_id=job.task_id or "", status=TaskStatus.COMPLETE, image_urls=(job.image_url,)
            )
        else:
            state = await self._until_done(job, hooks, lane, provider)
            if state.status is TaskStatus.FAILED:
                reason = state.error or "The provider reported the task failed."
                await hooks.failed(job, TaskFailed(reason))
                return
            await hooks.completed(job, state)
        image = await self._download(job, lane, provider, state)
        await hooks.downloaded(job, state, image)

    async def _until_done(
        self, job: Job, hooks: JobHooks, lane: KeyLane, provider: ImageProvider
    ) -> TaskState:
        """Hold a concurrency slot from submission until the task is seen to end."""
        if job.task_id is not None:
            lane.slots.occupy()  # already running at the provider: never queue it
            try:
                return await self._poll(job, lane, provider, job.task_id, job.estimate, job.elapsed)
            finally:
                lane.slots.release()

        async with lane.slots.slot(job.user, self._position_reporter(job, lane, hooks)):
            # Take the first request permit before marking the generation as being sent,
            # so a restart while we wait for the key's budget does not count it as sent.
            await lane.permit(CREATE)
            await hooks.submitting(job)
            started = self._clock.monotonic()
            submission, _ = await self._call(
                lane,
                lambda: provider.submit(job.key, job.spec),
                deadline=started + self._limit(),
                create=True,
                permit_held=True,
            )
            await hooks.submitted(job, submission)
            if submission.state is not None and submission.state.status is not TaskStatus.RUNNING:
                return submission.state
            return await self._poll(
                job, lane, provider, submission.task_id, submission.estimated_seconds, 0.0
            )

    def _position_reporter(self, job: Job, lane: KeyLane, hooks: JobHooks) -> Callable[[int], None]:
        last: int | None = None

        def on_position(position: int) -> None:
            nonlocal last
            if worth_reporting(last, position):
                last = position
                self._spawn(hooks.queued(job, position, self._eta(lane, job, position)))

        return on_position

    def _limit(self) -> float:
        return self.settings.deadline

    def _eta(self, lane: KeyLane, job: Job, position: int) -> float | None:
        cap = lane.limits.max_concurrent
        if not cap:
            return None
        early, late = self.planner.expected_window(job.profile, None)
        rounds = (position - 1) // cap + 1
        return rounds * (early + late) / 2

    async def _poll(
        self,
        job: Job,
        lane: KeyLane,
        provider: ImageProvider,
        task_id: str,
        estimate: float | None,
        elapsed: float,
    ) -> TaskState:
        clock = self._clock
        submitted = clock.monotonic() - elapsed
        deadline = submitted + self.settings.deadline
        seen_running = 0.0
        polls = 0
        while True:
            now = clock.monotonic()
            if now >= deadline and polls:
                minutes = self.settings.deadline / 60
                raise GenerationTimedOut(
                    f"The provider was still working on this image after {minutes:g} minutes, "
                    "so tmbot gave up on it; try again later."
                )
            wait = self.planner.next_delay(
                job.profile, estimate, elapsed=now - submitted, polls=polls
            )
            if polls:
                await clock.sleep(min(wait, deadline - now))
                if clock.monotonic() >= deadline:
                    continue  # one last look is not worth a request past the deadline
            else:  # a resumed task past its deadline still gets one look before giving up
                await clock.sleep(max(0.0, min(wait, deadline - now)))

            def chance(seen: float = seen_running) -> float:
                return self.planner.done_chance(
                    job.profile, estimate, elapsed=clock.monotonic() - submitted, seen_running=seen
                )

            state, sent_at = await self._call(
                lane, lambda: provider.poll(job.key, task_id), deadline=deadline, value=chance
            )
            polls += 1
            if state.status is TaskStatus.RUNNING:
                seen_running = sent_at - submitted
                continue
            if elapsed == 0.0:  # a resumed task's duration includes our downtime: not data
                self.planner.observe(
                    job.profile,
                    estimate,
                    seen_running_at=seen_running,
                    seen_done_at=sent_at - submitted,
                )
            return state

    async def _call(
        self,
        lane: KeyLane,
        request: Callable[[], Awaitable[T]],
        *,
        deadline: float,
        create: bool = False,
        permit_held: bool = False,
        value: Value | None = None,
    ) -> tuple[T, float]:
        """One API request within the key's budget, retried on transient faults until the
        deadline. Returns the answer and the provider time it was sent.

        A create is never sent again once the provider may have acted on it (a garbled 2xx
        answer, a read timeout, a gateway timeout): that would make and bill a second
        image. Those fail the generation instead; the person can ask again."""
        failures = 0
        malformed = 0
        while True:
            if not permit_held:
                await lane.permit(CREATE if create else POLL, value)
            permit_held = False
            sent_at = self._clock.monotonic()
            try:
                return await request(), sent_at
            except RateLimited as err:
                lane.slow_down(err.retry_after or self.settings.default_retry_after)
                last: ProviderError = err
            except MalformedResponse as err:
                if create:
                    raise NotResent(f"{err.user_message.removesuffix('.')}; {NOT_RESENT}") from None
                malformed += 1
                if malformed > self.settings.max_malformed:
                    raise
                last = err
                failures += 1
                await self._backoff(failures, deadline)
            except ProviderUnavailable as err:
                if create and err.maybe_received:
                    raise NotResent(f"{err.user_message.removesuffix('.')}; {NOT_RESENT}") from None
                if create and err.unreachable:  # say so in seconds, not at the task deadline
                    deadline = min(deadline, sent_at + self.settings.unreachable_limit)
                last = err
                failures += 1
                await self._backoff(failures, deadline)
            if self._clock.monotonic() >= deadline:
                raise last

    async def _backoff(self, failures: int, deadline: float) -> None:
        cap = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** (failures - 1))
        delay = self._rng.uniform(0, cap)  # full jitter
        await self._clock.sleep(min(delay, max(0.0, deadline - self._clock.monotonic())))

    async def _download(
        self, job: Job, lane: KeyLane, provider: ImageProvider, state: TaskState
    ) -> bytes:
        if not state.image_urls:
            raise MalformedResponse("The provider said the image was ready but sent no link.")
        url = state.image_urls[0]
        task_id = state.task_id or job.task_id
        refreshed = False
        attempt = 0
        while True:
            try:
                return await provider.download(url)
            except DownloadFailed as err:
                attempt += 1
                if err.expired and not refreshed and task_id:
                    # the link may have expired while we were down: ask for a fresh one
                    refreshed = True
                    fresh, _ = await self._call(
                        lane,
                        lambda: provider.poll(job.key, task_id),
                        deadline=self._clock.monotonic() + self.settings.backoff_cap,
                    )
                    if fresh.image_urls and fresh.image_urls[0] != url:
                        url = fresh.image_urls[0]
                        continue
                    raise
                if not err.transient or attempt >= self.settings.download_attempts:
                    raise
                await self._backoff(attempt, self._clock.monotonic() + self.settings.backoff_cap)
