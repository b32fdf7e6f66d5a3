"""Hardening (issue 10) through the real engine: the console front end in-process against the
simulator over HTTP, a SQLite file in tmp_path. Every malformed line gets one sentence and
sends nothing; secrets never reach a brief; unusable keys after a secret change; an
unreachable provider fails in seconds; private files."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import unicodedata
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from storage.sqlite import SqliteStore
from tests.harness import PLACE, Recorder, running_bot
from tests.procs import dead_port
from tests.test_commands_corpus import is_one_sentence
from tests.test_engine_harness import console_chat, stored_bytes
from tmbot import capabilities
from tmbot.commands import check_key
from tmbot.config import Config
from tmbot.domain import Actor, ApiKey, ProviderName
from tmbot.errors import ConfigError, KeyUnusable, NoKeyBound, ParseError
from tmbot.leaks import SHORTEST_KEY, could_hold_key
from tmbot.records import KeyBinding, KeyRef, KeyScope
from tmbot.replies import GenerationAccepted
from tmbot.runtime import open_runtime
from tmbot.texts import render
from tmbot.vault import Vault, key_file_for

ALICE = "tm_test_aliceHARDEN0001"
TEAM = "tm_test_teamHARDEN00002"
#: a Vtrix key bound by bob whose shape is not secret-like (only the bound-key check sees it)
BOB_VTRIX = "abcd-efgh-ijkl-mnop-qrst"
#: shaped like a Vtrix secret, bound nowhere
LOOSE_VTRIX = "vx" + "7Hq2LmP9xR4tZ8wK3nB6"

# Each line here was reproduced as accepted and charged (or echoed raw) before issue 10.
CORPUS = [
    # 2. a mistyped command never becomes a paid image
    "credits please",
    "history 5",
    "delete",
    "regenerate zzz --ar 16:9",
    "logout foo",
    "/taste credits please",
    "/taste history 5",
    "taste credits now",
    "Credits please",
    "HISTORY of the Tokyo subway",
    "help me draw a cat",
    "settings dark mode",
    "team photo in a park",
    "refine",
    "delete 3f2a1b9c4d now",
    "key lime pie on a plate",
    "/taste key lime pie on a plate",
    "regenerate zzzzzzzz",
    # 3. flags as people type them
    "a lighthouse at dawn --",
    "a lighthouse at dawn -- ar 3:4",
    "a lighthouse at dawn —",
    "a lighthouse at dawn -modle fast",
    "a lighthouse at dawn —resolutoin 4k",
    "a lighthouse at dawn --AR 3x4",
    "a lighthouse at dawn —ar=3/4",
    "a lighthouse at dawn -ar 7:5",
    "a lighthouse at dawn –ar",
    # 4. no secret inside a brief
    f"a poster {LOOSE_VTRIX}",
    f"kye --provider vtrix {LOOSE_VTRIX}",
    f"my vtrix key is `{LOOSE_VTRIX}` please",
    f"settings --taste {LOOSE_VTRIX}",
    "a poster with tm_live_" + "Zz9Yy8Xx7Ww6 on it",
    f"a poster with {BOB_VTRIX} written on it",
    f"@carol a mural reading {BOB_VTRIX}",
    f"a poster {BOB_VTRIX[:9]}\u200b{BOB_VTRIX[9:]}",
    f'"history of {BOB_VTRIX}"',
    # 5. text that is not text
    "\u200b",
    "\u200b\u200c\u2060\ufeff",
    "\x00\x07\x08",
    "\x1b[2J\x1b[H",
    "\u3164\u3164",
    "\u0301 --ar 3:4",
    "x" * 4001,
    "y" * 20_001,
    # 9. smaller things
    "team budget @all 50/day",
    "team budget everyone 5/day",
    "key --provider vtrix tm_live_" + "abcdefghijklmnop",
]


def _no_controls(text: str) -> bool:
    return all(unicodedata.category(c)[0] != "C" or c == "\n" for c in text)


def test_corpus_grew_by_at_least_40_lines() -> None:
    assert len(CORPUS) >= 40
    assert len(set(CORPUS)) == len(CORPUS)


async def test_every_corpus_line_is_one_sentence_and_sends_nothing(tmp_path: Path) -> None:
    async with console_chat(tmp_path, admins=("alice",)) as chat:
        assert "Saved" in await chat.say(f"key {ALICE}")
        assert "Saved" in await chat.say(f"team key {TEAM}")
        assert "Saved" in await chat.say(f"@bob key --provider vtrix {BOB_VTRIX}")
        wrong = []
        for line in CORPUS:
            reply = await chat.say(line)
            message = reply.removeprefix("error: ")
            if not (
                reply.startswith("error: ")
                and is_one_sentence(message)
                and _no_controls(reply)
                and len(message) < 300
            ):
                wrong.append((line[:60], reply[:300]))
            for secret in (ALICE, TEAM, BOB_VTRIX, LOOSE_VTRIX):
                assert secret not in reply
        assert wrong == []
        totals = chat.sim.stats().totals
        assert totals.requests == 0
        for user in ("alice", "bob", "carol"):
            assert await chat.store.recent_generations("local", user, limit=5) == []
    stored = stored_bytes(chat.db)
    for secret in (BOB_VTRIX, LOOSE_VTRIX):
        assert secret.encode() not in stored


async def test_a_bound_key_in_a_brief_tells_the_person_to_rotate_it(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"@bob key --provider vtrix {BOB_VTRIX}")
        reply = await chat.say(f"@carol a neon sign reading {BOB_VTRIX} --ar 16:9")
        assert reply.startswith("error: That looks like an API key")
        assert "rotate it" in reply
        assert BOB_VTRIX not in reply
        assert chat.sim.stats().totals.requests == 0


def test_no_key_shorter_than_the_leak_checks_shortest_can_be_bound() -> None:
    # the leak check skips text without a run of SHORTEST_KEY key characters: that is only
    # safe while no provider accepts a shorter key (or one with a space) at bind
    shortest = {ProviderName.TASTEMACHINE: "tm_live_abcd", ProviderName.VTRIX: "a" * 20}
    for provider in ProviderName:
        key = shortest[provider]
        assert len(key) >= SHORTEST_KEY
        check_key(provider, ApiKey(key))
        pattern = capabilities.caps(provider).key_pattern
        for shorter in range(1, SHORTEST_KEY):
            for candidate in (key[:shorter], "a" * shorter, "tm_live_"[:shorter]):
                assert re.fullmatch(pattern, candidate) is None
        with pytest.raises(ParseError):
            check_key(provider, ApiKey(key[:6] + " " + key[6:]))


def test_text_that_could_hold_a_key_is_told_apart_from_short_words() -> None:
    assert not could_hold_key("benchmark many-keys u12-3 #4: a minimal poster, warm tones")
    assert could_hold_key("a neon sign reading abcd-efgh-ijkl-mnop-qrst --ar 16:9")
    assert could_hold_key("see https://example.com/a.png")
    # a key split by an invisible character is whole again once the text is cleaned
    assert could_hold_key("tm_live_ab\u200bcdef now")
    assert not could_hold_key("tm_live ab cd ef")


async def test_typed_commands_and_quoted_briefs_through_the_console(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {ALICE}")
        assert (await chat.say("/taste credits")).startswith("You're on your personal key")
        gen = await chat.ask('"history of the Tokyo subway" as a poster --fast --res 1k')
        stored = await chat.store.get_generation(gen)
        assert stored is not None
        assert stored.spec.brief == "history of the Tokyo subway as a poster"
        await chat.settle()
        # result ids are case-insensitive, in the console's own commands and the grammar's
        again = await chat.ask(f"regenerate {gen.upper()}")
        assert again != gen
        await chat.settle()
        assert (await chat.say(f"/taste delete {again.upper()}")).startswith(f"Deleted {again}")
        await chat.transcript.wait_for(rf"^\[{again}\] deleted by alice: removed its file$")
        assert not (chat.out / f"tmbot-{again}.png").exists()
        assert chat.stats(ALICE).tasks_created == 2


async def test_control_characters_are_never_echoed_or_sent(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {ALICE}")
        gen = await chat.ask("a \x1b[31mred\x1b[0m fox\x07 in\u200b the snow\x00 --fast")
        await chat.settle()
        stored = await chat.store.get_generation(gen)
        assert stored is not None
        assert stored.spec.brief == "a red fox in the snow"
        assert " delivered: " in chat.final(gen)
        assert _no_controls(chat.printed())
        # the console's help speaks of what the console has
        help_text = await chat.say("help")
        assert "React" not in help_text and "private form" not in help_text
        assert "regenerate ID" in help_text


async def test_credits_counts_the_key_you_are_on_now(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"key {ALICE}")
        await chat.ask("a small poster --fast --res 1k")
        await chat.settle()
        assert "your use of it: 8 credits today" in await chat.say("credits")
        await chat.say("key tm_test_aliceSECOND0009")
        assert "your use of it: 0 credits today" in await chat.say("credits")


async def test_budget_targets_are_case_folded_in_the_console(tmp_path: Path) -> None:
    async with console_chat(tmp_path) as chat:
        await chat.say(f"team key {TEAM}")
        await chat.say("team budget @Bob 0/day")
        reply = await chat.say("@BOB a poster for bob --fast")
        assert reply.startswith("error: ") and "budget" in reply
        assert chat.sim.stats().totals.requests == 0


# --- keys after a secret rotation ------------------------------------------------------


async def test_keys_after_the_secret_changed(tmp_path: Path) -> None:
    from tmbot.simulator import SimConfig, Simulator

    admin, alice, bob = (
        Actor(platform="test", tenant="test:T1", user_id=n, is_admin=n == "admin")
        for n in ("admin", "alice", "bob")
    )
    async with Simulator(SimConfig(time_scale=100.0)) as sim:
        async with running_bot(tmp_path, sim) as bot:
            await bot.engine.execute(admin, f"team key {TEAM}", PLACE)
            await bot.engine.execute(alice, f"key {ALICE}", PLACE)
        (tmp_path / "fernet.key").unlink()  # the next bot has another secret
        async with running_bot(tmp_path, sim) as bot:
            with pytest.raises(KeyUnusable) as member:
                await bot.engine.execute(bob, "a poster --fast", PLACE)
            assert "ask a workspace admin to bind it again with `/taste team key`" in str(
                member.value
            )
            with pytest.raises(KeyUnusable) as own:
                await bot.engine.execute(alice, "a poster --fast", PLACE)
            assert "bind it again with `/taste key`" in str(own.value)
            assert "admin" not in str(own.value)
            credits = render(await bot.engine.execute(bob, "credits", PLACE))
            assert "unusable" in credits and "left" not in credits
            show = render(await bot.engine.execute(admin, "team show", PLACE))
            assert "unusable" in show
            # binding again makes it usable
            await bot.engine.execute(admin, f"team key {TEAM}", PLACE)
            assert "unusable" not in render(await bot.engine.execute(bob, "credits", PLACE))
        assert sim.stats().totals.requests == 0


def test_a_missing_secret_with_stored_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TMBOT_SECRET_KEY that is not set now"):
        Vault.from_environment(env={}, key_file=tmp_path / "bot.key", stored_keys=True)
    assert not (tmp_path / "bot.key").exists()  # no new key file made behind anyone's back
    assert Vault.from_environment(env={}, key_file=tmp_path / "bot.key", stored_keys=False)


# --- an unreachable provider -------------------------------------------------------------


async def test_an_unreachable_provider_fails_in_seconds(tmp_path: Path) -> None:
    port = dead_port()
    url = f"http://127.0.0.1:{port}"
    recorder = Recorder()
    # at x10 the 600 s task deadline is 60 real seconds
    async with open_runtime(
        Config(time_scale=10.0, http_timeout=5.0),
        {"test": recorder},
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        tastemachine_url=url,
        vtrix_url=url,
        vault=Vault(Fernet.generate_key()),
    ) as runtime:
        engine = runtime.engine
        actor = Actor(platform="test", tenant="test:T1", user_id="alice", is_admin=False)
        await engine.execute(actor, f"key {ALICE}", PLACE)
        reply = await engine.execute(actor, "a poster --fast", PLACE)
        assert isinstance(reply, GenerationAccepted)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(runtime.settled(), 30)  # well before the 60 s deadline
        assert asyncio.get_running_loop().time() - started < 30
        reason = recorder.failure(reply.generation.id)
        assert f"Could not reach The Taste Machine at {url}" in reason
        assert "nothing was charged" in reason


# --- private files -----------------------------------------------------------------------


async def test_database_wal_lock_and_key_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "bot.db"
    store = await SqliteStore.open(db, exclusive=True)
    try:
        vault = Vault.from_environment(env={}, key_file=key_file_for(db))
        ref = KeyRef(KeyScope.USER, "T1", "alice", ProviderName.TASTEMACHINE)
        ciphertext = vault.encrypt(ApiKey(ALICE))
        await store.put_key(
            KeyBinding(ref=ref, ciphertext=ciphertext, fingerprint="…0001", created_at=1.0)
        )
        paths = [db, db.with_name("bot.db-wal"), db.with_name("bot.db-shm"), key_file_for(db)]
        paths.append(db.with_name("bot.db.lock"))
        for path in paths:
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    finally:
        await store.close()


async def test_a_second_engine_on_one_database_is_refused_in_process(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    first = await SqliteStore.open(db, exclusive=True)
    try:
        with pytest.raises(ConfigError, match=rf"process {os.getpid()}\).*PostgreSQL"):
            await SqliteStore.open(db, exclusive=True)
        reader = await SqliteStore.open(db)  # a read-only tool may still look
        assert await reader.list_keys() == []
        await reader.close()
    finally:
        await first.close()
    again = await SqliteStore.open(db, exclusive=True)  # released on close
    await again.close()
    assert (tmp_path / "bot.db.lock").read_text() == ""  # no stale pid left behind
    assert issubclass(KeyUnusable, NoKeyBound)  # one exception tree
