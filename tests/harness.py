"""The real engine in-process: real simulator over HTTP, real SQLite file, real vault."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from storage.sqlite import SqliteStore
from tmbot.clock import Clock
from tmbot.domain import Actor, Place
from tmbot.engine import Engine
from tmbot.events import Delivered, Event, Failed, Started
from tmbot.providers import build_providers
from tmbot.records import Generation
from tmbot.scheduling.scheduler import Scheduler, SchedulerSettings
from tmbot.simulator import Simulator
from tmbot.vault import Vault

PLACE = Place(platform="test", channel="C1")


@dataclass
class Recorder:
    """A Notifier that keeps every event."""

    events: list[Event] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def started(self, count: int) -> None:
        """Wait until ``count`` generations have been accepted by the provider."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: sum(isinstance(e, Started) for e in self.events) >= count
            )

    def final(self, generation_id: str) -> list[Event]:
        return [
            e
            for e in self.events
            if isinstance(e, Delivered | Failed) and e.generation.id == generation_id
        ]

    def failure(self, generation_id: str) -> str:
        (event,) = self.final(generation_id)
        assert isinstance(event, Failed), event
        return event.reason


@dataclass
class Bot:
    engine: Engine
    recorder: Recorder
    store: SqliteStore

    @staticmethod
    def actor(name: str, *, admin: bool = False) -> Actor:
        return Actor(platform="test", tenant="T1", user_id=name, is_admin=admin)

    async def bind(self, name: str, key: str) -> None:
        await self.engine.execute(self.actor(name), f"key {key}", PLACE)

    async def ask(self, name: str, text: str) -> Generation:
        reply = await self.engine.execute(self.actor(name), text, PLACE)
        assert reply.generation is not None, reply.text
        return reply.generation


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    sim: Simulator,
    *,
    settings: SchedulerSettings | None = None,
    timeout: float = 30.0,
    db_name: str = "bot.db",
    recorder: Recorder | None = None,
) -> AsyncIterator[Bot]:
    store = await SqliteStore.open(tmp_path / db_name)
    providers = build_providers(
        tastemachine_url=sim.base_url, vtrix_url=sim.base_url, timeout=timeout
    )
    clock = Clock(scale=sim.config.time_scale)
    recorder = recorder or Recorder()
    engine = Engine(
        store=store,
        vault=_vault(tmp_path),
        providers=providers,
        notifier=recorder,
        clock=clock,
        scheduler=Scheduler(providers=providers, clock=clock, settings=settings),
    )
    try:
        yield Bot(engine, recorder, store)
    finally:
        await engine.aclose()
        for provider in providers.values():
            await provider.aclose()
        await store.close()


def _vault(tmp_path: Path) -> Vault:
    """One Fernet key per test directory, so a restarted bot can read what it stored."""
    key_file = tmp_path / "fernet.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
    return Vault(key_file.read_bytes())
