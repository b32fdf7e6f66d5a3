"""Slack adapter benchmark (a script, not a timed test): ``python -m benchmarks.slack_bench``.

1. Slash-command acknowledgement latency, p50/p99 over 200 signed requests sent to the real
   HTTP endpoint (bolt's aiohttp app) of tmbot's Slack app — each one a brief that becomes a
   generation on the real engine, simulator and SQLite — beside a bare bolt app that only
   acks, measured in the same run (alternating blocks of 20, so both see the same machine).
2. A 50-brief burst from two people (each key runs 10 at a time, so most wait in the
   queue): Slack API calls per delivered image with the default coalescing (a progress edit
   at most every 3 s per card, at most two per generation).

Everything is local: the fake Slack (tests/fakes/slack) and the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from slack_bolt.async_app import AsyncAck, AsyncApp

from adapters.slack.app import build_app, key_label, web_client
from adapters.slack.handlers import SlackHandlers
from adapters.slack.notifier import SlackNotifier
from tests.fakes.http import serve
from tests.fakes.slack import RESPONSE_URL, SOCKET_ACK, UPLOAD, FakeSlack, payloads, post_signed
from tests.harness import running_bot
from tmbot.simulator import SimConfig, Simulator

SECRET = "bench-signing-secret"  # noqa: S105 - a local test secret
KEYS = [f"tm_test_bench{i:02d}XXXXXXX{i:04d}" for i in range(8)]
USERS = [f"U0BENCH{i:02d}" for i in range(8)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@asynccontextmanager
async def tmbot_app(
    fake: FakeSlack, sim: Simulator, tmp: Path, name: str
) -> AsyncIterator[tuple[str, SlackNotifier]]:
    client = web_client(fake.bot_token, fake.api_url)
    notifier = SlackNotifier(client)
    async with running_bot(tmp, sim, recorder=notifier, db_name=f"{name}.db") as bot:  # type: ignore[arg-type]
        notifier.key_label = key_label(bot.engine)
        app = build_app(SlackHandlers(bot.engine, client), client, signing_secret=SECRET)
        async with serve(app.web_app(path="/slack/events")) as base:
            url = f"{base}/slack/events"
            for user, key in zip(USERS, KEYS, strict=True):
                await send(url, fake, f"key {key}", user)
            await fake.wait_for(
                lambda calls: sum(c.method == RESPONSE_URL for c in calls) >= len(KEYS), 30
            )
            yield url, notifier
            await asyncio.wait_for(bot.runtime.settled(), 600)


@asynccontextmanager
async def bare_app(fake: FakeSlack) -> AsyncIterator[str]:
    app = AsyncApp(client=web_client(fake.bot_token, fake.api_url), signing_secret=SECRET)

    @app.command("/taste")
    async def taste(ack: AsyncAck) -> None:
        await ack(response_type="ephemeral", text="Working on it…")

    async with serve(app.web_app(path="/slack/events")) as base:
        yield f"{base}/slack/events"


async def send(url: str, fake: FakeSlack, text: str, user: str) -> float:
    fields = payloads.slash_command(
        "/taste", text, user_id=user, response_url=fake.new_response_url()
    )
    request = payloads.signed_form(SECRET, fields)
    started = time.perf_counter()
    answer = await post_signed(url, request)
    elapsed = time.perf_counter() - started
    assert answer.status == 200, answer
    return elapsed


async def ack_latency(
    fake: FakeSlack, sim: Simulator, tmp: Path, total: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"tmbot": [], "bare bolt": []}
    async with tmbot_app(fake, sim, tmp, "acks") as (ours, _), bare_app(fake) as bare:
        for i in range(0, total, 20):
            for n in range(i, min(total, i + 20)):
                results["bare bolt"].append(await send(bare, fake, f"a cat number {n}", USERS[0]))
            for n in range(i, min(total, i + 20)):
                user = USERS[n % len(USERS)]
                results["tmbot"].append(await send(ours, fake, f"a cat number {n}", user))
    return results


async def burst(fake: FakeSlack, sim: Simulator, tmp: Path, briefs: int) -> dict[str, object]:
    async with tmbot_app(fake, sim, tmp, "burst") as (url, _):
        mark = fake.mark()
        started = time.perf_counter()
        await asyncio.gather(
            *(send(url, fake, f"a poster number {n} --ar 3:4", USERS[n % 2]) for n in range(briefs))
        )

        def delivered(calls: object) -> int | None:
            done = sum(
                1
                for c in fake.calls
                if c.seq > mark and c.method == "chat.update" and "tmbot_again" in c.everything()
            )
            return done if done >= briefs else None

        await fake.wait_for(delivered, timeout=600)
        seconds = time.perf_counter() - started
    calls = [c for c in fake.calls if c.seq > mark and c.method not in (RESPONSE_URL, SOCKET_ACK)]
    by_method = Counter(c.method for c in calls)
    web_api = sum(n for m, n in by_method.items() if m != UPLOAD)
    return {
        "briefs": briefs,
        "delivered": briefs,
        "seconds": seconds,
        "by_method": dict(sorted(by_method.items())),
        "web_api_per_image": web_api / briefs,
        "with_upload_post_per_image": len(calls) / briefs,
        "ratelimited": sum(1 for c in calls if c.status == 429),
    }


async def main(total: int, briefs: int, scale: float, burst_scale: float) -> str:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sim_config = SimConfig(time_scale=scale, estimate_seconds=20.0, seed=3)
        async with Simulator(sim_config) as sim, FakeSlack() as fake:
            for user in USERS:
                fake.add_user(user, user.lower())
            acks = await ack_latency(fake, sim, tmp, total)
            lines.append(f"## Slash-command ack latency ({total} signed requests each, same run)")
            lines.append("")
            lines.append("| app | p50 ms | p99 ms | mean ms |")
            lines.append("|---|---|---|---|")
            for name, values in acks.items():
                ms = [v * 1000 for v in values]
                lines.append(
                    f"| {name} | {percentile(ms, 50):.2f} | {percentile(ms, 99):.2f} | "
                    f"{statistics.fmean(ms):.2f} |"
                )
            ratio = percentile(acks["tmbot"], 99) / percentile(acks["bare bolt"], 99)
            lines.append("")
            lines.append(f"tmbot p99 / bare bolt p99 = {ratio:.2f}× (target ≤ 2×)")
        burst_config = SimConfig(time_scale=burst_scale, estimate_seconds=20.0, seed=3)
        async with Simulator(burst_config) as sim, FakeSlack() as fake:
            for user in USERS:
                fake.add_user(user, user.lower())
            result = await burst(fake, sim, tmp, briefs)
        lines.append("")
        lines.append(
            f"## {briefs}-brief burst (2 people with a key each: 20 at a time, the rest "
            f"queued; simulator time ×{burst_scale:g}, 20 s estimate)"
        )
        lines.append("")
        lines.append(f"delivered {result['delivered']} images in {result['seconds']:.1f} s")
        lines.append(
            f"Slack Web API calls per delivered image: {result['web_api_per_image']:.2f} "
            f"(target ≤ 8); counting the upload-URL POST too: "
            f"{result['with_upload_post_per_image']:.2f}; 429s: {result['ratelimited']}"
        )
        lines.append(f"calls by method: {result['by_method']}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--briefs", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--burst-time-scale", type=float, default=4.0)
    parser.add_argument("--out", default=None, help="also write the results here")
    args = parser.parse_args()
    text = asyncio.run(main(args.requests, args.briefs, args.time_scale, args.burst_time_scale))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
