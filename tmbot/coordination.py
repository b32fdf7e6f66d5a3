"""The one-process :class:`tmbot.ports.Coordinator`: this process owns every lane and holds
every claim, and nothing is asked of the store (SQLite, one process per file: today's path,
at today's cost). The guard of a key's check-and-reserve is an :class:`asyncio.Lock` per key.

The shared one, for several processes on PostgreSQL, is :mod:`storage.lanes`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager

from tmbot.domain import ApiKey, ProviderName
from tmbot.ports import inherit_nothing, none_sent


def lane_of(provider: ProviderName, key: ApiKey) -> str:
    """A key's lane: limits belong to the key itself, however many bindings share it."""
    return f"{provider}:{hashlib.sha256(key.secret.encode()).hexdigest()[:16]}"


def member_name() -> str:
    """This process: ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


class SoleCoordinator:
    """Every lane and every claim is this process's."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._member = member_name()
        self._named: set[str] = set()

    @property
    def sole(self) -> bool:
        return True

    @property
    def member(self) -> str:
        return self._member

    async def start(
        self,
        *,
        work: Callable[[], None],
        events: Callable[[str], None],
        lost: Callable[[str], None],
        busy: Callable[[], Collection[str]],
        sent: Callable[[str], Sequence[float]] = none_sent,
        inherit: Callable[[str, Sequence[float]], None] = inherit_nothing,
    ) -> None:
        return None

    async def close(self) -> None:
        return None

    def owns(self, lane: str) -> bool:
        return True

    async def take(self, lane: str, *, waiting: float = 0.0) -> bool:
        return True

    async def hand_off(self, lane: str) -> None:
        return None

    @asynccontextmanager
    async def guard(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            yield

    async def claim(self, platform: str, generation_ids: Sequence[str]) -> set[str]:
        return set(generation_ids)

    async def unclaim(self, platform: str, generation_ids: Sequence[str]) -> None:
        return None

    async def poke(self, platform: str) -> None:
        return None

    async def leases(self, prefix: str) -> dict[str, str]:
        return {name: self._member for name in self._named if name.startswith(prefix)}

    async def acquire(self, name: str) -> bool:
        self._named.add(name)
        return True

    async def release(self, name: str) -> None:
        self._named.discard(name)

    def holds(self, name: str) -> bool:
        return name in self._named
