"""Our side: the real bot, built by the one composition root (:func:`tmbot.runtime.open_runtime`).

Engine + SqliteStore (a temporary directory) + Vault (a freshly generated Fernet key) +
the real :class:`TasteMachineClient` over HTTP + the scheduler on a clock at the simulator's
time scale + the outbox dispatcher. Two thin, passive recorders are the only additions: a
notifier that notes when each event was handed over, and a provider wrapper that notes when
each request went out and came back (it delegates every call unchanged to the real client).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
        self._url_task: dict[str, str] = {}

    def _trace(self, task_id: str) -> Trace:
        trace = self.tasks.get(task_id)
        if trace is None:
            trace = self.tasks[task_id] = Trace(kid="", user="", task_id=task_id)
        return trace

    async def submit(self, key: ApiKey, spec: GenerationSpec) -> Submission:
        sent = time.monotonic()
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
    """Notes when each event reached the notifier; keeps no image bytes."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}
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
                self.delivered.setdefault(gen.id, now)
                self.task_of[gen.id] = gen.task_id
                self._end(gen.id)
            case Failed(reason=reason):
                self.failed.setdefault(gen.id, reason)
                self.task_of.setdefault(gen.id, gen.task_id)
                self._end(gen.id)
        return []

    def _end(self, generation_id: str) -> None:
        future = self.ended(generation_id)
        if not future.done():
            future.set_result(None)


async def run(scenario: Scenario, base_url: str, scale: float, workdir: Path) -> dict[str, Any]:
    rss_start = rss_now()
    keys, by_user = plan(scenario)
    provider = TracingProvider(TasteMachineClient(base_url))
    providers: dict[ProviderName, ImageProvider] = {ProviderName.TASTEMACHINE: provider}
    notifier = RecordingNotifier()
    actors: dict[str, Actor] = {}
    traces: list[Trace] = []
    gen_trace: dict[str, Trace] = {}
    # composed by the one composition root, as `tmbot console` is (default scheduler settings,
    # deadline 600 s); only the providers (wrapped) and the vault (a fresh key) are given
    try:
        async with open_runtime(
            Config(time_scale=scale),
            {PLATFORM: notifier},
            database_url=f"sqlite:///{workdir / 'bench.db'}",
            providers=providers,
            vault=Vault(Fernet.generate_key()),
        ) as runtime:
            engine = runtime.engine
            await engine.resume()
            for k, key in enumerate(keys):
                if scenario.users_per_key == 1:
                    actor = Actor(platform=PLATFORM, tenant=TENANT, user_id=f"u{k}-0")
                    await engine.bind_key(actor, ProviderName.TASTEMACHINE, ApiKey(key))
                    actors[actor.user_id] = actor
                else:  # a team key: the users have none of their own
                    tenant = tenant_of(PLATFORM, f"team{k}")
                    admin = Actor(platform=PLATFORM, tenant=tenant, user_id="admin", is_admin=True)
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
                return reply.generation.id

            async def one_at_a_time(briefs: list[Brief]) -> None:
                for brief in briefs:
                    await notifier.ended(await send(brief))

            async def everyone() -> None:
                if scenario.sequential:
                    await asyncio.gather(*(one_at_a_time(b) for b in by_user.values()))
                else:
                    ids = await asyncio.gather(*(send(b) for b in interleaved(by_user)))
                    await asyncio.gather(*(notifier.ended(i) for i in ids))

            run = await measure(everyone(), limit=scenario.timeout, rss_start=rss_start)
            if not run.timed_out:
                try:
                    async with asyncio.timeout(10):
                        await runtime.settled()  # the last events are handed over
                except TimeoutError:
                    pass
    finally:
        await provider.aclose()

    for gen_id, trace in gen_trace.items():
        trace.task_id = notifier.task_of.get(gen_id)
        trace.delivered = notifier.delivered.get(gen_id)
        trace.failed = notifier.failed.get(gen_id)
        seen = provider.tasks.get(trace.task_id or "")
        if seen is not None:
            for name in (
                "submit_sent",
                "submit_done",
                "polls",
                "last_running_sent",
                "done_sent",
                "done_recv",
                "download_sent",
                "download_done",
            ):
                setattr(trace, name, getattr(seen, name))
    return {
        "side": "ours",
        "scenario": scenario.name,
        "scale": scale,
        **run.fields(),
        "keys": key_briefs(keys, scenario),
        "traces": [t.to_json() for t in traces],
        "client_errors": dict(provider.errors),
        "queued_events": notifier.queued_events,
        "max_queue_position": notifier.max_position,
    }
