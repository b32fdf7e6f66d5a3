"""The one composition root: store, vault, providers, scheduler, engine and one dispatcher
per platform, built from a :class:`~tmbot.config.Config` and closed in reverse order.

``tmbot …`` (:mod:`tmbot.cli`), the tests and the benchmark all build the bot here. This is
the one module of the core that names a concrete store (ruff's banned-api rule exempts it,
as it does :mod:`tmbot.cli`); nothing else in ``tmbot/`` may.

Resuming unfinished work is left to the caller (``runtime.engine.resume()``), to be called
once the adapters are connected (Discord's ``setup_hook``, Slack's app start, the console at
once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from storage import Database, Dialect, database, open_coordinator, open_store
from tmbot.clock import Clock
from tmbot.config import Config
from tmbot.domain import ProviderName
from tmbot.engine import Engine
from tmbot.errors import EngineLockLost
from tmbot.health import Check
from tmbot.outbox import Dispatcher, Dispatchers, DispatchPolicy
from tmbot.ports import Coordinator, Notifier, Store
from tmbot.providers import build_providers
from tmbot.providers.base import ImageProvider
from tmbot.redact import RedactingFilter
from tmbot.scheduling import Scheduler, SchedulerSettings
from tmbot.vault import Vault

log = logging.getLogger(__name__)

#: the one line logged when the store loses the engine lock (and the sentence of the error)
LOCK_LOST = "lost the database's engine lock; stopping so a supervisor restarts tmbot"

#: seconds between looks at the store while other processes finish the work it holds
SETTLE_LOOK = 0.5


@dataclass(frozen=True)
class Runtime:
    engine: Engine
    store: Store
    dispatchers: Dispatchers
    database: Database
    coordinator: Coordinator

    def dispatcher(self, platform: str) -> Dispatcher:
        found = self.dispatchers.get(platform)
        if found is None:
            raise KeyError(f"no dispatcher for platform {platform!r}")
        return found

    def readiness(self) -> dict[str, Check]:
        """The core's readiness checks (adapters add theirs): the store answers, the
        engine is open."""

        async def engine() -> bool:
            return not self.engine.closed

        return {"store": self.store.ping, "engine": engine}

    async def settled(self) -> None:
        """Return once every generation this process runs has ended and every event of its
        platforms has been handed over (or given up). Sharing the store with other
        processes, once no generation in the store is unfinished either (work handed to
        another process, or left by one that died, is taken over and ended first)."""
        while True:
            await self.engine.wait_idle()
            await self.dispatchers.drained()
            if self.coordinator.sole:
                return
            if not await self.store.unfinished_generations():
                await self.dispatchers.drained()  # the last ones' events, wherever made
                return
            await asyncio.sleep(SETTLE_LOOK)  # another process (or a takeover) ends it


@asynccontextmanager
async def open_runtime(
    config: Config,
    notifiers: Mapping[str, Notifier],
    *,
    redactor: RedactingFilter | None = None,
    database_url: str | None = None,
    tastemachine_url: str | None = None,
    vtrix_url: str | None = None,
    providers: Mapping[ProviderName, ImageProvider] | None = None,
    vault: Vault | None = None,
    scheduler_settings: SchedulerSettings | None = None,
    dispatch_policy: DispatchPolicy | None = None,
    now: Callable[[], float] = time.time,
) -> AsyncIterator[Runtime]:
    """A running bot: one engine, and a dispatcher per entry of ``notifiers`` (platform name
    -> notifier) draining that platform's outbox. ``providers`` and ``vault`` replace the
    ones the config would build (the benchmark wraps the real clients).

    When the store loses the database's engine lock (PostgreSQL: the connection holding it
    ended), one error line is logged, the engine and the dispatchers stop at once, the task
    that opened the runtime is cancelled, and leaving the runtime raises
    :class:`~tmbot.errors.EngineLockLost` (``tmbot`` exits 1, for a supervisor to restart it).
    """
    target = database(database_url or config.database_url)
    if vault is None and target.dialect is Dialect.POSTGRESQL:
        # PostgreSQL: the secret must come from TMBOT_SECRET_KEY; said before connecting
        vault = Vault.from_environment(env=os.environ, key_file=None)
    # providers first: a bad URL is refused before anything is opened that needs closing
    owned = providers is None
    clients = providers or build_providers(
        tastemachine_url=tastemachine_url or config.tastemachine_url,
        vtrix_url=vtrix_url or config.vtrix_url,
        timeout=config.http_timeout,
    )
    try:
        # one engine per SQLite file; engines share a PostgreSQL database
        store = await open_store(target, exclusive=True)
        try:
            if vault is None:
                vault = Vault.from_environment(
                    env=os.environ,
                    key_file=target.key_file,
                    stored_keys=bool(await store.list_keys()),
                )
            clock = Clock(scale=config.time_scale)
            scheduler = Scheduler(
                providers=clients,
                clock=clock,
                settings=scheduler_settings or SchedulerSettings(deadline=config.deadline_seconds),
            )
            dispatchers = Dispatchers()
            coordinator = open_coordinator(store)
            engine = Engine(
                store=store,
                vault=vault,
                providers=clients,
                clock=clock,
                scheduler=scheduler,
                on_secret=redactor.register if redactor is not None else None,
                now=now,
                stored=dispatchers.stored,
                coordinator=coordinator,
            )
            for platform, notifier in notifiers.items():
                dispatchers.add(
                    Dispatcher(
                        store=store,
                        lifecycle=engine.lifecycle,
                        platform=platform,
                        notifier=notifier,
                        policy=dispatch_policy,
                        now=now,
                        coordinator=coordinator,
                    )
                )
            tasks = [
                asyncio.create_task(d.run(), name=f"dispatch-{d.platform}") for d in dispatchers.all
            ]
            owner = asyncio.current_task()
            lost = asyncio.Event()

            async def stop_when_the_lock_is_lost() -> None:
                # Another engine may start on the database now: no hand-over, submit or poll
                # more here; the task that opened the runtime is cancelled out of it.
                await store.lock_lost()
                log.error(LOCK_LOST)
                lost.set()
                for task in tasks:
                    task.cancel()
                if owner is not None:
                    owner.cancel()
                await engine.aclose()

            watcher = asyncio.create_task(stop_when_the_lock_is_lost(), name="engine-lock")
            try:
                await coordinator.start(
                    work=engine.wake,
                    events=dispatchers.wake,
                    lost=engine.lane_lost,
                    busy=engine.busy_lanes,
                    sent=engine.sent_ages,
                    inherit=engine.inherit_window,
                )
                async with engine:
                    try:
                        yield Runtime(
                            engine=engine,
                            store=store,
                            dispatchers=dispatchers,
                            database=target,
                            coordinator=coordinator,
                        )
                    except BaseException:
                        if not lost.is_set():
                            raise
                        if owner is not None and owner.cancelling():
                            owner.uncancel()  # the watcher's cancel becomes the error below
                        raise EngineLockLost(LOCK_LOST) from None
                    if lost.is_set():  # the body swallowed the cancel
                        if owner is not None and owner.cancelling():
                            owner.uncancel()
                        raise EngineLockLost(LOCK_LOST)
            finally:
                watcher.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(watcher, *tasks, return_exceptions=True)
                # lanes and claims are given up once nothing here runs or hands over
                await coordinator.close()
        finally:
            await store.close()
    finally:
        if owned:
            for client in clients.values():
                await client.aclose()
