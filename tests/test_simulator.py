"""The simulator over real HTTP: both APIs' contracts, limits, credits, faults, images, stats.

Waiting is only ever for simulated time to pass: ``wait_until``/``wait_for`` sleep the real
equivalent of a provider-time span on the simulator's own clock (the time-scale knob).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from PIL import Image

from tmbot.capabilities import TASTEMACHINE, VTRIX
from tmbot.simulator import KeyStats, SimConfig, Simulator, key_id, run_server

TM_KEY = "tm_test_alpha0001"
VX_KEY = "vx_0123456789abcdefghij"
TM_GEN = "/api/v1/generate"
VX_GEN = "/model/v1/generation"
RUNNING_VX = {"in_progress", "pending", "processing"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tm_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "brief": "A minimal poster for a Tokyo coffee shop, warm tones",
        "model": "nano-banana-2",
        "resolution": "1k",
    }
    body.update(over)
    return body


def vx_body(**params: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"prompt": "A red fox in fresh snow", "resolution": "1K"}
    p.update(params)
    return {"model": "nano_banana_2", "input": [{"params": p}]}


async def wait_for(sim: Simulator, provider_seconds: float) -> None:
    """Let ``provider_seconds`` of simulated time pass."""
    await asyncio.sleep(sim.clock.real_seconds(provider_seconds))


async def wait_until(sim: Simulator, provider_mono: float) -> None:
    await wait_for(sim, provider_mono - sim.clock.monotonic())


def longest(sim: Simulator, model: str, resolution: str) -> float:
    """Provider seconds after which a task of this kind has surely ended."""
    cfg = sim.config
    return cfg.estimate_for(model, resolution) * (1 + cfg.duration_spread) + 0.5


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(time_scale=120, seed=7)) as s:
        yield s


@pytest.fixture
async def slow_sim() -> AsyncIterator[Simulator]:
    """Real time: nothing finishes, no window slides, during a test."""
    async with Simulator(SimConfig(time_scale=1, seed=7)) as s:
        yield s


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url) as c:
        yield c


@pytest.fixture
async def slow_client(slow_sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=slow_sim.base_url) as c:
        yield c


async def tm_create(c: httpx.AsyncClient, key: str = TM_KEY, **over: Any) -> httpx.Response:
    return await c.post(TM_GEN, json=tm_body(**over), headers=auth(key))


async def tm_poll(c: httpx.AsyncClient, task_id: str, key: str = TM_KEY) -> httpx.Response:
    return await c.get(TM_GEN, params={"task_id": task_id}, headers=auth(key))


async def vx_create(c: httpx.AsyncClient, key: str = VX_KEY, **params: Any) -> httpx.Response:
    return await c.post(VX_GEN, json=vx_body(**params), headers=auth(key))


async def vx_poll(c: httpx.AsyncClient, task_id: str, key: str = VX_KEY) -> httpx.Response:
    return await c.get(f"{VX_GEN}/task/{task_id}", headers=auth(key))


def assert_png_ratio(content: bytes, aspect_ratio: str) -> tuple[int, int]:
    image = Image.open(io.BytesIO(content))
    image.load()
    assert image.format == "PNG"
    w, h = image.size
    rw, rh = (int(x) for x in aspect_ratio.split(":"))
    assert abs((w / h) / (rw / rh) - 1) < 0.01, (aspect_ratio, image.size)
    return w, h


# -- The Taste Machine: the happy path -------------------------------------------------------


async def test_tm_queued_processing_complete() -> None:
    cfg = SimConfig(time_scale=30, duration_spread=0.0, seed=1)
    async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        t0 = sim.clock.monotonic()
        r = await tm_create(c, model="nano-banana-pro", resolution="2k", aspect_ratio="3:4")
        assert r.status_code == 202
        body = r.json()
        task_id = body["task_id"]
        assert re.fullmatch(r"[A-Za-z0-9]{16}", task_id)
        assert body["status"] == "queued"
        assert body["estimated_time_seconds"] == 30
        assert body["credits"] == {"required": 10, "remaining": 990}

        assert (await tm_poll(c, task_id)).json() == {"task_id": task_id, "status": "queued"}
        await wait_until(sim, t0 + 10)
        assert (await tm_poll(c, task_id)).json() == {"task_id": task_id, "status": "processing"}
        await wait_until(sim, t0 + 30.5)
        done = (await tm_poll(c, task_id)).json()
        assert done["status"] == "complete"
        assert done["credits_consumed"] == 10
        result = done["result"]
        assert result["prompt_used"].startswith("A minimal poster for a Tokyo coffee shop")
        assert len(result["prompt_used"]) > len(tm_body()["brief"])
        expires = datetime.strptime(result["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
        completed_at = sim.stats().completions[task_id]
        assert abs(expires.replace(tzinfo=UTC).timestamp() - (completed_at + 3600)) < 2

        image = await c.get(result["image_url"])  # no auth
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert_png_ratio(image.content, "3:4")


async def test_tm_defaults_and_estimates_scale_by_model_and_resolution(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(TM_GEN, json={"brief": "just a brief"}, headers=auth(TM_KEY))
    assert r.status_code == 202
    assert r.json()["estimated_time_seconds"] == 30  # pro 2k, the defaults
    fast = (await tm_create(client, model="nano-banana-2", resolution="1k")).json()
    slow = (await tm_create(client, model="nano-banana-pro", resolution="4k")).json()
    assert fast["estimated_time_seconds"] < 30 < slow["estimated_time_seconds"]
    assert fast["credits"]["required"] == TASTEMACHINE.cost("nano-banana-2", "1k")
    assert slow["credits"]["required"] == TASTEMACHINE.cost("nano-banana-pro", "4k")


@pytest.mark.parametrize(
    ("model", "resolution", "aspect_ratio"),
    [
        ("nano-banana-pro", "2k", "3:4"),
        ("nano-banana-pro", "4k", "16:9"),
        ("nano-banana-2", "1k", "1:8"),
        ("nano-banana-2", "2k", "8:1"),
        ("nano-banana-pro", "1k", "21:9"),
    ],
)
async def test_tm_png_matches_aspect_ratio(
    sim: Simulator, client: httpx.AsyncClient, model: str, resolution: str, aspect_ratio: str
) -> None:
    r = await tm_create(client, model=model, resolution=resolution, aspect_ratio=aspect_ratio)
    task_id = r.json()["task_id"]
    await wait_for(sim, longest(sim, model, resolution))
    done = (await tm_poll(client, task_id)).json()
    assert done["status"] == "complete"
    first = await client.get(done["result"]["image_url"])
    assert first.status_code == 200
    w, h = assert_png_ratio(first.content, aspect_ratio)
    assert max(w, h) >= 512
    again = await client.get(done["result"]["image_url"])
    assert again.content == first.content  # rendered once, cached


async def test_stock_images_serve_one_picture_per_size_and_drawn_ones_one_per_brief(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    async def two_images() -> tuple[bytes, bytes]:
        ids = [
            (await tm_create(client, brief=brief, aspect_ratio="3:4")).json()["task_id"]
            for brief in ("a red kite over a beach", "a quiet library at night")
        ]
        await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
        images = []
        for task_id in ids:
            done = (await tm_poll(client, task_id)).json()
            answer = await client.get(done["result"]["image_url"])
            assert answer.status_code == 200
            assert_png_ratio(answer.content, "3:4")
            images.append(answer.content)
        return images[0], images[1]

    drawn = await two_images()
    assert drawn[0] != drawn[1]
    sim.configure(stock_images=True)
    stock = await two_images()
    assert stock[0] == stock[1]
    assert stock[0] not in drawn


# -- Vtrix: the happy path -------------------------------------------------------------------


async def test_vtrix_create_poll_complete(sim: Simulator, client: httpx.AsyncClient) -> None:
    r = await vx_create(client, aspect_ratio="16:9", resolution="2K")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "created_at", "status", "model"}
    assert body["status"] == "in_progress"
    assert body["model"] == "nano_banana_2"
    assert isinstance(body["created_at"], int)
    task_id = body["id"]
    assert re.fullmatch(r"[a-z0-9]{20}", task_id)
    running = (await vx_poll(client, task_id)).json()
    assert running["status"] in RUNNING_VX
    assert "output" not in running

    await wait_for(sim, longest(sim, "nano-banana-2", "2k"))
    done = (await vx_poll(client, task_id)).json()
    assert done["status"] == "completed"
    assert done["id"] == task_id
    content = done["output"][0]["content"]
    images = [part["url"] for part in content if part["type"] == "image"]
    texts = [part["text"] for part in content if part["type"] == "text"]
    assert len(images) == 1 and len(texts) == 1
    assert isinstance(done["usage"], dict) and isinstance(done["metadata"], dict)
    png = await client.get(images[0])
    assert png.status_code == 200
    assert_png_ratio(png.content, "16:9")


async def test_vtrix_image_only_and_varied_usage(sim: Simulator, client: httpx.AsyncClient) -> None:
    ids = [
        (await vx_create(client, response_modalities="Image", aspect_ratio=ratio)).json()["id"]
        for ratio in ("1:8", "8:1", "1:1", "4:5", "21:9", "9:16")
    ]
    await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
    usages = []
    for task_id in ids:
        done = (await vx_poll(client, task_id)).json()
        assert [p["type"] for p in done["output"][0]["content"]] == ["image"]
        usage = done["usage"]
        assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"} or usage.get(
            "cost"
        ) in ("0.04", "")
        usages.append(json.dumps(usage, sort_keys=True))
    assert len({u if "cost" in u else "tokens" for u in usages}) >= 2


@pytest.mark.parametrize(("aspect_ratio", "resolution"), [("8:1", "0.5K"), ("21:9", "4K")])
async def test_vtrix_png_matches_aspect_ratio(
    sim: Simulator, client: httpx.AsyncClient, aspect_ratio: str, resolution: str
) -> None:
    task_id = (await vx_create(client, aspect_ratio=aspect_ratio, resolution=resolution)).json()[
        "id"
    ]
    await wait_for(sim, longest(sim, "nano-banana-2", resolution.lower()))
    done = (await vx_poll(client, task_id)).json()
    png = await client.get(done["output"][0]["content"][0]["url"])
    assert_png_ratio(png.content, aspect_ratio)


async def test_vtrix_fast_task_is_completed_in_the_create_answer(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure(estimate_seconds=1.0)
    body = (await vx_create(client, resolution="0.5K")).json()
    assert body["status"] == "completed"
    url = body["output"][0]["content"][0]["url"]
    assert (await client.get(url)).status_code == 200
    assert (await vx_poll(client, body["id"])).json()["status"] == "completed"


# -- Limits ----------------------------------------------------------------------------------


async def test_tm_61st_request_in_a_window_is_429_and_429s_do_not_count(
    slow_sim: Simulator, slow_client: httpx.AsyncClient
) -> None:
    c = slow_client
    task_id = (await tm_create(c)).json()["task_id"]
    for _ in range(59):
        assert (await tm_poll(c, task_id)).status_code == 200
    limited = await tm_poll(c, task_id)
    assert limited.status_code == 429
    retry_after = limited.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert "error" in limited.json()
    assert (await tm_create(c)).status_code == 429  # creates share the budget
    stats = slow_sim.stats().for_key(TM_KEY)
    assert (stats.requests, stats.creates, stats.polls) == (62, 2, 60)
    assert stats.rate_limited == 2
    assert stats.tasks_created == 1

    # After Retry-After the key works again.
    slow_sim.configure(time_scale=600)
    await wait_for(slow_sim, int(retry_after))
    assert (await tm_poll(c, task_id)).status_code == 200
    # Another key has its own window.
    assert (await tm_create(c, key="tm_live_otherkey")).status_code == 202


async def test_window_slides_and_429s_do_not_count() -> None:
    cfg = SimConfig(time_scale=120, tm_rpm=2, rate_window_seconds=60)
    async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url) as c:
        task_id = (await tm_create(c)).json()["task_id"]  # A, at t0
        await wait_for(sim, 30)
        assert (await tm_poll(c, task_id)).status_code == 200  # B, at t0 + 30
        refused = await tm_poll(c, task_id)  # C: the window holds A and B
        assert refused.status_code == 429
        assert 25 <= int(refused.headers["Retry-After"]) <= 31  # when A leaves
        await wait_for(sim, int(refused.headers["Retry-After"]))
        # A has left; B is still in. Had C counted, this would be refused too.
        assert (await tm_poll(c, task_id)).status_code == 200
        assert (await tm_poll(c, task_id)).status_code == 429


async def test_vtrix_rate_limit_follows_config(
    slow_sim: Simulator, slow_client: httpx.AsyncClient
) -> None:
    slow_sim.configure(vtrix_rpm=5)
    task_id = (await vx_create(slow_client)).json()["id"]
    for _ in range(4):
        assert (await vx_poll(slow_client, task_id)).status_code == 200
    limited = await vx_poll(slow_client, task_id)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("provider", ["tastemachine", "vtrix"])
async def test_11th_concurrent_task_is_429(
    slow_sim: Simulator, slow_client: httpx.AsyncClient, provider: str
) -> None:
    create = tm_create if provider == "tastemachine" else vx_create
    key = TM_KEY if provider == "tastemachine" else VX_KEY
    limit = (TASTEMACHINE if provider == "tastemachine" else VTRIX).limits.max_concurrent
    assert limit == 10
    for _ in range(limit):
        assert (await create(slow_client)).status_code in (200, 202)
    refused = await create(slow_client)
    assert refused.status_code == 429
    assert (
        1
        <= int(refused.headers["Retry-After"])
        <= math.ceil(longest(slow_sim, "nano-banana-2", "1k"))
    )
    stats = slow_sim.stats().for_key(key)
    assert stats.max_concurrent_seen == 10
    assert stats.tasks_created == 10
    assert stats.rate_limited == 1

    # Once tasks end, their slots are free again.
    slow_sim.configure(time_scale=600)
    await wait_for(slow_sim, int(refused.headers["Retry-After"]) + 3)
    assert (await create(slow_client)).status_code in (200, 202)


async def test_burst_429(client: httpx.AsyncClient, sim: Simulator) -> None:
    sim.burst_429(TM_KEY, 2)
    for _ in range(2):
        r = await tm_create(client)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
    assert (await tm_create(client)).status_code == 202
    assert (await tm_create(client, key="tm_test_bystander")).status_code == 202
    r = await client.post("/_sim/burst", json={"key": None, "count": 1})
    assert r.status_code == 200
    assert (await vx_create(client)).status_code == 429
    assert (await vx_create(client)).status_code == 200
    assert sim.stats().totals.rate_limited == 3


# -- Credits and keys ------------------------------------------------------------------------


async def test_tm_402_for_broke_and_low_keys(client: httpx.AsyncClient, sim: Simulator) -> None:
    r = await tm_create(client, key="tm_test_broke_key", model="nano-banana-pro")
    assert r.status_code == 402
    assert r.json() == {"error": "insufficient credits", "required": 10, "available": 0}

    low = "tm_live_low_balance"
    assert (await tm_create(client, key=low, model="nano-banana-pro")).json()["credits"][
        "remaining"
    ] == 15
    assert (await tm_create(client, key=low, model="nano-banana-pro")).json()["credits"][
        "remaining"
    ] == 5
    r = await tm_create(client, key=low, model="nano-banana-pro")
    assert r.status_code == 402
    assert r.json()["required"] == 10 and r.json()["available"] == 5
    assert sim.stats().for_key(low).credits_remaining == 5

    r = await client.post("/_sim/keys", json={"key": low, "credits": 100})
    assert r.status_code == 200
    assert r.json() == {"key_id": key_id(low), "credits": 100}
    assert (await tm_create(client, key=low, model="nano-banana-pro", resolution="4k")).json()[
        "credits"
    ] == {"required": 15, "remaining": 85}
    sim.set_credits(TM_KEY, 3)
    assert (await tm_create(client)).json()["available"] == 3


async def test_vtrix_403_for_broke_and_noperm(client: httpx.AsyncClient, sim: Simulator) -> None:
    r = await vx_create(client, key="vx_broke_0123456789abcdef")
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["error_message"] == "insufficient balance" and isinstance(error["code"], int)
    r = await vx_create(client, key="vx_noperm_0123456789abcdef")
    assert r.status_code == 403
    assert "permission" in r.json()["error"]["message"]
    sim.set_credits(VX_KEY, 0)
    assert (await vx_create(client)).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "tm_test_alpha0001"},
        {"Authorization": "Basic tm_test_alpha0001"},
        {"Authorization": "Bearer"},
        auth("tm_test_revoked_0001"),
        auth("sk_live_notatastemachinekey"),
        auth("tm_prod_alpha0001"),
    ],
)
async def test_tm_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.post(TM_GEN, json=tm_body(), headers=headers)
    assert r.status_code == 401
    assert isinstance(r.json()["error"], str)
    assert (await client.get(TM_GEN, params={"task_id": "x"}, headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "headers", [{}, auth("short_token"), auth("vx_revoked_0123456789abc"), {"X-Key": VX_KEY}]
)
async def test_vtrix_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert (await client.post(VX_GEN, json=vx_body(), headers=headers)).status_code == 401


async def test_unknown_or_foreign_task_is_404(client: httpx.AsyncClient) -> None:
    tm_id = (await tm_create(client)).json()["task_id"]
    vx_id = (await vx_create(client)).json()["id"]
    assert (await tm_poll(client, "nope")).status_code == 404
    assert (await tm_poll(client, tm_id, key="tm_test_someoneelse")).status_code == 404
    assert (await tm_poll(client, vx_id)).status_code == 404
    assert (await client.get(TM_GEN, headers=auth(TM_KEY))).status_code == 400  # no task_id
    assert (await vx_poll(client, "nope")).status_code == 404
    assert (await vx_poll(client, vx_id, key="vx_someoneelse_0123456789")).status_code == 404
    assert (await vx_poll(client, tm_id)).status_code == 404
    assert (await client.get("/cdn/unknown.png")).status_code == 404


# -- Validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"model": "nano-banana-pro", "aspect_ratio": "1:8"}, "aspect_ratio"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"image_urls": [f"https://example.com/{i}.jpg" for i in range(15)]}, "image_urls"),
        ({"image_urls": "https://example.com/a.jpg"}, "image_urls"),
        ({"image_urls": [1, 2]}, "image_urls"),
        ({"resolution": "4K"}, "resolution"),
        ({"resolution": "0.5k"}, "resolution"),
        ({"model": "nano_banana_2"}, "model"),
        ({"taste": "baroque"}, "taste"),
        ({"brief": ""}, "brief"),
        ({"brief": "   "}, "brief"),
        ({"brief": 42}, "brief"),
        ({"brief": None}, "brief"),
    ],
)
async def test_tm_400_names_the_problem(
    client: httpx.AsyncClient, change: dict[str, Any], names: str
) -> None:
    body = tm_body(**change)
    if body["brief"] is None:
        del body["brief"]
    r = await client.post(TM_GEN, json=body, headers=auth(TM_KEY))
    assert r.status_code == 400
    assert names in r.json()["error"]


async def test_tm_accepts_the_edges(client: httpx.AsyncClient) -> None:
    refs = [f"https://example.com/{i}.jpg" for i in range(14)]
    for ok in (
        tm_body(image_urls=refs),
        tm_body(model="nano-banana-2", aspect_ratio="1:8", taste="realistic-photo"),
        tm_body(resolution="4k", unknown_field=True),
    ):
        assert (await client.post(TM_GEN, json=ok, headers=auth(TM_KEY))).status_code == 202
    not_json = await client.post(
        TM_GEN, content=b"brief=hello", headers={**auth(TM_KEY), "Content-Type": "text/plain"}
    )
    assert not_json.status_code == 400
    assert (await client.post(TM_GEN, json=["x"], headers=auth(TM_KEY))).status_code == 400


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (vx_body(image_urls=[f"https://example.com/{i}.jpg" for i in range(4)]), "images"),
        (vx_body(resolution="4k"), "resolution"),
        (vx_body(resolution="2k"), "resolution"),
        (vx_body(prompt="x" * 2501), "prompt"),
        (vx_body(prompt=""), "prompt"),
        (vx_body(aspect_ratio="2:1"), "aspect_ratio"),
        (vx_body(response_modalities=["Video"]), "response_modalities"),
        ({**vx_body(), "model": "nano-banana-2"}, "model"),
        ({"model": "nano_banana_2", "prompt": "flat, not nested"}, "input"),
        ({"model": "nano_banana_2", "input": [{"prompt": "no params"}]}, "params"),
    ],
)
async def test_vtrix_400_names_the_problem(
    client: httpx.AsyncClient, body: dict[str, Any], names: str
) -> None:
    r = await client.post(VX_GEN, json=body, headers=auth(VX_KEY))
    assert r.status_code == 400
    error = r.json()["error"]
    assert isinstance(error["code"], int)
    assert names in error["message"]


async def test_vtrix_accepts_the_edges(client: httpx.AsyncClient) -> None:
    for ok in (
        vx_body(prompt="x" * 2500, image_urls=["https://e.com/1.png"] * 3),
        vx_body(prompt="y", aspect_ratio="1:8", resolution="0.5K"),
        vx_body(response_modalities=["Text", "Image"]),
        {"model": "nano_banana_2", "input": [{"params": {"prompt": "defaults only"}}]},
    ):
        assert (await client.post(VX_GEN, json=ok, headers=auth(VX_KEY))).status_code == 200


# -- Images expire ---------------------------------------------------------------------------


async def test_image_urls_expire_after_ttl(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(image_ttl_seconds=60)
    tm_id = (await tm_create(client)).json()["task_id"]
    vx_id = (await vx_create(client)).json()["id"]
    await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
    tm_url = (await tm_poll(client, tm_id)).json()["result"]["image_url"]
    vx_url = (await vx_poll(client, vx_id)).json()["output"][0]["content"][0]["url"]
    assert (await client.get(tm_url)).status_code == 200
    assert (await client.get(vx_url)).status_code == 200
    await wait_for(sim, 61)
    gone = await client.get(tm_url)
    assert gone.status_code == 410
    denied = await client.get(vx_url)
    assert denied.status_code == 403
    assert "expired" in denied.text
    # The task itself still reads complete; only the link died.
    assert (await tm_poll(client, tm_id)).json()["status"] == "complete"
    assert sim.stats().for_key(TM_KEY).downloads == 2


# -- Faults ----------------------------------------------------------------------------------


async def test_server_error_rate(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(server_error_rate=1.0)
    r = await tm_create(client)
    assert r.status_code == 500 and "error" in r.json()
    r = await vx_create(client)
    assert r.status_code == 500 and "error" in r.json()
    assert (await tm_create(client, key="tm_test_revoked_0001")).status_code == 500  # before auth
    stats = sim.stats()
    assert stats.totals.server_errors == 3
    assert stats.totals.tasks_created == 0
    sim.configure(server_error_rate=0.0)
    assert (await tm_create(client)).status_code == 202


async def test_timeout_rate_hangs_then_504(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(timeout_rate=1.0, hang_seconds=0.2)
    started = time.monotonic()
    r = await tm_create(client)
    assert r.status_code == 504
    assert time.monotonic() - started >= 0.2
    with pytest.raises(httpx.ReadTimeout):
        await client.post(VX_GEN, json=vx_body(), headers=auth(VX_KEY), timeout=0.05)
    assert sim.stats().for_key(TM_KEY).server_errors == 1


async def test_stop_releases_hanging_requests() -> None:
    sim = Simulator(SimConfig(timeout_rate=1.0, hang_seconds=30))
    await sim.start()
    async with httpx.AsyncClient(base_url=sim.base_url) as c:
        pending = asyncio.create_task(tm_create(c))

        async def hanging() -> None:  # a condition, not a delay: yield until the server
            while sim.stats().totals.server_errors == 0:  # has counted the hanging request
                await asyncio.sleep(0)

        await asyncio.wait_for(hanging(), 10)
        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 5
        r = await pending
        assert r.status_code == 504


def _is_malformed(r: httpx.Response, id_field: str) -> bool:
    try:
        body = r.json()
    except ValueError:
        return True
    return not isinstance(body, dict) or id_field not in body or "status" not in body


async def test_malformed_rate(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(malformed_rate=1.0, tm_concurrency=20)
    answers = [await tm_create(client) for _ in range(12)]
    answers += [await vx_create(client) for _ in range(4)]
    assert all(_is_malformed(r, "task_id") for r in answers[:12])
    assert all(_is_malformed(r, "id") for r in answers[12:])
    assert any(r.headers["content-type"].startswith("text/html") for r in answers)
    assert any(r.headers["content-type"].startswith("application/json") for r in answers)
    # The work was done even though the answer was garbled: a realistic lost task id.
    assert sim.stats().totals.tasks_created == 16
    # Errors are never garbled.
    assert (await tm_create(client, key="tm_test_broke_0001")).status_code == 402


async def test_task_failure_rate_tm(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(task_failure_rate=1.0)
    ids = [(await tm_create(client)).json()["task_id"] for _ in range(8)]
    await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
    shapes = set()
    for task_id in ids:
        body = (await tm_poll(client, task_id)).json()
        assert body["status"] == "failed" and body["task_id"] == task_id
        error = body["error"]
        if isinstance(error, str):
            shapes.add("string")
            assert error
        else:
            shapes.add("object")
            assert isinstance(error["message"], str) and error["message"]
    assert shapes == {"string", "object"}
    stats = sim.stats().for_key(TM_KEY)
    assert stats.tasks_failed == 8 and stats.tasks_completed == 0
    assert stats.credits_remaining == 1000  # refunded
    assert not sim.stats().completions


async def test_task_failure_rate_vtrix(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure(task_failure_rate=1.0, vtrix_concurrency=12)
    ids = [(await vx_create(client)).json()["id"] for _ in range(12)]
    await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
    shapes = set()
    for task_id in ids:
        body = (await vx_poll(client, task_id)).json()
        assert body["status"] == "failed"
        assert "output" not in body
        error = body["error"]
        if isinstance(error, str):
            shapes.add("string")
        else:
            assert isinstance(error["code"], int) and 5001095 <= error["code"] <= 5001098
            shapes.add("error_message" if "error_message" in error else "message")
    assert shapes == {"string", "error_message", "message"}
    assert sim.stats().for_key(VX_KEY).tasks_failed == 12


async def test_seeded_runs_are_deterministic() -> None:
    async def ids() -> list[str]:
        async with (
            Simulator(SimConfig(seed=42)) as s,
            httpx.AsyncClient(base_url=s.base_url) as c,
        ):
            return [(await tm_create(c)).json()["task_id"] for _ in range(3)]

    assert await ids() == await ids()


# -- Stats and controls ----------------------------------------------------------------------


async def test_stats_count_and_never_show_keys(sim: Simulator, client: httpx.AsyncClient) -> None:
    assert sim.stats().for_key(TM_KEY) == KeyStats()
    task_id = (await tm_create(client)).json()["task_id"]
    await tm_poll(client, task_id)
    await tm_poll(client, "missing")
    await tm_create(client, resolution="4K")  # 400
    await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
    url = (await tm_poll(client, task_id)).json()["result"]["image_url"]
    await client.get(url)
    await vx_create(client)

    stats = sim.stats()
    mine = stats.for_key(TM_KEY)
    assert mine == KeyStats(
        requests=5,
        creates=2,
        polls=3,
        rate_limited=0,
        tasks_created=1,
        tasks_completed=1,
        tasks_failed=0,
        server_errors=0,
        downloads=1,
        max_concurrent_seen=1,
        credits_remaining=1000 - 8,
    )
    assert set(stats.keys) == {key_id(TM_KEY), key_id(VX_KEY)}
    assert key_id(TM_KEY) == key_id(TM_KEY) and re.fullmatch(r"[0-9a-f]{12}", key_id(TM_KEY))
    assert stats.totals.requests == 6 and stats.totals.tasks_created == 2
    assert task_id in stats.completions
    assert stats.completions[task_id] <= sim.clock.wall()

    r = await client.get("/_sim/stats")
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(sim.stats().to_json()))
    assert TM_KEY not in r.text and VX_KEY not in r.text


async def test_config_endpoint(sim: Simulator, client: httpx.AsyncClient) -> None:
    r = await client.post("/_sim/config", json={"tm_rpm": 2, "estimate_seconds": 5})
    assert r.status_code == 200
    assert r.json()["tm_rpm"] == 2
    assert sim.config.tm_rpm == 2 and sim.config.estimate_seconds == 5
    assert (await client.post("/_sim/config", json={"nope": 1})).status_code == 400
    assert (await client.post("/_sim/config", json={"tm_rpm": "x"})).status_code == 400
    assert (await client.post("/_sim/config", json={"server_error_rate": 2})).status_code == 400
    assert (await client.post("/_sim/keys", json={"key": TM_KEY})).status_code == 400
    with pytest.raises(ValueError, match="unknown"):
        sim.configure(bogus=1)
    await tm_create(client)
    await tm_create(client)
    assert (await tm_create(client)).status_code == 429


def test_config_defaults_come_from_capabilities() -> None:
    cfg = SimConfig()
    assert cfg.tm_rpm == TASTEMACHINE.limits.requests_per_window
    assert cfg.tm_concurrency == TASTEMACHINE.limits.max_concurrent
    assert cfg.vtrix_concurrency == VTRIX.limits.max_concurrent
    assert cfg.rate_window_seconds == TASTEMACHINE.limits.window_seconds
    with pytest.raises(ValueError):
        SimConfig(time_scale=0)


async def test_runtime_rescale_keeps_provider_time_continuous() -> None:
    async with Simulator(SimConfig(time_scale=1)) as sim:
        before = sim.clock.monotonic(), sim.clock.wall()
        sim.configure(time_scale=1000)
        after = sim.clock.monotonic(), sim.clock.wall()
        assert 0 <= after[0] - before[0] < 1 and 0 <= after[1] - before[1] < 1


# -- run_server ------------------------------------------------------------------------------


class _Stdout(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.line = asyncio.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        if "\n" in self.getvalue():
            self.line.set()
        return n


async def _start_run_server(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Task[None], str]:
    out = _Stdout()
    monkeypatch.setattr(sys, "stdout", out)
    task = asyncio.create_task(run_server("127.0.0.1", 0, SimConfig(time_scale=60)))
    await asyncio.wait_for(out.line.wait(), 10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    m = re.fullmatch(
        r"tmbot simulator listening on (http://127\.0\.0\.1:\d+) \(time scale 60\)", lines[0]
    )
    assert m, lines
    return task, m.group(1)


async def test_run_server_prints_its_line_and_stops_when_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    task, url = await _start_run_server(monkeypatch)
    async with httpx.AsyncClient(base_url=url) as c:
        assert (await tm_create(c)).status_code == 202
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_run_server_stops_on_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    task, url = await _start_run_server(monkeypatch)
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)
    async with httpx.AsyncClient(base_url=url) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("/")


# -- Scale -----------------------------------------------------------------------------------


async def test_scale_1000_tasks_across_100_keys() -> None:
    """1,000 tasks in flight at once across 100 keys (50 per provider, 10 tasks each: every
    key at its concurrency cap), then polled to completion."""
    cfg = SimConfig(time_scale=6, seed=3)
    keys = [(f"tm_test_scale{i:04d}", False) for i in range(50)]
    keys += [(f"vx_scale_key_{i:04d}_abcdefgh", True) for i in range(50)]
    # httpx's pool slows down sharply with hundreds of requests queued in it, so the client
    # keeps a bounded number in flight (the simulator itself takes far more).
    gate = asyncio.Semaphore(4)
    limits = httpx.Limits(max_connections=4)

    async def create(c: httpx.AsyncClient, key: str, vtrix: bool) -> str:
        async with gate:
            r = await (vx_create(c, key) if vtrix else tm_create(c, key))
        assert r.status_code in (200, 202), r.text
        return str(r.json()["id" if vtrix else "task_id"])

    async def poll(c: httpx.AsyncClient, key: str, vtrix: bool, task_id: str) -> str:
        async with gate:
            r = await (vx_poll(c, task_id, key) if vtrix else tm_poll(c, task_id, key))
        return str(r.json()["status"])

    async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url, limits=limits) as c:
        started = time.perf_counter()
        jobs = [(key, vtrix) for key, vtrix in keys for _ in range(10)]
        ids = await asyncio.gather(*(create(c, key, vtrix) for key, vtrix in jobs))
        created = time.perf_counter()
        totals = sim.stats().totals
        in_flight = totals.tasks_created - totals.tasks_completed - totals.tasks_failed
        await wait_for(sim, longest(sim, "nano-banana-2", "1k"))
        waited = time.perf_counter()
        statuses = await asyncio.gather(
            *(poll(c, key, vtrix, task_id) for (key, vtrix), task_id in zip(jobs, ids, strict=True))
        )
        polled = time.perf_counter()
        stats = sim.stats()
    print(
        f"\n1,000 tasks / 100 keys: created in {created - started:.2f}s "
        f"({in_flight} in flight after the last create), polled in {polled - waited:.2f}s, "
        f"total {polled - started:.2f}s"
    )
    assert len(set(ids)) == 1000
    shortest = cfg.estimate_for("nano-banana-2", "1k") * (1 - cfg.duration_spread)
    if created - started < sim.clock.real_seconds(shortest):
        assert in_flight == 1000
    assert set(statuses) <= {"complete", "completed"} and len(statuses) == 1000
    assert stats.totals.tasks_created == 1000 and stats.totals.tasks_completed == 1000
    assert stats.totals.rate_limited == 0
    assert stats.totals.max_concurrent_seen == 10
    assert len(stats.keys) == 100 and len(stats.completions) == 1000
    assert created - started < 10 and polled - waited < 10


async def test_held_tasks_stay_running_until_released(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    # a zero estimate ends a task at once (in Vtrix's create answer): held, it does not
    sim.configure(estimate_seconds=0.0)
    done = (await tm_create(client)).json()["task_id"]
    assert (await tm_poll(client, done)).json()["status"] == "complete"
    r = await client.post("/_sim/config", json={"hold_tasks": True})
    assert r.status_code == 200 and sim.config.hold_tasks is True
    assert (await client.post("/_sim/config", json={"hold_tasks": 1})).status_code == 400
    assert (await client.post("/_sim/config", json={"tm_rpm": True})).status_code == 400
    held_tm = (await tm_create(client)).json()["task_id"]
    held_vx = (await vx_create(client, resolution="0.5K")).json()
    assert held_vx["status"] != "completed"
    for _ in range(3):
        assert (await tm_poll(client, held_tm)).json()["status"] == "processing"
        assert (await vx_poll(client, held_vx["id"])).json()["status"] in RUNNING_VX
    assert sim.stats().totals.tasks_completed == 1
    sim.configure(hold_tasks=False)  # new tasks are not held; the held ones still are
    assert (await tm_poll(client, held_tm)).json()["status"] == "processing"
    released = await client.post("/_sim/release")
    assert released.status_code == 200 and released.json() == {"released": 2}
    finished = (await tm_poll(client, held_tm)).json()
    assert finished["status"] == "complete"
    assert (await client.get(finished["result"]["image_url"])).status_code == 200
    assert (await vx_poll(client, held_vx["id"])).json()["status"] == "completed"
    assert sim.release() == 0
