"""Our side: the real bot, built by the one composition root (:func:`tmbot.runtime.open_runtime`).

Engine + SqliteStore (a temporary directory) + Vault (a freshly generated Fernet key) +
the real :class:`TasteMachineClient` over HTTP + the scheduler on a clock at the simulator's
time scale + the outbox dispatcher. Two thin, passive recorders are the only additions: a
notifier that notes when each event was handed over, and a provider wrapper that notes when
each request went out and came back (it delegates every call unchanged to the real client).

Given a :class:`Shared`, the worker is one of several processes on one database
(:mod:`benchmarks.stores`): the keys, the database and the secret come from the orchestrator,
it sends its share of the briefs, and it steps with the others through :class:`Control`.
Its result then holds its raw records (:func:`merge` joins those of every process).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet

from benchmarks.plan import Brief, Trace, interleaved, key_briefs, plan
from benchmarks.probes import measure, rss_now
from benchmarks.scenarios import Scenario
from tmbot.config import Config
from tmbot.domain import (
    Actor,
    ApiKey,
    GenerationSpec,
    Place,
    ProviderName,
    Submission,
    TaskState,
    tenant_of,
)
from tmbot.domain import TaskStatus as Status
from tmbot.errors import ProviderError
from tmbot.events import Delivered, Event, Failed, Queued, Started
from tmbot.ports import Notice
from tmbot.providers import TasteMachineClient
from tmbot.providers.base import ImageProvider
from tmbot.records import KeyScope, MessageLink
from tmbot.replies import GenerationAccepted
from tmbot.runtime import open_runtime
from tmbot.simulator import key_id
from tmbot.vault import Vault

PLATFORM = "bench"
TENANT = tenant_of(PLATFORM, "bench")
PLACE = Place(platform=PLATFORM, channel="bench")


class TracingProvider:
    """Delegates to a real provider and notes request times per task (real monotonic)."""

    def __init__(self, inner: ImageProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.tasks: dict[str, Trace] = {}
        self.errors: Counter[str] = Counter()
        self.sent: list[float] = []  # every create and poll, when it was sent
        self._url_task: dict[str, str] = {}

    def _trace(self, task_id: str) -> Trace:
        trace = self.tasks.get(task_id)
        if trace is None:
            trace = self.tasks[task_id] = Trace(kid="", user="", task_id=task_id)
        return trace

    async def submit(self, key: ApiKey, spec: GenerationSpec) -> Submission:
        sent = time.monotonic()
        self.sent.append(sent)
        try:
            submission = await self.inner.submit(key, spec)
        except ProviderError as err:
            self.errors[f"submit {type(err).__name__}"] += 1
            raise
        trace = self._trace(submission.task_id)
        trace.submit_sent, trace.submit_done = sent, time.monotonic()
        return submission

    async def poll(self, key: ApiKey, task_id: str) -> TaskState:
        sent = time.monotonic()
        self.sent.append(sent)
        trace = self._trace(task_id)
        trace.polls += 1
        try:
            state = await self.inner.poll(key, task_id)
        except ProviderError as err:
            self.errors[f"poll {type(err).__name__}"] += 1
            raise
        if state.status is Status.RUNNING:
            trace.last_running_sent = sent
        elif trace.done_sent is None:
            trace.done_sent, trace.done_recv = sent, time.monotonic()
            for url in state.image_urls:
                self._url_task[url] = task_id
        return state

    async def download(self, url: str) -> bytes:
        trace = self.tasks.get(self._url_task.get(url, ""))
        sent = time.monotonic()
        try:
            image = await self.inner.download(url)
        except ProviderError as err:
            self.errors[f"download {type(err).__name__}"] += 1
            raise
        if trace is not None:
            trace.download_sent, trace.download_done = sent, time.monotonic()
        return image

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingNotifier:
    """Notes when each event reached the notifier; keeps no image bytes.

    With ``posts``, it treats a Delivered event as a real notifier treats posting the image:
    skipped when the generation already has an image link (posted before a process died),
    else the link is recorded at once (:class:`tmbot.ports.Notice`)."""

    def __init__(self, said: Callable[[str], None] | None = None, *, posts: bool = False) -> None:
        self.said = said  # told "delivered ID", "failed ID" as it happens
        self.posts = posts
        self.already = 0  # Delivered events skipped: the image was posted before
        self.delivered: dict[str, float] = {}
        self.handed: Counter[str] = Counter()  # Delivered events handed over, per generation
        self.failed: dict[str, str] = {}
        self.task_of: dict[str, str | None] = {}
        self.queued_events = 0
        self.max_position = 0
        self._ended: dict[str, asyncio.Future[None]] = {}

    def ended(self, generation_id: str) -> asyncio.Future[None]:
        future = self._ended.get(generation_id)
        if future is None:
            future = self._ended[generation_id] = asyncio.get_running_loop().create_future()
        return future

    async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
        now = time.monotonic()
        gen = event.generation
        match event:
            case Queued(position=position):
                self.queued_events += 1
                self.max_position = max(self.max_position, position)
            case Started():
                self.task_of[gen.id] = gen.task_id
            case Delivered():
                if self.posts:
                    if notice.link("image") is not None:
                        self.already += 1
                        if self.said is not None:  # its poster may have died before saying
                            self.said(f"posted-before {gen.id}")
                        self._end(gen.id)
                        return []
                    await notice.record(
                        MessageLink(PLATFORM, PLACE.channel, f"image-{gen.id}", gen.id, "image")
                    )
                self.delivered.setdefault(gen.id, now)
                self.handed[gen.id] += 1
                if self.said is not None:
                    self.said(f"delivered {gen.id}")
                self.task_of[gen.id] = gen.task_id
                self._end(gen.id)
            case Failed(reason=reason):
                self.failed.setdefault(gen.id, reason)
                if self.said is not None:
                    self.said(f"failed {gen.id}")
                self.task_of.setdefault(gen.id, gen.task_id)
                self._end(gen.id)
        return []

    def record(self) -> dict[str, Any]:
        """What this notifier saw, by generation (for :func:`merge`)."""
        return {"delivered": self.delivered, "failed": self.failed, "task_of": self.task_of}

    def _end(self, generation_id: str) -> None:
        future = self.ended(generation_id)
        if not future.done():
            future.set_result(None)


class Control(Protocol):
    """How a worker that is one of several steps with the others (through the orchestrator)."""

    async def step(self, said: str) -> None:
        """Tell the orchestrator ``said`` and wait until it says to go on."""

    def say(self, line: str) -> None:
        """Tell the orchestrator ``line`` (an event: nothing is waited for)."""


@dataclass(frozen=True)
class Shared:
    """One of ``count`` worker processes on one database: this one is ``index``, sends every
    ``count``-th brief (round-robin) and, when it is the first, binds the keys."""

    database_url: str
    secret: bytes  # the vault's Fernet key: the same in every process
    keys: list[str]
    index: int
    count: int
    control: Control


#: a trace's fields that the provider wrapper records (per task, in the process that polls)
TASK_FIELDS = (
    "submit_sent",
    "submit_done",
    "polls",
    "last_running_sent",
    "done_sent",
    "done_recv",
    "download_sent",
    "download_done",
)


def _join(seen: list[Trace]) -> Trace:
    """One task as every process that sent requests for it saw it (after a takeover two
    processes poll it): polls add up; the earliest create and 'done' poll count."""
    out = Trace(kid="", user="", task_id=seen[0].task_id, polls=sum(t.polls for t in seen))
    created = [t for t in seen if t.submit_sent is not None]
    if created:
        out.submit_sent, out.submit_done = created[0].submit_sent, created[0].submit_done
    running = [t.last_running_sent for t in seen if t.last_running_sent is not None]
    out.last_running_sent = max(running, default=None)
    done = sorted((t for t in seen if t.done_sent is not None), key=lambda t: t.done_sent or 0)
    if done:
        out.done_sent, out.done_recv = done[0].done_sent, done[0].done_recv
    fetched = [t for t in seen if t.download_done is not None]
    if fetched:
        last = max(fetched, key=lambda t: t.download_done or 0)
        out.download_sent, out.download_done = last.download_sent, last.download_done
    return out


def merge(
    traces: Iterable[Trace],
    notified: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Trace]],
) -> None:
    """Fill in each brief's trace (from the process that accepted it) with what every
    process saw: the notifiers' records (:meth:`RecordingNotifier.record`, by generation;
    the earliest hand-over counts) and the provider wrappers' (by task)."""
    delivered: dict[str, float] = {}
    failed: dict[str, str] = {}
    task_of: dict[str, str] = {}
    for record in notified:
        for gen_id, at in record["delivered"].items():
            delivered[gen_id] = min(at, delivered.get(gen_id, at))
        for gen_id, reason in record["failed"].items():
            failed.setdefault(gen_id, reason)
        for gen_id, task_id in record["task_of"].items():
            if task_id is not None:
                task_of.setdefault(gen_id, task_id)
    seen: dict[str, list[Trace]] = {}
    for by_task in tasks:
        for task_id, trace in by_task.items():
            seen.setdefault(task_id, []).append(trace)
    for trace in traces:
        gen_id = trace.generation_id or ""
        trace.task_id = task_of.get(gen_id)
        trace.delivered = delivered.get(gen_id)
        trace.failed = failed.get(gen_id)
        if trace.task_id in seen:
            joined = _join(seen[trace.task_id])
            for name in TASK_FIELDS:
                setattr(trace, name, getattr(joined, name))


def trace_of(data: Mapping[str, Any]) -> Trace:
    return Trace(**data)


async def run(
    scenario: Scenario,
    base_url: str,
    scale: float,
    workdir: Path,
    shared: Shared | None = None,
) -> dict[str, Any]:
    rss_start = rss_now()
    keys, by_user = plan(scenario, shared.keys if shared is not None else None)
    provider = TracingProvider(TasteMachineClient(base_url))
    providers: dict[ProviderName, ImageProvider] = {ProviderName.TASTEMACHINE: provider}
    notifier = RecordingNotifier(
        shared.control.say if shared is not None else None, posts=shared is not None
    )
    actors: dict[str, Actor] = {}
    traces: list[Trace] = []
    gen_trace: dict[str, Trace] = {}
    binds = shared is None or shared.index == 0  # the keys are bound once
    # composed by the one composition root, as `tmbot console` is (default scheduler settings,
    # deadline 600 s); only the providers (wrapped) and the vault (a fresh key) are given
    try:
        async with open_runtime(
            Config(time_scale=scale),
            {PLATFORM: notifier},
            database_url=(shared.database_url if shared else f"sqlite:///{workdir / 'bench.db'}"),
            providers=providers,
            vault=Vault(shared.secret if shared else Fernet.generate_key()),
        ) as runtime:
            engine = runtime.engine
            await engine.resume()
            for k, key in enumerate(keys):
                if scenario.users_per_key == 1:
                    actor = Actor(platform=PLATFORM, tenant=TENANT, user_id=f"u{k}-0")
                    if binds:
                        await engine.bind_key(actor, ProviderName.TASTEMACHINE, ApiKey(key))
                    actors[actor.user_id] = actor
                else:  # a team key: the users have none of their own
                    tenant = tenant_of(PLATFORM, f"team{k}")
                    admin = Actor(platform=PLATFORM, tenant=tenant, user_id="admin", is_admin=True)
                    if binds:
                        await engine.bind_key(
                            admin, ProviderName.TASTEMACHINE, ApiKey(key), scope=KeyScope.TEAM
                        )
                    for u in range(scenario.users_per_key):
                        actors[f"u{k}-{u}"] = Actor(
                            platform=PLATFORM, tenant=tenant, user_id=f"u{k}-{u}"
                        )

            async def send(brief: Brief) -> str:
                trace = Trace(kid=key_id(brief.key), user=brief.user, requested=time.monotonic())
                traces.append(trace)
                reply = await engine.execute(actors[brief.user], brief.text, PLACE)
                assert isinstance(reply, GenerationAccepted)
                trace.generation_id = reply.generation.id
                gen_trace[reply.generation.id] = trace
                if shared is not None:
                    shared.control.say(f"accepted {reply.generation.id}")
                return reply.generation.id

            async def one_at_a_time(briefs: list[Brief]) -> None:
                for brief in briefs:
                    await notifier.ended(await send(brief))

            async def everyone() -> None:
                if shared is not None:  # this process's share; any of them may deliver it
                    mine = interleaved(by_user)[shared.index :: shared.count]
                    await asyncio.gather(*(send(b) for b in mine))
                    await shared.control.step(f"sent {len(mine)}")  # every share is stored
                    await runtime.settled()
                elif scenario.sequential:
                    await asyncio.gather(*(one_at_a_time(b) for b in by_user.values()))
                else:
                    ids = await asyncio.gather(*(send(b) for b in interleaved(by_user)))
                    await asyncio.gather(*(notifier.ended(i) for i in ids))

            if shared is not None:
                await shared.control.step("ready")  # every process is up, the keys are bound
            run = await measure(everyone(), limit=scenario.timeout, rss_start=rss_start)
            if not run.timed_out:
                try:
                    async with asyncio.timeout(10):
                        await runtime.settled()  # the last events are handed over
                except TimeoutError:
                    pass
            if shared is not None:
                await shared.control.step("settled")  # none leaves while others still work
    finally:
        await provider.aclose()

    if shared is None:
        merge(traces, [notifier.record()], [provider.tasks])
    result: dict[str, Any] = {
        "side": "ours",
        "scenario": scenario.name,
        "scale": scale,
        **run.fields(),
        "keys": key_briefs(keys, scenario),
        "traces": [t.to_json() for t in traces],
        "client_errors": dict(provider.errors),
        "queued_events": notifier.queued_events,
        "max_queue_position": notifier.max_position,
        "handed": dict(notifier.handed),
        "already_posted": notifier.already,
    }
    if shared is not None:  # the raw records, for merge() across the processes
        result["notified"] = notifier.record()
        result["tasks"] = {k: t.to_json() for k, t in provider.tasks.items()}
        result["sent"] = provider.sent
    return result
