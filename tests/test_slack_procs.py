"""Slack's HTTP mode behind a load balancer: three real ``tmbot run --http`` processes (each
its own port) on one PostgreSQL database and one simulator process, with the fake Slack. The
test is the load balancer: it signs Slack's requests and sends them round-robin. Any process
answers; the lane's limits hold across the three; retries and double deliveries that land on
another process are deduplicated in the shared store; every image is posted once."""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.fernet import Fernet

from adapters.slack.handlers import ACK_TEXT
from storage.lanes import LANES_CHANNEL
from tests.fakes.slack import BOT_USER_ID, GENERAL, AppAnswer, Call, FakeSlack, payloads
from tests.fakes.slack import post_signed as post
from tests.procs import SimProcess, bot_env, sim_process
from tests.run_helpers import BotProcess, start_run
from tests.slack_rig import ALICE, BOB, BOSS, people

SECRET = "signing-secret-shared-by-three-processes"
TEAM_KEY = "tm_test_sharedSlackTeamKey0777"
PROCESSES = 3
BRIEFS = 30
UPLOADED = "files.completeUploadExternal"
LISTENING = re.compile(r"listening on (http://\S+/slack/events)")
BRIEF = re.compile(r"a poster number (\d\d)")


@dataclass
class Fleet:
    """The ``tmbot run`` processes (with their endpoints in HTTP mode) and what they talk
    to."""

    fake: FakeSlack
    sim: SimProcess
    bots: list[BotProcess]
    urls: list[str]
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self, n: int | None) -> str:
        """Process ``n``'s endpoint; None: the next one round-robin (the load balancer)."""
        return self.urls[next(self.turn) % len(self.urls) if n is None else n]

    async def slash(self, text: str, *, to: int | None = None, user: str = ALICE) -> AppAnswer:
        fields = payloads.slash_command(
            "/taste", text, user_id=user, response_url=self.fake.new_response_url()
        )
        return await post(self.pick(to), payloads.signed_form(SECRET, fields))

    async def event(
        self, event: dict[str, Any], event_id: str, *, to: int | None = None, retry: int = 0
    ) -> AppAnswer:
        envelope = payloads.event_callback(event, event_id=event_id)
        signed = payloads.signed_event(
            SECRET, envelope, retry_num=retry or None, retry_reason="http_timeout"
        )
        return await post(self.pick(to), signed)

    async def interact(self, payload: dict[str, Any], *, to: int) -> AppAnswer:
        return await post(self.pick(to), payloads.signed_interaction(SECRET, payload))

    def cards(self, *, after: int = 0) -> list[Call]:
        return [
            c
            for c in self.fake.calls_to("chat.postMessage")
            if c.seq > after and c.ok and "blocks" in c.params
        ]

    def uploads(self) -> list[tuple[str, str]]:
        """(channel, thread) of every upload Slack completed."""
        return [
            (str(c.params.get("channel_id")), str(c.params.get("thread_ts")))
            for c in self.fake.calls_to(UPLOADED)
            if c.ok
        ]

    async def stop(self) -> list[int]:
        """SIGTERM to each process still running; their exit codes (-9 for a killed one)."""
        return list(await asyncio.gather(*(bot.stop() for bot in self.bots)))

    def said(self) -> str:
        return "\n".join(f"--- process {n}\n{b.text()[-3000:]}" for n, b in enumerate(self.bots))


@asynccontextmanager
async def fleet(
    pg_url: str,
    tmp_path: Path,
    *,
    scale: float,
    socket_mode: bool = False,
    processes: int = PROCESSES,
) -> AsyncIterator[Fleet]:
    """``processes`` × ``tmbot run`` on one database: HTTP mode, each on its own port, or
    (``socket_mode``) each with its own Socket Mode connection to the fake."""
    async with FakeSlack() as fake, sim_process("--time-scale", f"{scale:g}") as sim:
        people(fake)
        env = bot_env(
            sim.url,
            tmp_path / "unused.db",
            scale=scale,
            extra={
                "TMBOT_LOG_FORMAT": "json",
                "TMBOT_SECRET_KEY": Fernet.generate_key().decode(),
                "SLACK_BOT_TOKEN": fake.bot_token,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.api_url,
            },
        )
        env["TMBOT_DATABASE_URL"] = pg_url
        env = {k: v for k, v in env.items() if not k.startswith(("DISCORD_", "PORT"))}
        env.pop("SLACK_APP_TOKEN", None)
        args = ["--http", "--port", "0", "--host", "127.0.0.1"]
        if socket_mode:
            env["SLACK_APP_TOKEN"] = fake.app_token
            args = []
        bots: list[BotProcess] = []
        try:
            for _ in range(processes):
                bots.append(await start_run(env, *args))
            urls = []
            for bot in bots:
                if socket_mode:
                    await bot.wait_line(r"tmbot run: ready \(Socket Mode\)")
                    continue
                line = (await bot.wait_line(r"listening on "))[0]
                match = LISTENING.search(line)
                assert match, line
                urls.append(match.group(1))
                await bot.wait_line(r"tmbot run: ready \(HTTP mode\)")
            assert len(set(urls)) == (0 if socket_mode else processes)
            yield Fleet(fake, sim, bots, urls)
        finally:
            for bot in bots:
                if bot.proc.returncode is None:
                    bot.proc.send_signal(signal.SIGTERM)
            for bot in bots:
                try:
                    await bot.stop(timeout=30)
                except TimeoutError:
                    bot.proc.kill()
                    await bot.proc.wait()


async def bind_team_key(fleet: Fleet) -> None:
    mark = fleet.fake.mark()
    answer = await fleet.slash(f"team key {TEAM_KEY}", to=0, user=BOSS)
    assert answer.status == 200
    saved = await fleet.fake.wait_for_call(
        "response_url",
        lambda c: "Saved the team's key" in str(c.params.get("text")),
        after=mark,
        timeout=30,
    )
    assert TEAM_KEY not in saved.everything()


async def burst(fleet: Fleet) -> dict[int, str]:
    """30 briefs on the team key, round-robin over the processes, all at once; each brief's
    number -> the ts of its card. Every process acknowledged its share at once."""
    mark = fleet.fake.mark()
    answers = await asyncio.gather(
        *(fleet.slash(f"a poster number {i:02d} --fast --res 1k") for i in range(BRIEFS))
    )
    for answer in answers:
        assert answer.status == 200, answer.body
        assert answer.json() == {"response_type": "ephemeral", "text": ACK_TEXT}
    await fleet.fake.wait_for(lambda _: len(fleet.cards(after=mark)) >= BRIEFS, timeout=60)
    cards: dict[int, str] = {}
    for card in fleet.cards(after=mark):
        match = BRIEF.search(card.everything())
        assert match, card.everything()
        number = int(match.group(1))
        assert number not in cards, f"two cards for brief {number}"
        cards[number] = str(card.response["ts"])
    assert sorted(cards) == list(range(BRIEFS))
    return cards


async def generations(pg_url: str, where: str = "TRUE", *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_url)
    try:
        return list(
            await conn.fetch(f"SELECT * FROM generations WHERE {where}", *args)  # noqa: S608
        )
    finally:
        await conn.close()


async def test_a_burst_round_robin_over_three_processes_keeps_the_limits_and_posts_once(
    tmp_path: Path, pg_url: str
) -> None:
    started = time.monotonic()
    async with fleet(pg_url, tmp_path, scale=10.0) as f:
        await bind_team_key(f)
        mark = f.fake.mark()
        cards = await burst(f)
        await f.fake.wait_for(lambda _: len(f.uploads()) >= BRIEFS, timeout=120)
        codes = await f.stop()
        stats = (await f.sim.stats())["totals"]
        said = f.said()
        uploads = f.uploads()
        per_card = collections.Counter(
            str(c.params.get("ts")) for c in f.fake.calls_to("chat.update") if c.ok
        )
        methods = collections.Counter(c.method for c in f.fake.calls if c.seq > mark)
        web_calls = len([c for c in f.fake.calls if c.seq > mark and c.method != "response_url"])
    assert codes == [0] * PROCESSES, said
    # the card's edits stay coalesced though a generation's events may be handed over by
    # more than one process: two progress edits at most, and the final one
    assert set(per_card) == set(cards.values()) and max(per_card.values()) <= 3, per_card
    # a burst asks Slack who alice is and whether the bot is in the channel once per
    # process (the requests arriving together share the look-up in flight)
    assert methods["users.info"] <= PROCESSES and methods["conversations.info"] <= PROCESSES, (
        methods
    )
    # each image once, in its own card's thread in the channel the brief came from
    assert collections.Counter(uploads) == {(GENERAL, ts): 1 for ts in cards.values()}
    assert stats["tasks_created"] == BRIEFS
    assert stats["rate_limited"] == 0
    assert 1 < stats["max_concurrent_seen"] <= 10
    rows = await generations(pg_url)
    assert len(rows) == BRIEFS and {r["status"] for r in rows} == {"delivered"}
    print(
        f"burst over three Slack processes: {time.monotonic() - started:.1f} s, "
        f"{web_calls / BRIEFS:.2f} Slack calls per image ({dict(methods)})"
    )


async def test_an_event_retried_to_another_process_makes_one_image(
    tmp_path: Path, pg_url: str
) -> None:
    async with fleet(pg_url, tmp_path, scale=10.0) as f:
        await bind_team_key(f)
        text = f"<@{BOT_USER_ID}> a snowy owl on a fence post"
        said = f.fake.add_user_message(GENERAL, ALICE, text)
        mention = payloads.app_mention_event(text, ts=said.ts)
        mark = f.fake.mark()
        first = await f.event(mention, "Ev0PROCS0001", to=0)
        # Slack did not hear the answer in time and retries; the balancer picks another
        again = await f.event(mention, "Ev0PROCS0001", to=1, retry=1)
        assert (first.status, again.status) == (200, 200)
        # one of the two was recognised in the shared store and not acted on (which one is
        # a race: each process acknowledges before its handler runs)
        await said_by_any(f, r"slack-event Ev0PROCS0001 seen before")
        await f.fake.wait_for(lambda _: (GENERAL, said.ts) in f.uploads(), timeout=60)
        # a third delivery, after the first has finished, to the third process
        late = await f.event(mention, "Ev0PROCS0001", to=2, retry=2)
        assert late.status == 200
        await f.bots[2].wait_line(r"slack-event Ev0PROCS0001 seen before", stderr=True)
        codes = await f.stop()
        ignored = [
            line for bot in f.bots for line in bot.err if "slack-event Ev0PROCS0001 seen" in line
        ]
        stats = (await f.sim.stats())["totals"]
        cards = f.cards(after=mark)
        uploads = f.uploads()
        said_all = f.said()
    assert codes == [0] * PROCESSES, said_all
    assert len(ignored) == 2, ignored  # three deliveries, one acted on
    assert [c.params.get("thread_ts") for c in cards] == [said.ts]
    assert uploads == [(GENERAL, said.ts)]
    assert stats["tasks_created"] == 1
    assert len(await generations(pg_url)) == 1


async def test_a_button_and_a_reaction_for_one_regenerate_across_processes_count_once(
    tmp_path: Path, pg_url: str
) -> None:
    """Bob presses Again on the card (process 0), the same click arrives again (process 1),
    and he reacts 🔁 on the image, that event retried (processes 2 and 0): one more image."""
    async with fleet(pg_url, tmp_path, scale=10.0) as f:
        await bind_team_key(f)
        mark = f.fake.mark()
        assert (await f.slash("a paper crane", to=0)).status == 200
        await f.fake.wait_for(lambda _: len(f.uploads()) == 1, timeout=60)
        (card,) = f.cards(after=mark)
        card_ts = str(card.response["ts"])
        await f.fake.wait_for(
            lambda _: "tmbot_again" in str(f.fake.message(GENERAL, card_ts).blocks), timeout=30
        )
        (original,) = await generations(pg_url)
        image_ts = f.fake.thread(GENERAL, card_ts)[1].ts
        click = payloads.block_actions(
            "tmbot_again",
            value=str(original["id"]),
            block_id="tmbot_card_actions",
            message_ts=card_ts,
            user_id=BOB,
            user_name="bob",
        )
        react = payloads.reaction_added_event("repeat", item_ts=image_ts, user=BOB)
        mark = f.fake.mark()
        answers = await asyncio.gather(
            f.interact(click, to=0),
            f.interact(click, to=1),
            f.event(react, "Ev0PROCS0R01", to=2),
            f.event(react, "Ev0PROCS0R01", to=0, retry=1),
        )
        assert [a.status for a in answers] == [200] * 4
        await f.fake.wait_for(lambda _: len(f.uploads()) == 2, timeout=60)
        # each duplicate was recognised: the second click, the retried reaction (its event
        # id), and the click against the reaction (the regenerate window in the store)
        for pattern in (
            r"slack-action request seen before",
            r"slack-event Ev0PROCS0R01 seen before",
            # the one that came second found the first's mark; when the first had not yet
            # stored its generation, the person is told it is on its way
            r"was already asked for; counted once|refused \(Conflict\)",
        ):
            await said_by_any(f, pattern)
        codes = await f.stop()
        stats = (await f.sim.stats())["totals"]
        cards = f.cards(after=mark)
        uploads = f.uploads()
        said = f.said()
        private = [str(c.params.get("text")) for c in f.fake.calls_to("chat.postEphemeral")]
    assert codes == [0] * PROCESSES, said
    assert set(private) <= {":warning: Another of that result is already on its way."}, private
    assert [c.params.get("thread_ts") for c in cards] == [card_ts]
    assert uploads == [(GENERAL, card_ts), (GENERAL, card_ts)]
    assert stats["tasks_created"] == 2
    rows = await generations(pg_url, "regenerated_from = $1", original["id"])
    assert len(rows) == 1 and rows[0]["actor_user_id"] == BOB


async def said_by_any(f: Fleet, pattern: str, timeout: float = 30) -> str:
    """The first log line of any process matching ``pattern`` (waited for)."""
    waits = [
        asyncio.ensure_future(bot.wait_line(pattern, stderr=True, timeout=timeout))
        for bot in f.bots
    ]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return str(done.pop().result()[0])
    except TimeoutError:
        raise AssertionError(f"no process said {pattern!r}:\n{f.said()}") from None
    finally:
        for wait in waits:
            wait.cancel()


async def test_a_process_killed_mid_burst_loses_nothing_and_resubmits_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    """The lane's owner is killed (``kill -9``) with ten tasks at the provider: another
    process takes the lane over, polls them again, and every brief is posted once."""
    taken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    await listener.add_listener(LANES_CHANNEL, lambda *args: taken.put_nowait(str(args[-1])))
    try:
        async with fleet(pg_url, tmp_path, scale=10.0) as f:
            await bind_team_key(f)
            cards = await burst(f)
            first = await asyncio.wait_for(taken.get(), 30)
            lane, owner = first.split(" ")
            pid = int(owner.split("@", 1)[0])
            (victim,) = [n for n, b in enumerate(f.bots) if b.proc.pid == pid]
            await f.bots[victim].wait_moves("submitted", 10)
            f.bots[victim].proc.kill()
            killed_at = time.monotonic()
            await f.bots[victim].proc.wait()
            posted_before = len(f.uploads())
            while (said_now := await asyncio.wait_for(taken.get(), 30)) == first:
                pass  # a renewal by the dead owner, sent before it died
            new_lane, new_owner = said_now.split(" ")
            took_over = time.monotonic() - killed_at
            assert new_lane == lane and int(new_owner.split("@", 1)[0]) != pid
            await f.fake.wait_for(lambda _: len(f.uploads()) >= BRIEFS, timeout=120)
            codes = await f.stop()
            stats = (await f.sim.stats())["totals"]
            uploads = f.uploads()
            said = f.said()
    finally:
        await listener.close()
    assert codes[victim] == -signal.SIGKILL
    assert posted_before < BRIEFS  # killed mid-burst
    assert took_over < 10.0
    assert [c for n, c in enumerate(codes) if n != victim] == [0] * (PROCESSES - 1), said
    assert collections.Counter(uploads) == {(GENERAL, ts): 1 for ts in cards.values()}
    assert stats["tasks_created"] == BRIEFS  # polled again after the takeover, never re-sent
    assert stats["max_concurrent_seen"] <= 10
    # the new owner counts the dead one's last minute of requests (lane_windows)
    assert stats["rate_limited"] == 0
    print(f"lane taken over {took_over:.1f} s after the kill")
    rows = await generations(pg_url)
    assert len(rows) == BRIEFS and {r["status"] for r in rows} == {"delivered"}


async def test_socket_mode_processes_share_the_envelopes_and_a_retry_elsewhere_counts_once(
    tmp_path: Path, pg_url: str
) -> None:
    """Two processes in Socket Mode, each with its own connection: Slack sends each
    envelope to one of an app's connections, so each process answers what it is sent, and
    an event retried on the other connection is recognised in the shared store."""
    async with fleet(pg_url, tmp_path, scale=10.0, socket_mode=True, processes=2) as f:
        fake = f.fake
        await fake.wait_socket_connected(2, timeout=30)

        async def slash(text: str, connection: int, user: str = ALICE) -> dict[str, Any]:
            fields = payloads.slash_command(
                "/taste", text, user_id=user, response_url=fake.new_response_url()
            )
            envelope = payloads.socket_envelope("slash_commands", fields)
            ack = await fake.socket_send(envelope, timeout=15, connection=connection)
            return dict(ack.get("payload") or {})

        mark = fake.mark()
        await slash(f"team key {TEAM_KEY}", 0, user=BOSS)
        await fake.wait_for_call(
            "response_url", lambda c: "Saved the team" in str(c.params.get("text")), after=mark
        )
        mark = fake.mark()
        for n in (0, 1):
            assert await slash(f"a lantern number {n}", n) == {
                "response_type": "ephemeral",
                "text": ACK_TEXT,
            }
        text = f"<@{BOT_USER_ID}> a snowy owl on a fence post"
        said = fake.add_user_message(GENERAL, ALICE, text)
        callback = payloads.event_callback(
            payloads.app_mention_event(text, ts=said.ts), event_id="Ev0SOCKET001"
        )
        await fake.socket_send(payloads.socket_envelope("events_api", callback), connection=0)
        retried = payloads.socket_envelope(
            "events_api", callback, retry_attempt=1, retry_reason="timeout"
        )
        await fake.socket_send(retried, connection=1)
        await said_by_any(f, r"slack-event Ev0SOCKET001 seen before")
        await fake.wait_for(lambda _: len(f.uploads()) >= 3, timeout=60)
        codes = await f.stop()
        stats = (await f.sim.stats())["totals"]
        cards = f.cards(after=mark)
        uploads = f.uploads()
        everything = f.said()
    assert codes == [0, 0], everything
    assert len(cards) == 3
    threads = [c.params.get("thread_ts") for c in cards]
    assert threads.count(said.ts) == 1 and threads.count(None) == 2
    card_ts = [str(c.response["ts"]) for c in cards if c.params.get("thread_ts") is None]
    assert collections.Counter(uploads) == {
        (GENERAL, ts): 1 for ts in [*card_ts, said.ts]
    }  # fmt: skip
    assert stats["tasks_created"] == 3
