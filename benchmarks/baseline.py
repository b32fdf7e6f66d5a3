"""The naive poller: what a bot that follows the docs' advice literally does.

For each brief: ``POST /api/v1/generate``, then ``GET …?task_id=`` every 2 s (provider
time) until the task is complete or failed, then download the image. It keeps no budget
and no concurrency limit: every brief is sent the moment it arrives, and a 429 is retried
after its ``Retry-After`` (or 2 s). A 5xx, a timeout or an unreadable answer is retried
after 2 s.

It talks plain httpx with clients of its own — one per key, with a pool as large as that
key's briefs — so no request ever queues behind another in a connection pool, and nothing
is shared with our engine's client.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import httpx

from benchmarks.plan import Brief, Trace, interleaved, key_briefs, plan
from benchmarks.probes import measure, rss_now
from benchmarks.scenarios import NAIVE_POLL_SECONDS, Scenario
from tmbot.clock import Clock
from tmbot.simulator import key_id

PATH = "/api/v1/generate"


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return NAIVE_POLL_SECONDS


class NaiveBot:
    def __init__(self, clock: Clock, clients: dict[str, httpx.AsyncClient]) -> None:
        self.clock = clock
        self.clients = clients
        self.seen_429 = 0
        self.errors = 0

    async def _request(
        self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            return await client.request(method, url, **kwargs)
        except httpx.HTTPError:
            self.errors += 1
            return None

    async def generate(self, brief: Brief, trace: Trace) -> None:
        clock = self.clock
        client = self.clients[brief.key]
        headers = {"Authorization": f"Bearer {brief.key}"}
        trace.requested = time.monotonic()
        while True:  # create
            sent = time.monotonic()
            answer = await self._request(
                client, "POST", PATH, json={"brief": brief.text}, headers=headers
            )
            if answer is not None and answer.status_code == 202:
                try:
                    trace.task_id = str(answer.json()["task_id"])
                except (ValueError, KeyError, TypeError):
                    self.errors += 1  # a garbled create: the naive bot just asks again
                else:
                    trace.submit_sent, trace.submit_done = sent, time.monotonic()
                    break
            wait = NAIVE_POLL_SECONDS
            if answer is not None and answer.status_code == 429:
                self.seen_429 += 1
                wait = retry_after(answer)
            elif answer is not None and 400 <= answer.status_code < 500:
                trace.failed = f"create answered {answer.status_code}"
                return
            await clock.sleep(wait)
        wait = NAIVE_POLL_SECONDS
        url: str | None = None
        while True:  # poll every 2 s
            await clock.sleep(wait)
            wait = NAIVE_POLL_SECONDS
            sent = time.monotonic()
            trace.polls += 1
            answer = await self._request(
                client, "GET", PATH, params={"task_id": trace.task_id}, headers=headers
            )
            if answer is None:
                continue
            if answer.status_code == 429:
                self.seen_429 += 1
                wait = retry_after(answer)
                continue
            if answer.status_code != 200:
                continue
            try:
                body = answer.json()
                status = body["status"]
            except (ValueError, KeyError, TypeError):
                self.errors += 1
                continue
            if status == "complete":
                trace.done_sent, trace.done_recv = sent, time.monotonic()
                try:
                    url = str(body["result"]["image_url"])
                except (KeyError, TypeError):
                    self.errors += 1
                    continue
                break
            if status == "failed":
                trace.done_sent, trace.done_recv = sent, time.monotonic()
                trace.failed = "the task failed"
                return
            trace.last_running_sent = sent
        for _ in range(3):  # download
            sent = time.monotonic()
            image = await self._request(client, "GET", url)
            if image is not None and image.status_code == 200 and image.content:
                trace.download_sent, trace.download_done = sent, time.monotonic()
                trace.delivered = trace.download_done
                return
            await clock.sleep(NAIVE_POLL_SECONDS)
        trace.failed = "download failed"


async def run(scenario: Scenario, base_url: str, scale: float) -> dict[str, Any]:
    rss_start = rss_now()
    keys, by_user = plan(scenario)
    per_key = scenario.briefs_per_key
    tls = ssl.create_default_context()  # one for all clients (each would load the CA store)
    clients = {
        key: httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=per_key + 2, max_keepalive_connections=per_key),
            timeout=httpx.Timeout(120.0),
            verify=tls,
        )
        for key in keys
    }
    bot = NaiveBot(Clock(scale=scale), clients)
    traces: list[Trace] = []

    def trace_for(brief: Brief) -> Trace:
        trace = Trace(kid=key_id(brief.key), user=brief.user)
        traces.append(trace)
        return trace

    async def one_at_a_time(briefs: list[Brief]) -> None:
        for brief in briefs:
            await bot.generate(brief, trace_for(brief))

    async def everyone() -> None:
        if scenario.sequential:
            await asyncio.gather(*(one_at_a_time(b) for b in by_user.values()))
        else:
            await asyncio.gather(*(bot.generate(b, trace_for(b)) for b in interleaved(by_user)))

    run = await measure(everyone(), limit=scenario.timeout, rss_start=rss_start)
    for client in clients.values():
        await client.aclose()
    return {
        "side": "baseline",
        "scenario": scenario.name,
        "scale": scale,
        **run.fields(),
        "keys": key_briefs(keys, scenario),
        "traces": [t.to_json() for t in traces],
        "client_errors": {"429 seen": bot.seen_429, "transport or garbled": bot.errors},
    }
