"""The briefs of a scenario, the keys that pay for them and the trace each side records."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

from benchmarks.scenarios import Scenario
from tmbot.scheduling.fairqueue import round_robin
from tmbot.simulator import key_id


@dataclass(frozen=True)
class Brief:
    key: str  # the raw API key (a fresh throw-away key for the simulator)
    key_index: int
    user: str
    text: str


@dataclass
class Trace:
    """One brief's life, in real ``time.monotonic()`` seconds (one clock for every process
    on Linux, so the simulator's timeline can be mapped onto it)."""

    kid: str  # simulator key id (sha256[:12]); never the key
    user: str
    requested: float | None = None  # the user sent the brief
    generation_id: str | None = None
    task_id: str | None = None
    submit_sent: float | None = None  # the create request that made the task
    submit_done: float | None = None
    polls: int = 0  # poll requests sent for this task (whatever the answer)
    last_running_sent: float | None = None  # the last poll that found it still running
    done_sent: float | None = None  # the poll that found it ended
    done_recv: float | None = None
    download_sent: float | None = None  # the image download (the last attempt)
    download_done: float | None = None
    delivered: float | None = None  # the image was handed over (notifier / naive bot)
    failed: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def new_key() -> str:
    # hex only: never contains the simulator's magic words (revoked, broke, low)
    return "tm_test_" + secrets.token_hex(12)


def plan(
    scenario: Scenario, keys: list[str] | None = None
) -> tuple[list[str], dict[str, list[Brief]]]:
    """The keys (fresh ones unless given), and each user's briefs in the order that user
    sends them."""
    if keys is None:
        keys = [new_key() for _ in range(scenario.keys)]
    assert len(keys) == scenario.keys
    by_user: dict[str, list[Brief]] = {}
    for k, key in enumerate(keys):
        for u in range(scenario.users_per_key):
            user = f"u{k}-{u}"
            by_user[user] = [
                Brief(
                    key=key,
                    key_index=k,
                    user=user,
                    text=f"benchmark {scenario.name} {user} #{i}: a minimal poster for a "
                    "Tokyo coffee shop, warm tones",
                )
                for i in range(scenario.briefs_per_user)
            ]
    return keys, by_user


def interleaved(by_user: dict[str, list[Brief]]) -> list[Brief]:
    """Every brief, round-robin across users (everyone sends at once)."""
    return round_robin(by_user.values())


def key_briefs(keys: list[str], scenario: Scenario) -> dict[str, int]:
    return {key_id(k): scenario.briefs_per_key for k in keys}
