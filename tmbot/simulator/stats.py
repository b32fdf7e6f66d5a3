"""What the simulator saw, per key (by a non-secret id) and in total."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any


def key_id(key: str) -> str:
    """A stable, non-secret id for a key: the first 12 hex digits of its sha256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class KeyStats:
    requests: int = 0  # API requests (creates + polls), whatever the answer
    creates: int = 0
    polls: int = 0
    rate_limited: int = 0  # 429s sent
    tasks_created: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    server_errors: int = 0  # injected 500s and 504s
    downloads: int = 0  # image downloads of this key's tasks (any answer)
    max_concurrent_seen: int = 0
    credits_remaining: int | None = None  # Taste Machine balance; None when unknown

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_ZERO = KeyStats()


@dataclass(frozen=True)
class SimStats:
    keys: Mapping[str, KeyStats]  # by key_id
    totals: KeyStats  # sums; max_concurrent_seen is the max over keys, credits None
    completions: Mapping[str, float]  # task_id -> provider-time epoch of completion

    def for_key(self, key: str) -> KeyStats:
        return self.keys.get(key_id(key), _ZERO)

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": {kid: ks.to_json() for kid, ks in self.keys.items()},
            "totals": self.totals.to_json(),
            "completions": dict(self.completions),
        }


@dataclass(slots=True)
class Counters:
    """The mutable twin of :class:`KeyStats`."""

    requests: int = 0
    creates: int = 0
    polls: int = 0
    rate_limited: int = 0
    tasks_created: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    server_errors: int = 0
    downloads: int = 0
    max_concurrent_seen: int = 0

    def freeze(self, credits: int | None) -> KeyStats:
        return KeyStats(**asdict(self), credits_remaining=credits)


def build_stats(
    counters: Mapping[str, Counters],
    totals: Counters,
    credits: Mapping[str, int],
    completions: Mapping[str, float],
) -> SimStats:
    keys = {kid: c.freeze(credits.get(kid)) for kid, c in counters.items()}
    return SimStats(
        keys=MappingProxyType(keys),
        totals=totals.freeze(None),
        completions=MappingProxyType(dict(completions)),
    )
