"""Pieces both simulated APIs share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tmbot.simulator.config import SimConfig
from tmbot.simulator.state import Account, SimState

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer before it is sent, so fault injection can still garble a 2xx."""

    status: int
    body: Mapping[str, Any] | str
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def iso_z(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_url(origin: str, token: str) -> str:
    return f"{origin}/cdn/{token}.png"


class ProviderApi(Protocol):
    """One simulated API: its auth rules, body checks and answer shapes."""

    name: str

    def limits(self, config: SimConfig) -> tuple[int, int]:
        """(requests per window, concurrent tasks) per key."""

    def authenticate(self, state: SimState, key: str | None) -> Answer | None:
        """None when the key may use the API; else the refusal."""

    def rate_limited(self, retry_after: int) -> Answer: ...

    def server_error(self) -> Answer: ...

    def create(
        self, state: SimState, *, key: str, account: Account, body: object, origin: str
    ) -> Answer: ...

    def poll(self, state: SimState, *, key: str, task_id: str | None, origin: str) -> Answer: ...
