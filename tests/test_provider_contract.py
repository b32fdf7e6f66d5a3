"""One contract, both providers: each client against the simulator over real HTTP.

The same tests run for The Taste Machine and for Vtrix; only the keys differ (each provider's
key shape and the simulator's conventions: `revoked`, `broke`)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from PIL import Image

from tmbot.capabilities import caps
from tmbot.domain import ApiKey, GenerationSpec, ProviderName, TaskState, TaskStatus
from tmbot.errors import (
    DownloadFailed,
    InsufficientCredits,
    KeyRejected,
    ProviderError,
    RateLimited,
)
from tmbot.providers import ImageProvider, build_providers
from tmbot.simulator import SimConfig, Simulator

SCALE = 60.0


@dataclass(frozen=True)
class Keys:
    good: str
    revoked: str
    broke: str


KEYS = {
    ProviderName.TASTEMACHINE: Keys(
        "tm_test_contractAAAA0001", "tm_test_revokedAAAA0001", "tm_test_brokeAAAA0001"
    ),
    ProviderName.VTRIX: Keys(
        "vx_contractAAAAAAAAAAAA01", "vx_revokedAAAAAAAAAAAAA01", "vx_brokeAAAAAAAAAAAAAAA01"
    ),
}


@dataclass
class Setup:
    sim: Simulator
    client: ImageProvider
    keys: Keys


@pytest.fixture(params=list(ProviderName), ids=lambda p: p.value)
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    provider: ProviderName = request.param
    async with Simulator(SimConfig(time_scale=SCALE, seed=31)) as sim:
        clients = build_providers(tastemachine_url=sim.base_url, vtrix_url=sim.base_url)
        try:
            yield Setup(sim, clients[provider], KEYS[provider])
        finally:
            for client in clients.values():
                await client.aclose()


def spec_for(provider: ProviderName, *, aspect_ratio: str = "3:4") -> GenerationSpec:
    table = caps(provider)
    return GenerationSpec(
        provider=provider,
        brief="a minimal poster for a Tokyo coffee shop",
        model=table.default_model,
        aspect_ratio=aspect_ratio,
        resolution=table.default_resolution,
        taste=table.default_taste,
    )


async def until_done(setup: Setup, key: ApiKey, task_id: str) -> TaskState:
    for _ in range(200):
        state = await setup.client.poll(key, task_id)
        if state.status is not TaskStatus.RUNNING:
            return state
        await setup.sim.clock.sleep(5.0)  # simulated seconds: the time-scale knob
    raise AssertionError("the task never ended")


async def test_create_poll_complete_download(setup: Setup) -> None:
    key = ApiKey(setup.keys.good)
    submission = await setup.client.submit(key, spec_for(setup.client.name))
    assert submission.task_id
    state = submission.state or await until_done(setup, key, submission.task_id)
    assert state.status is TaskStatus.COMPLETE and state.image_urls
    image = await setup.client.download(state.image_urls[0])
    with Image.open(io.BytesIO(image)) as img:
        assert img.format == "PNG"
        assert abs(img.width / img.height - 3 / 4) < 0.01
    stats = setup.sim.stats().for_key(setup.keys.good)
    assert stats.tasks_created == 1 and stats.rate_limited == 0


async def test_a_failed_task_comes_back_failed_with_a_sentence(setup: Setup) -> None:
    setup.sim.configure(task_failure_rate=1.0)
    key = ApiKey(setup.keys.good)
    submission = await setup.client.submit(key, spec_for(setup.client.name))
    state = submission.state or await until_done(setup, key, submission.task_id)
    assert state.status is TaskStatus.FAILED
    assert state.error and state.error.endswith(".")


async def test_a_revoked_key_is_rejected(setup: Setup) -> None:
    with pytest.raises(KeyRejected) as caught:
        await setup.client.submit(ApiKey(setup.keys.revoked), spec_for(setup.client.name))
    assert setup.keys.revoked not in str(caught.value)


async def test_a_key_without_credits_is_refused(setup: Setup) -> None:
    with pytest.raises(InsufficientCredits) as caught:
        await setup.client.submit(ApiKey(setup.keys.broke), spec_for(setup.client.name))
    assert setup.keys.broke not in caught.value.user_message


async def test_the_eleventh_running_task_is_rate_limited(setup: Setup) -> None:
    key = ApiKey(setup.keys.good)
    for _ in range(10):
        await setup.client.submit(key, spec_for(setup.client.name))
    with pytest.raises(RateLimited) as caught:
        await setup.client.submit(key, spec_for(setup.client.name))
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


async def test_the_sixty_first_request_in_a_minute_is_rate_limited(setup: Setup) -> None:
    key = ApiKey(setup.keys.good)
    submission = await setup.client.submit(key, spec_for(setup.client.name))
    setup.sim.configure(time_scale=1.0)  # hold time still while we spend the window
    for _ in range(59):
        await setup.client.poll(key, submission.task_id)
    with pytest.raises(RateLimited) as caught:
        await setup.client.poll(key, submission.task_id)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


async def test_an_unknown_task_is_an_error_not_a_crash(setup: Setup) -> None:
    with pytest.raises(ProviderError):
        await setup.client.poll(ApiKey(setup.keys.good), "no-such-task")


async def test_an_expired_image_link_says_so(setup: Setup) -> None:
    setup.sim.configure(image_ttl_seconds=0.5)
    key = ApiKey(setup.keys.good)
    submission = await setup.client.submit(key, spec_for(setup.client.name))
    state = submission.state or await until_done(setup, key, submission.task_id)
    await setup.sim.clock.sleep(5.0)
    with pytest.raises(DownloadFailed) as caught:
        await setup.client.download(state.image_urls[0])
    assert caught.value.expired
