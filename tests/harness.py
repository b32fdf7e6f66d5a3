"""The real bot in-process: the composition root (:func:`tmbot.runtime.open_runtime`) on a
real SQLite file, the real vault, the real HTTP clients against the simulator, the scheduler,
the engine and a dispatcher per platform handing events to a :class:`Recorder`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from storage.sqlite import load_migrations
from tmbot.config import Config
from tmbot.domain import Actor, Place, tenant_of
from tmbot.engine import Engine
from tmbot.events import Accepted, Delivered, Event, Failed, Started
from tmbot.outbox import DispatchPolicy
from tmbot.ports import Notice
from tmbot.records import Generation, MessageLink
from tmbot.replies import GenerationAccepted
from tmbot.runtime import Runtime, open_runtime
from tmbot.scheduling import SchedulerSettings
from tmbot.simulator import Simulator
from tmbot.vault import Vault

PLATFORM = "test"
TENANT = tenant_of(PLATFORM, "T1")
PLACE = Place(platform=PLATFORM, channel="C1")

#: retries come fast in tests (the policy's shape, not its seconds, is under test)
FAST_DISPATCH = DispatchPolicy(backoff_base=0.01, backoff_cap=0.05)


class PlatformDown(Exception):
    """What a Recorder raises when told to fail (a chat platform's outage)."""


@dataclass
class Recorder:
    """A Notifier for any platform name that keeps every event and "posts" like a chat
    platform would: a card on ``Accepted`` (unless one is linked), an image on ``Delivered``
    (unless one is linked), each post kept in ``posts``. ``fail_next`` makes the next N
    calls raise; ``crash_after_post`` raises right after an image was posted and recorded
    (a crash between the platform's answer and the dispatcher's bookkeeping)."""

    platform: str = PLATFORM
    events: list[Event] = field(default_factory=list)
    posts: list[MessageLink] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (generation, event) tried
    fail_next: int = 0
    crash_after_post: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self, event: Event, notice: Notice) -> list[MessageLink]:
        async with self._changed:
            self.calls.append((event.generation.id, type(event).__name__))
            self._changed.notify_all()
        if self.fail_next > 0:
            self.fail_next -= 1
            raise PlatformDown("the platform is down")
        gen = event.generation
        made: list[MessageLink] = []
        match event:
            case Accepted() if notice.link("card") is None:
                made.append(self._post(gen, "card"))
            case Delivered() if notice.link("image") is None:
                link = self._post(gen, "image")
                await notice.record(link)
                if self.crash_after_post > 0:
                    self.crash_after_post -= 1
                    raise PlatformDown("crashed after posting")
                made.append(link)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        return made

    def _post(self, gen: Generation, kind: str) -> MessageLink:
        link = MessageLink(
            self.platform,
            gen.place.channel,
            f"{kind}-{gen.id}-{len(self.posts)}",
            gen.id,
            kind=kind,
        )
        self.posts.append(link)
        return link

    async def wait_for(self, predicate: object, *, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)  # type: ignore[arg-type]

    async def started(self, count: int) -> None:
        """Wait until ``count`` generations have been accepted by the provider."""
        await self.wait_for(lambda: sum(isinstance(e, Started) for e in self.events) >= count)

    async def ended(self, generation_id: str) -> Event:
        await self.wait_for(lambda: bool(self.final(generation_id)))
        return self.final(generation_id)[-1]

    def of(self, generation_id: str) -> list[Event]:
        return [e for e in self.events if e.generation.id == generation_id]

    def final(self, generation_id: str) -> list[Event]:
        return [e for e in self.of(generation_id) if isinstance(e, Delivered | Failed)]

    def images(self, generation_id: str) -> list[MessageLink]:
        return [p for p in self.posts if p.generation_id == generation_id and p.kind == "image"]

    def failure(self, generation_id: str) -> str:
        (event,) = self.final(generation_id)
        assert isinstance(event, Failed), event
        return event.reason


@dataclass
class Bot:
    runtime: Runtime
    recorder: Recorder

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.runtime.store

    @property
    def platform(self) -> str:
        return self.recorder.platform

    @property
    def place(self) -> Place:
        return Place(platform=self.platform, channel="C1")

    def actor(self, name: str, *, admin: bool = False) -> Actor:
        return Actor(
            platform=self.platform,
            tenant=tenant_of(self.platform, "T1"),
            user_id=name,
            is_admin=admin,
        )

    async def bind(self, name: str, key: str) -> None:
        await self.engine.execute(self.actor(name), f"key {key}", self.place)

    async def ask(self, name: str, text: str) -> Generation:
        reply = await self.engine.execute(self.actor(name), text, self.place)
        assert isinstance(reply, GenerationAccepted), reply
        return reply.generation

    async def settled(self, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            await self.runtime.settled()


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    sim: Simulator,
    *,
    settings: SchedulerSettings | None = None,
    timeout: float = 30.0,
    db_name: str = "bot.db",
    recorder: Recorder | None = None,
    resume: bool = True,
    policy: DispatchPolicy = FAST_DISPATCH,
    dispatch: bool = True,
    database_url: str | None = None,
) -> AsyncIterator[Bot]:
    """``dispatch=False`` runs the bot without its platform's dispatcher: events stay in the
    outbox (a process for another platform, or a platform down for the whole run).
    ``database_url`` replaces the SQLite file ``tmp_path/db_name`` (a PostgreSQL test's
    ``pg_url``)."""
    recorder = recorder or Recorder()
    config = Config(time_scale=sim.config.time_scale, http_timeout=timeout)
    async with open_runtime(
        config,
        {recorder.platform: recorder} if dispatch else {},
        database_url=database_url or f"sqlite:///{tmp_path / db_name}",
        tastemachine_url=sim.base_url,
        vtrix_url=sim.base_url,
        vault=_vault(tmp_path),
        scheduler_settings=settings,
        dispatch_policy=policy,
    ) as runtime:
        if resume:
            await runtime.engine.resume()
        yield Bot(runtime, recorder)


def _vault(tmp_path: Path) -> Vault:
    """One Fernet key per test directory, so a restarted bot can read what it stored."""
    key_file = tmp_path / "fernet.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
    return Vault(key_file.read_bytes())


def old_database(path: Path, *, migrations: int) -> sqlite3.Connection:
    """A SQLite file as an older tmbot left it: only the first ``migrations`` migrations
    applied and recorded, committed. Returns the open connection (as a context manager it
    commits what the caller adds; the caller closes it)."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL,"
        " name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for migration in load_migrations()[:migrations]:
        for statement in migration.statements():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version VALUES (?, ?, 0)", (migration.version, migration.name)
        )
    conn.commit()
    return conn
