"""The whole bot on PostgreSQL: the composition root (``open_runtime``) on a fresh database of
the session's throwaway cluster, the real vault, HTTP to the simulator, the scheduler and a
dispatcher; ``tmbot migrate-db`` and ``tmbot console`` as real processes."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from storage import Dialect, PostgresStore, SqliteStore
from tests.harness import Bot, Recorder, running_bot
from tests.pg import end_the_engine_lock_session
from tests.procs import (
    bot_env,
    dead_port,
    run_console,
    run_tmbot,
    sim_process,
    start_console,
    tmbot_command,
)
from tmbot.config import Config
from tmbot.errors import ConfigError, DatabaseInUse, EngineLockLost
from tmbot.events import Delivered
from tmbot.records import GenStatus
from tmbot.replies import CreditsView, GenerationAccepted
from tmbot.runtime import LOCK_LOST, open_runtime
from tmbot.simulator import SimConfig, Simulator
from tmbot.vault import Vault

MakeBot = Callable[..., AbstractAsyncContextManager[Bot]]
KEY = "tm_test_postgresPPPP0001"
TEAM = "tm_test_teamTTTTTTTT0002"
BOB = "tm_test_bobBBBBBBBBBB0003"


async def test_a_brief_on_postgresql_is_delivered_once(
    make_bot: MakeBot, pg_url: str, sim: Simulator
) -> None:
    async with make_bot(database_url=pg_url) as bot:
        assert bot.runtime.database.dialect is Dialect.POSTGRESQL
        assert isinstance(bot.store, PostgresStore)
        await bot.bind("alice", KEY)
        gen = await bot.ask("alice", "a minimal poster for a Tokyo coffee shop --ar 3:4")
        await bot.settled()
        stored = await bot.store.get_generation(gen.id)
    assert isinstance(await bot.recorder.ended(gen.id), Delivered)
    assert len(bot.recorder.images(gen.id)) == 1
    assert stored is not None and stored.status is GenStatus.DELIVERED
    assert sim.stats().for_key(KEY).tasks_created == 1


async def test_briefs_accepted_while_the_engine_looks_for_work_each_run_once(
    make_bot: MakeBot, pg_url: str, sim: Simulator
) -> None:
    # A look for work (resume: the heartbeat wakes it every 1.5 s) can find a brief between
    # its acceptance and its launch (while the key's guard is given back): it once launched
    # a second job for it, whose end unlisted the first, and a later look failed the brief
    # as "restarted while sending" while its image was on the way (1 in 1,000 briefs in
    # the stores benchmark).
    keys = [f"tm_test_racer{i:02d}RRRRRRRRRR" for i in range(10)]
    async with make_bot(database_url=pg_url) as bot:
        for i, key in enumerate(keys):
            await bot.bind(f"user{i}", key)
        asked = asyncio.gather(
            *(bot.ask(f"user{i % 10}", f"poster number {i}") for i in range(100))
        )
        while not asked.done():
            bot.engine.wake()
            await asyncio.sleep(0)
        gens = await asked
        await bot.settled(timeout=60)
        failed = [
            bot.recorder.failure(gen.id)
            for gen in gens
            if not isinstance(await bot.recorder.ended(gen.id), Delivered)
        ]
    assert failed == []
    assert [len(bot.recorder.images(gen.id)) for gen in gens] == [1] * len(gens)
    assert sum(sim.stats().for_key(key).tasks_created for key in keys) == len(gens)


async def test_a_restart_resumes_unfinished_work_from_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    # the simulator holds every task running: the bot stops while all three are at the
    # provider, however long that takes
    async with Simulator(SimConfig(time_scale=60.0, hold_tasks=True, seed=3)) as sim:
        first = Recorder()
        async with running_bot(tmp_path, sim, database_url=pg_url, recorder=first) as bot:
            await bot.bind("alice", KEY)
            gens = [await bot.ask("alice", f"poster {n} --fast --res 1k") for n in range(3)]
            await first.started(3)
        async with await PostgresStore.open(pg_url) as store:
            left = await store.unfinished_generations()
        assert {(g.id, g.status) for g in left} == {(g.id, GenStatus.SUBMITTED) for g in gens}
        assert sim.stats().for_key(KEY).tasks_completed == 0
        assert sim.release() == 3
        second = Recorder()
        async with running_bot(tmp_path, sim, database_url=pg_url, recorder=second) as bot:
            await bot.settled()
            assert await bot.store.unfinished_generations() == []
        created = sim.stats().for_key(KEY).tasks_created
    for gen in gens:
        assert isinstance(await second.ended(gen.id), Delivered)
        assert first.images(gen.id) == [] and len(second.images(gen.id)) == 1
    assert created == 3  # polled again, never sent twice


async def test_engines_share_a_postgresql_database_and_migrate_db_has_it_alone(
    make_bot: MakeBot, pg_url: str, tmp_path: Path
) -> None:
    async with make_bot(database_url=pg_url) as bot:
        assert not bot.runtime.coordinator.sole
        async with open_runtime(
            Config(),
            {},
            database_url=pg_url,
            tastemachine_url="http://127.0.0.1:9",
            vault=Vault(Fernet.generate_key()),
        ) as second:  # a second engine on the same database is welcome
            assert await second.store.ping() and not second.coordinator.sole
            assert second.coordinator.member != bot.runtime.coordinator.member
        # what migrate-db takes (the engine lock alone) is refused while an engine runs
        with pytest.raises(DatabaseInUse, match=r"^Another tmbot \(process \d+ on .*stop it"):
            await PostgresStore.open(pg_url, exclusive=True)
        assert await bot.store.ping()
    async with await PostgresStore.open(pg_url, exclusive=True):  # ... and while it holds it
        with pytest.raises(DatabaseInUse, match=r"tmbot migrate-db copies into it"):
            async with open_runtime(
                Config(),
                {},
                database_url=pg_url,
                tastemachine_url="http://127.0.0.1:9",
                vault=Vault(Fernet.generate_key()),
            ):
                pass


async def test_postgresql_takes_the_secret_from_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TMBOT_SECRET_KEY", raising=False)
    options: dict[str, Any] = {"database_url": pg_url, "tastemachine_url": "http://127.0.0.1:9"}
    with pytest.raises(ConfigError, match=r"^TMBOT_SECRET_KEY must be set when the database is"):
        async with open_runtime(Config(), {}, **options):
            pass
    monkeypatch.setenv("TMBOT_SECRET_KEY", Fernet.generate_key().decode())
    async with open_runtime(Config(), {}, **options) as runtime:
        assert await runtime.store.ping()
    assert list(tmp_path.iterdir()) == []  # no key file made anywhere


# --- migrate-db --------------------------------------------------------------------------


async def _migrate_db(source: str, target: str, env: dict[str, str]) -> tuple[int, str, str]:
    return await _migrate_db_args(env, "--from", source, "--to", target)


async def _migrate_db_args(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> tuple[int, str, str]:
    return await run_tmbot("migrate-db", *args, env=env, cwd=cwd, timeout=120)


async def test_migrate_db_copies_a_sqlite_database_the_bot_then_uses_on_postgresql(
    tmp_path: Path, sim: Simulator, pg_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'bot.db'}"
    # a lived-in SQLite database: keys, budgets, settings, a request channel, images made,
    # a regenerate remembered, and one image whose events never reached the platform
    async with running_bot(tmp_path, sim) as bot:
        admin = bot.actor("admin", admin=True)
        for text in (f"team key {TEAM}", "team budget @bob 50/day", "team budget default 9/month"):
            await bot.engine.execute(admin, text, bot.place)
        await bot.engine.execute(admin, "team channel on", bot.place)
        await bot.bind("alice", KEY)
        await bot.bind("bob", BOB)
        await bot.engine.execute(bot.actor("alice"), "settings --ar 3:4 --fast", bot.place)
        made = [await bot.ask("alice", f"poster {n} --res 1k") for n in range(2)]
        await bot.settled()
        again = await bot.engine.execute(bot.actor("bob"), f"regenerate {made[0].id}", bot.place)
        assert isinstance(again, GenerationAccepted)
        await bot.settled()
    async with running_bot(tmp_path, sim, dispatch=False) as bot:
        waiting = await bot.ask("alice", "a poster nobody has seen yet")
        await bot.engine.wait_idle()
    async with await SqliteStore.open(tmp_path / "bot.db") as before:
        keys = await before.list_keys()
        gens = [g for g in await before.recent_generations("test:T1", "alice", limit=99)]
        gens += await before.recent_generations("test:T1", "bob", limit=99)
        budgets = await before.list_budgets("test:T1")
        settings = await before.get_settings("test:T1", "alice")
        channels = await before.request_channels("test:T1")
        pending = await before.pending_events("test", limit=99)
        links = {g.id: await before.messages_for_generation(g.id) for g in gens}
    assert len(keys) == 3 and len(gens) == 4 and len(budgets) == 2 and channels == ["C1"]
    assert pending and {e.generation_id for e in pending} == {waiting.id}

    env = {k: v for k, v in os.environ.items() if not k.startswith("TMBOT_")}
    code, out, err = await _migrate_db(sqlite_url, pg_url, env)
    assert (code, err) == (0, "")
    counts = dict(re.findall(r"^(\w+) +(\d+)$", out, re.M))
    assert counts["key_bindings"] == "3" and counts["generations"] == "4"
    assert counts["team_budgets"] == "2" and counts["request_channels"] == "1"
    assert int(counts["outbox"]) > len(pending) and counts["seen"] == "1"
    assert set(counts) >= {"users", "message_links", "link_codes", "team_links", "person_links"}
    # the harness passes its vault in: no key file beside the database, no secret set
    assert out.endswith(
        "Keys were copied encrypted: set TMBOT_SECRET_KEY to the secret they were stored with.\n"
    )

    async with await PostgresStore.open(pg_url) as store:  # what was copied, as it was
        assert await store.list_keys() == keys
        vault = Vault((tmp_path / "fernet.key").read_bytes())  # the harness's secret
        assert {vault.decrypt(k.ciphertext).secret for k in keys} == {KEY, TEAM, BOB}
        for gen in gens:
            assert await store.get_generation(gen.id) == gen
            assert await store.messages_for_generation(gen.id) == links[gen.id]
        assert await store.list_budgets("test:T1") == budgets
        assert await store.get_settings("test:T1", "alice") == settings
        assert await store.request_channels("test:T1") == channels
        assert await store.pending_events("test", limit=99) == pending
        assert await store.event_blob(pending[-1].id) is not None  # the image to post
        # bob's regenerate is remembered (a live record answers with its value)
        marker = f"test:T1|bob|{made[0].id}"
        assert (
            await store.remember("regenerate", marker, value="x", now=0.0, ttl=1.0)
            == again.generation.id
        )

    recorder = Recorder()
    async with running_bot(tmp_path, sim, database_url=pg_url, recorder=recorder) as bot:
        # the bot on PostgreSQL hands over what the SQLite one left, once
        await bot.settled()
        assert isinstance(await recorder.ended(waiting.id), Delivered)
        assert len(recorder.images(waiting.id)) == 1
        # new rows continue after the copied ids; the keys decrypt (credits, a new image)
        more = await bot.ask("alice", "one more poster")
        await bot.settled()
        assert isinstance(await recorder.ended(more.id), Delivered)
        credits = await bot.engine.execute(bot.actor("alice"), "credits", bot.place)
        assert isinstance(credits, CreditsView)
        assert [(e.fingerprint, e.unusable) for e in credits.entries] == [("…0001", None)]

    code, out, err = await _migrate_db(sqlite_url, pg_url, env)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("tmbot: The PostgreSQL database tmbot_test_")
    assert "already holds data" in line and "migrate-db only fills an empty database." in line


async def test_migrate_db_refuses_what_it_cannot_copy(tmp_path: Path, pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMBOT_")}
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    cases = {
        (missing, pg_url): f"There is no SQLite database at {tmp_path / 'none.db'} to copy.",
        (pg_url, pg_url): "--from must name a SQLite database (sqlite:///path.db).",
        (missing, missing): "--to must name a PostgreSQL database (postgresql://…).",
    }
    for (source, target), says in cases.items():
        code, out, err = await _migrate_db(source, target, env)
        assert (code, out, err) == (2, "", f"tmbot: {says}\n")
    assert not (tmp_path / "none.db").exists()


async def test_migrate_db_takes_the_target_from_tmbot_database_url(
    tmp_path: Path, pg_url: str
) -> None:
    """The recommended form: no URL (no password) in argv; --from defaults to tmbot.db."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMBOT_")}
    code, out, err = await _migrate_db_args(env, cwd=tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        "tmbot: migrate-db needs the PostgreSQL database to fill: set "
        "TMBOT_DATABASE_URL=postgresql://user:password@host:5432/database (or pass --to).\n"
    )
    sqlite_env = {**env, "TMBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    code, out, err = await _migrate_db_args(sqlite_env, cwd=tmp_path)
    assert code == 2 and err.startswith("tmbot: TMBOT_DATABASE_URL names a SQLite database")

    async with await SqliteStore.open(tmp_path / "tmbot.db"):
        pass  # an empty database at this tmbot's schema, where --from looks by default
    code, out, err = await _migrate_db_args({**env, "TMBOT_DATABASE_URL": pg_url}, cwd=tmp_path)
    assert (code, err) == (0, ""), err
    assert "Copied 0 rows from the database tmbot.db into " in out
    assert pg_url not in out


async def test_migrate_db_notes_a_password_in_argv(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMBOT_")}
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    target = "postgresql://tmbot:hunter2hunter2@127.0.0.1:9/tmbot"
    code, out, err = await _migrate_db(missing, target, env)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "tmbot: note: a password in --to shows in the process list; set TMBOT_DATABASE_URL "
        "instead and leave --to out.",
        f"tmbot: There is no SQLite database at {tmp_path / 'none.db'} to copy.",
    ]


# --- processes -----------------------------------------------------------------------------


async def test_a_console_on_postgresql_and_status_beside_it(tmp_path: Path, pg_url: str) -> None:
    secret = Fernet.generate_key().decode()
    async with sim_process("--time-scale", "60") as sim:
        env = bot_env(sim.url, tmp_path / "unused.db", scale=60.0)
        env.update(TMBOT_DATABASE_URL=pg_url, TMBOT_SECRET_KEY=secret)
        briefs = [f"a poster number {i} --fast --res 1k" for i in range(2)]
        code, stdout, stderr = await run_console(env, tmp_path / "images", [f"key {KEY}", *briefs])
        assert code == 0, stderr
        assert len(re.findall(r"^\[\w+\] delivered: ", stdout, re.M)) == 2
        status = await asyncio.create_subprocess_exec(
            *tmbot_command("status"), env=env, stdout=asyncio.subprocess.PIPE
        )
        shown, _ = await asyncio.wait_for(status.communicate(), 60)
        assert status.returncode == 0 and "delivered" in shown.decode()
        assert (await sim.stats())["totals"]["tasks_created"] == 2
    assert not list(tmp_path.glob("*.key")) and not (tmp_path / "unused.db").exists()


async def test_postgresql_settings_that_cannot_work_are_one_line_and_exit_code_2(
    tmp_path: Path, pg_url: str
) -> None:
    secret = Fernet.generate_key().decode()
    port = dead_port()
    base = bot_env("http://127.0.0.1:9", tmp_path / "x.db", scale=1.0)
    wrong_db = pg_url.rsplit("/", 1)[0] + "/nowhere"
    cases = {
        "refused": (
            {
                "TMBOT_DATABASE_URL": f"postgresql://bot:hunter2secret@127.0.0.1:{port}/tmbot",
                "TMBOT_SECRET_KEY": secret,
            },
            f"tmbot: PostgreSQL at 127.0.0.1:{port} refused the connection; check that the "
            "server runs there and that TMBOT_DATABASE_URL names its port.",
        ),
        "no secret": (
            {"TMBOT_DATABASE_URL": pg_url},
            "tmbot: TMBOT_SECRET_KEY must be set when the database is PostgreSQL",
        ),
        "no database": (
            {"TMBOT_DATABASE_URL": wrong_db, "TMBOT_SECRET_KEY": secret},
            "tmbot: PostgreSQL at 127.0.0.1:",
        ),
    }
    for name, (extra, says) in cases.items():
        env = {k: v for k, v in base.items() if k != "TMBOT_SECRET_KEY"}
        code, stdout, stderr = await run_console({**env, **extra}, tmp_path / "out", ["help"])
        assert (code, stdout) == (2, ""), name
        (line,) = stderr.splitlines()
        assert line.startswith(says) and line.endswith("."), (name, line)
        assert "hunter2secret" not in stderr and "Traceback" not in stderr


async def test_doctor_on_postgresql_names_the_database_and_requires_the_secret(
    tmp_path: Path, pg_url: str
) -> None:
    await (await PostgresStore.open(pg_url)).close()  # a migrated database
    env = bot_env(f"http://127.0.0.1:{dead_port()}", tmp_path / "x.db", scale=1.0)
    env.update(TMBOT_DATABASE_URL=pg_url, TMBOT_SECRET_KEY=Fernet.generate_key().decode())

    async def doctor(environment: dict[str, str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *tmbot_command("doctor"), env=environment, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1  # no chat platform, dead providers: never all ok here
        return out.decode() + err.decode()

    name, port = pg_url.rsplit("/", 1)[1], pg_url.split(":")[-1].split("/")[0]
    said = await doctor(env)
    assert f"ok   database: the PostgreSQL database {name} at 127.0.0.1:{port} (schema " in said
    assert "ok   secret: TMBOT_SECRET_KEY is set" in said
    del env["TMBOT_SECRET_KEY"]
    assert "FAIL secret: TMBOT_SECRET_KEY must be set when the database is PostgreSQL" in (
        await doctor(env)
    )
    env["TMBOT_DATABASE_URL"] = pg_url.rsplit("/", 1)[0] + "/nowhere"
    assert "FAIL database: PostgreSQL at 127.0.0.1:" in await doctor(env)
    assert not list(tmp_path.iterdir())  # nothing made


async def test_a_console_killed_on_postgresql_leaves_its_work_to_the_next_start(
    tmp_path: Path, pg_url: str
) -> None:
    """kill -9 while two images are at the provider: the server ends the session and its
    engine lock, the next console starts at once, polls both again (never re-sends) and
    delivers each once."""
    secret = Fernet.generate_key().decode()
    # the simulator holds every task running: both are at the provider when the console dies
    async with sim_process("--time-scale", "60", "--hold-tasks") as sim:
        env = bot_env(sim.url, tmp_path / "unused.db", scale=60.0)
        env.update(TMBOT_DATABASE_URL=pg_url, TMBOT_SECRET_KEY=secret)
        first = await start_console(env, tmp_path / "images", "--user", "alice")
        assert first.stdin is not None and first.stdout is not None
        briefs = "".join(f"a poster number {i}\n" for i in range(2))
        first.stdin.write(f"key {KEY}\n{briefs}".encode())
        await first.stdin.drain()
        started: set[str] = set()
        while len(started) < 2:
            line = (await asyncio.wait_for(first.stdout.readline(), 60)).decode()
            assert line and " delivered: " not in line, line
            started |= set(re.findall(r"^\[(\w+)\] started ", line))
        first.kill()
        await first.wait()
        assert (await sim.stats())["totals"]["tasks_completed"] == 0
        assert await sim.release() == 2
        code, stdout, stderr = await run_console(env, tmp_path / "images", [])
        assert code == 0, stderr
        assert set(re.findall(r"^\[(\w+)\] delivered: ", stdout, re.M)) == started
        assert (await sim.stats())["totals"]["tasks_created"] == 2


# --- losing the engine lock ----------------------------------------------------------------


async def test_an_engine_that_loses_its_engine_lock_stops_its_work(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Simulator(SimConfig(time_scale=60.0, hold_tasks=True)) as sim:
        first = Recorder()
        with pytest.raises(EngineLockLost):
            async with running_bot(tmp_path, sim, database_url=pg_url, recorder=first) as bot:
                await bot.bind("alice", KEY)
                gen = await bot.ask("alice", "a poster held at the provider --fast --res 1k")
                await first.started(1)
                assert bot.engine.running == 1
                await end_the_engine_lock_session(pg_url)
                # the runtime cancels this task out of here (a timeout would fail the test)
                await asyncio.wait_for(asyncio.Event().wait(), 60)
        # its work stopped: nothing runs, nothing is handed over, its store is closed
        assert bot.engine.closed and bot.engine.running == 0
        assert not await bot.store.ping()
        said = [r for r in caplog.records if r.getMessage() == LOCK_LOST]
        assert [r.levelname for r in said] == ["ERROR"]
        polls = sim.stats().for_key(KEY).polls
        assert sim.release() == 1
        # the next engine (a supervisor's restart) takes the lock and ends the work, once
        second = Recorder()
        async with running_bot(tmp_path, sim, database_url=pg_url, recorder=second) as again:
            await again.settled()
        assert isinstance(await second.ended(gen.id), Delivered)
        assert first.images(gen.id) == [] and len(second.images(gen.id)) == 1
        assert sim.stats().for_key(KEY).tasks_created == 1
        assert sim.stats().for_key(KEY).polls > polls


async def test_a_console_that_loses_its_engine_lock_exits_1_with_one_line(
    tmp_path: Path, pg_url: str
) -> None:
    secret = Fernet.generate_key().decode()
    async with sim_process("--time-scale", "60", "--hold-tasks") as sim:
        env = bot_env(sim.url, tmp_path / "unused.db", scale=60.0)
        env.update(TMBOT_DATABASE_URL=pg_url, TMBOT_SECRET_KEY=secret)
        console = await start_console(env, tmp_path / "images", "--user", "alice")
        assert console.stdin is not None and console.stdout is not None
        console.stdin.write(f"key {KEY}\na poster held at the provider\n".encode())
        await console.stdin.drain()
        while True:  # stdin stays open: without the loss it would run on
            line = (await asyncio.wait_for(console.stdout.readline(), 60)).decode()
            assert line, "the console ended before its image started"
            if re.match(r"^\[\w+\] started ", line):
                break
        await end_the_engine_lock_session(pg_url)
        rest, stderr = await asyncio.wait_for(console.communicate(), 60)
        assert console.returncode == 1
        assert " delivered: " not in rest.decode()
        said = stderr.decode()
        assert said.count(LOCK_LOST) == 1 and "Traceback" not in said
        assert (await sim.stats())["totals"]["tasks_created"] == 1
