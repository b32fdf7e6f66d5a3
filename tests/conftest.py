"""Shared fixtures: a simulator, and the real bot on it for any platform name.

``pg_url`` is a fresh, empty database of its own on the session's throwaway PostgreSQL
cluster (:mod:`tests.pg`): a test that needs it fails, never skips, when PostgreSQL cannot be
had here.

``make_bot(platform)`` gives an async context manager that runs the whole bot (the one
composition root: SQLite file in ``tmp_path``, vault, HTTP clients, scheduler, engine, and
that platform's outbox dispatcher) with a :class:`tests.harness.Recorder` as the platform's
notifier. The Slack and Discord tests pass their own notifier as ``recorder=``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Bot, Recorder, running_bot
from tests.pg import Cluster, ClusterUnavailable
from tmbot.simulator import SimConfig, Simulator

#: provider seconds per real second in the shared simulator
SCALE = 60.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(time_scale=SCALE, estimate_seconds=5.0, seed=7)) as simulator:
        yield simulator


@pytest.fixture
def make_bot(tmp_path: Path, sim: Simulator) -> Callable[..., AbstractAsyncContextManager[Bot]]:
    def make(platform: str = "test", **options: Any) -> AbstractAsyncContextManager[Bot]:
        options.setdefault("recorder", Recorder(platform=platform))
        return running_bot(tmp_path, sim, **options)

    return make


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    try:
        cluster = Cluster.start()
    except ClusterUnavailable as why:
        pytest.fail(str(why), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def pg_url(pg_cluster: Cluster) -> AsyncIterator[str]:
    url = await pg_cluster.fresh_database()
    try:
        yield url
    finally:
        await pg_cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind: a SQLite file in ``tmp_path``, a fresh
    PostgreSQL database (the Store contract tests run on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
