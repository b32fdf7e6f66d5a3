"""`tmbot …` entry points. The parts are wired together by :mod:`tmbot.runtime`, the one
composition root; this module adds the front ends (the console, the demo, the simulator)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from dotenv import load_dotenv

from adapters.console import PLATFORM, Console, ConsoleNotifier, stdin_lines
from storage import Database, database, open_store
from storage import postgres as pg
from storage.sqlite import DEFAULT_DATABASE_URL, SqliteStore, latest_schema, stored_schema
from storage.transfer import key_file_hint, migrate_database
from tmbot import doctor, heap
from tmbot.config import Config
from tmbot.domain import ApiKey, ProviderName
from tmbot.errors import ConfigError, EngineLockLost, TmbotError
from tmbot.logs import configure_logging
from tmbot.providers.tastemachine import DEFAULT_BASE_URL as TASTEMACHINE_URL
from tmbot.providers.vtrix import DEFAULT_BASE_URL as VTRIX_URL
from tmbot.records import KeyBinding
from tmbot.redact import RedactingFilter
from tmbot.replies import GenerationAccepted
from tmbot.runtime import open_runtime
from tmbot.shutdown import Stopper
from tmbot.texts import overview_text
from tmbot.vault import SECRET_KEY_ENV

log = logging.getLogger(__name__)

DEMO_DATABASE_URL = "sqlite:///.tmbot-demo/tmbot.db"
DEMO_KEY = "tm_test_demo0000000000000000"
DEMO_LINES = (
    "a minimal poster for a Tokyo coffee shop, warm tones, editorial feel --ar 3:4",
    "a lighthouse at dawn seen from the beach --ar 16:9 --fast --taste realistic-photo",
)


async def _console(config: Config, args: argparse.Namespace, redactor: RedactingFilter) -> int:
    notifier = ConsoleNotifier(Path(args.out))
    stopper = Stopper()
    stopper.install()
    async with open_runtime(config, {PLATFORM: notifier}, redactor=redactor) as rt:
        console = Console(rt.engine, user=args.user, admins=args.admin)
        await rt.engine.resume()
        return await console.run(
            stopper.lines(stdin_lines()),
            lambda: stopper.settle(rt.settled, config.shutdown_grace),
        )


async def _demo(config: Config, args: argparse.Namespace, redactor: RedactingFilter) -> int:
    from tmbot.simulator import SimConfig, Simulator  # the demo's stand-in for the real APIs

    scale = args.time_scale
    config = Config(
        database_url=config.database_url or DEMO_DATABASE_URL,
        time_scale=scale,
        deadline_seconds=config.deadline_seconds,
        http_timeout=config.http_timeout,
        log_level=config.log_level,
    )
    out = Path(args.out)
    notifier = ConsoleNotifier(out)
    async with Simulator(SimConfig(time_scale=scale)) as sim:
        print(f"tmbot demo: simulated image APIs at {sim.base_url} (time ×{scale:g})")
        async with open_runtime(
            config,
            {PLATFORM: notifier},
            redactor=redactor,
            tastemachine_url=sim.base_url,
            vtrix_url=sim.base_url,
        ) as rt:
            console = Console(rt.engine, user="you", admins=["you"])
            await rt.engine.resume()
            print(f"> key {ApiKey(DEMO_KEY).fingerprint}")
            await console.handle_line(f"key {DEMO_KEY}")
            first = None
            for line in DEMO_LINES:
                print(f"> {line}")
                reply = await console.handle_line(line)
                if first is None and isinstance(reply, GenerationAccepted):
                    first = reply.generation.id
            await rt.settled()
            if first is not None:
                print(f"> regenerate {first}")
                await console.handle_line(f"regenerate {first}")
                await rt.settled()
            print("> credits")
            await console.handle_line("credits")
            print(f"Images are in {args.out}")
            if sys.stdin.isatty():
                print("Type more briefs, `help`, or Ctrl-D to quit.")
                await console.run(stdin_lines(), rt.settled)
    return 0


def _discord(config: Config, args: argparse.Namespace, redactor: RedactingFilter) -> int:
    from adapters.discord import main as discord_main  # imported only when it is used

    if args.action == "invite-url":
        print(discord_main.invite_url(args.client_id))
        return 0
    _check_port("--health-port", args.health_port)
    return asyncio.run(
        discord_main.serve(
            config, os.environ, redactor, health_port=args.health_port, host=args.host
        )
    )


def _check_port(flag: str, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"{flag} must be between 0 and 65535 (0 picks a free one), not {port}.")


async def _run(config: Config, args: argparse.Namespace, redactor: RedactingFilter) -> int:
    """``tmbot run``: every configured platform in one process, one runtime."""
    from adapters import runner
    from adapters.discord import main as discord_main
    from adapters.slack import main as slack_main

    _check_port("--port", args.port)
    _check_port("--health-port", args.health_port)
    env = os.environ
    if not (slack_main.configured(env) or discord_main.configured(env)):
        raise ConfigError(runner.NO_PLATFORM)
    adapters: list[runner.Adapter] = []
    if slack_main.configured(env):
        adapters.append(await slack_main.adapter(env, http=args.http, redactor=redactor))
    if discord_main.configured(env):
        adapters.append(discord_main.DiscordAdapter(env, redactor=redactor))
    # --http: everything served is on --port (Slack's endpoint when Slack runs, the health
    # routes always), so a PaaS web process with only DISCORD_TOKEN still binds $PORT
    stopper = Stopper()
    stopper.install()
    return await runner.serve(
        config,
        adapters,
        redactor=redactor,
        name="run",
        host=args.host,
        port=args.port if args.http else args.health_port,
        port_flag="--port" if args.http else "--health-port",
        stopper=stopper,
    )


_SIM_RATES = ("failure_rate", "error_rate", "timeout_rate", "malformed_rate")


def _check_sim_args(args: argparse.Namespace) -> None:
    """Every bad ``tmbot sim`` knob is one sentence (and exit code 2), never a traceback."""
    for name in _SIM_RATES:
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be a fraction between 0 and 1, not {value:g}.")
    if not 0 <= args.port <= 65535:
        raise ConfigError(
            f"--port must be between 0 and 65535 (0 picks a free one), not {args.port}."
        )
    for flag, value in (("--time-scale", args.time_scale), ("--image-ttl", args.image_ttl)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} must be a finite number greater than zero, not {value:g}.")
    if not (math.isfinite(args.hang_seconds) and args.hang_seconds >= 0):
        raise ConfigError(
            f"--hang-seconds must be a finite number of seconds, not {args.hang_seconds:g}."
        )


async def _status(config: Config) -> int:
    """Read the database beside a running bot (no lock, nothing resumed) and print it."""
    target = database(config.database_url)
    if target.path is None:  # PostgreSQL: read-only, a schema it cannot read is refused
        store = await open_store(target, read_only=True)
        try:
            print(overview_text(await store.overview(), now=time.time()))
        finally:
            await store.close()
        return 0
    path = target.path
    if not path.exists():
        print(f"No database at {path} yet: nothing has run there.")
        return 0
    schema, latest = stored_schema(path), latest_schema()
    if schema != latest:
        raise ConfigError(
            f"The database {path} is at schema {schema} and this tmbot reads {latest}; "
            "start the bot once (it migrates the database) or use the matching tmbot."
        )
    async with await SqliteStore.open(path, read_only=True) as store:
        print(overview_text(await store.overview(), now=time.time()))
    return 0


async def _platform_checks(env: Mapping[str, str]) -> list[doctor.Finding]:
    """Each configured platform's token tried against the platform (its SDK, in adapters/)."""
    found = []
    if env.get("SLACK_BOT_TOKEN", "").strip():
        from adapters.slack.main import doctor_check as slack_check

        found.append(await slack_check(env))
    if env.get("DISCORD_TOKEN", "").strip():
        from adapters.discord.main import doctor_check as discord_check

        found.append(await discord_check(env))
    return found


async def _doctor(config: Config) -> int:
    """One line per check; exit 0 when all pass, 1 otherwise. Nothing is locked or
    migrated, no secret is printed."""
    target = database(config.database_url)
    findings = [*doctor.tokens(os.environ)]
    findings += await _platform_checks(os.environ)
    bindings: list[KeyBinding] = []
    if target.path is None:
        found, bindings = await _postgres_finding(target)
        findings.append(found)
    else:
        path = target.path
        schema = stored_schema(path)
        findings.append(doctor.database(path, schema=schema, latest=latest_schema()))
        if schema:
            async with await SqliteStore.open(path, read_only=True) as store:
                bindings = await store.list_keys()
    secret, vault = doctor.secret(os.environ, target.key_file, stored_keys=len(bindings))
    findings += [secret, doctor.keys(bindings, vault)]
    for name, url in (
        (ProviderName.TASTEMACHINE, config.tastemachine_url or TASTEMACHINE_URL),
        (ProviderName.VTRIX, config.vtrix_url or VTRIX_URL),
    ):
        findings.append(await doctor.provider(name, url))
    text, healthy = doctor.report(findings)
    print(text)
    return 0 if healthy else 1


async def _postgres_finding(target: Database) -> tuple[doctor.Finding, list[KeyBinding]]:
    """PostgreSQL for ``doctor``: reachable, at this tmbot's schema (read only)."""
    try:
        store = await open_store(target, read_only=True)
    except ConfigError as err:
        return doctor.Finding("database", False, err.user_message.rstrip("."), ""), []
    try:
        bindings = await store.list_keys()
    finally:
        await store.close()
    detail = f"{target.shown} (schema {pg.latest_schema()})"
    return doctor.Finding("database", True, detail), bindings


def _migration_target(config: Config, flag: str | None) -> Database:
    """``--to``, else ``TMBOT_DATABASE_URL`` (the recommended form: a password in an argument
    is in the process list and the shell's history)."""
    if flag is not None:
        parts = urlsplit(flag)
        if parts.password or "password=" in parts.query:
            print(
                "tmbot: note: a password in --to shows in the process list; set "
                "TMBOT_DATABASE_URL instead and leave --to out.",
                file=sys.stderr,
            )
        return database(flag)
    if config.database_url is None:
        raise ConfigError(
            "migrate-db needs the PostgreSQL database to fill: set "
            "TMBOT_DATABASE_URL=postgresql://user:password@host:5432/database (or pass --to)."
        )
    target = database(config.database_url)
    if target.path is not None:
        raise ConfigError(
            "TMBOT_DATABASE_URL names a SQLite database; migrate-db fills a PostgreSQL one: "
            "set TMBOT_DATABASE_URL=postgresql://… (or pass --to)."
        )
    return target


async def _migrate_db(config: Config, args: argparse.Namespace) -> int:
    """Copy a SQLite database into an empty PostgreSQL one; counts per table."""
    source, target = database(args.source), _migration_target(config, args.target)
    copied = await migrate_database(source, target)
    width = max(len(c.table) for c in copied)
    for c in copied:
        print(f"{c.table:<{width}}  {c.rows}")
    total = sum(c.rows for c in copied)
    print(f"Copied {total} rows from {source.shown} into {target.shown}.")
    print(key_file_hint(source, secret_set=bool(os.environ.get(SECRET_KEY_ENV, "").strip())))
    return 0


async def _sim(args: argparse.Namespace) -> int:
    from tmbot.simulator import SimConfig, run_server

    _check_sim_args(args)
    config = SimConfig(
        time_scale=args.time_scale,
        task_failure_rate=args.failure_rate,
        server_error_rate=args.error_rate,
        timeout_rate=args.timeout_rate,
        malformed_rate=args.malformed_rate,
        image_ttl_seconds=args.image_ttl,
        hang_seconds=args.hang_seconds,
        seed=args.seed,
        hold_tasks=args.hold_tasks,
    )
    try:
        await run_server(args.host, args.port, config)
    except OSError as exc:
        raise ConfigError(
            f"The simulator cannot listen on {args.host} port {args.port} "
            f"({exc.strerror or 'address unavailable'}); pick another with --port, or --port 0 "
            "for a free one."
        ) from None
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message.rstrip('.')} (see `{self.prog} --help`).\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tmbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    console = sub.add_parser("console", help="the terminal front end: one command per line")
    console.add_argument("--user", default=os.environ.get("USER") or "me", help="who you are")
    console.add_argument(
        "--admin", action="append", default=[], metavar="NAME", help="a team admin (repeatable)"
    )
    console.add_argument("--out", default="tmbot-images", help="where images are saved")

    demo = sub.add_parser("demo", help="run the bot against the bundled simulator")
    demo.add_argument("--out", default="tmbot-images", help="where images are saved")
    demo.add_argument("--time-scale", type=float, default=10.0, help="simulated speed-up")

    sub.add_parser("doctor", help="check the configuration: one line per check")
    migrate = sub.add_parser(
        "migrate-db", help="copy a SQLite database into an empty PostgreSQL database"
    )
    migrate.add_argument(
        "--from",
        dest="source",
        default=DEFAULT_DATABASE_URL,
        metavar="sqlite:///PATH",
        help=f"the SQLite database to copy (default: {DEFAULT_DATABASE_URL})",
    )
    migrate.add_argument(
        "--to",
        dest="target",
        default=None,
        metavar="postgresql://…",
        help="the empty PostgreSQL database (default, and recommended: TMBOT_DATABASE_URL, "
        "which keeps its password out of the process list)",
    )
    sub.add_parser("status", help="what the database holds: work per key, waiting events")
    discord_cmd = sub.add_parser("discord", help="run the Discord bot (DISCORD_TOKEN)")
    discord_cmd.add_argument("action", nargs="?", choices=("run", "invite-url"), default="run")
    discord_cmd.add_argument("--client-id", default=os.environ.get("DISCORD_CLIENT_ID", ""))
    discord_cmd.add_argument("--host", default="127.0.0.1", help="where --health-port listens")
    discord_cmd.add_argument(
        "--health-port", type=int, default=None, help="serve /healthz and /readyz here"
    )

    run = sub.add_parser(
        "run", help="run every configured platform (Slack, Discord) in one process"
    )
    run.add_argument(
        "--http", action="store_true", help="Slack in HTTP mode even with an app token"
    )
    run.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    run.add_argument(
        "--port",
        type=int,
        default=os.environ.get("PORT") or 3000,
        help="with --http: Slack HTTP mode's port ($PORT), with /healthz and /readyz (these "
        "alone when only Discord runs)",
    )
    run.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="/healthz and /readyz without --http (Socket Mode, or Discord alone)",
    )

    sim = sub.add_parser("sim", help="serve both image APIs locally (tests, demos)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=0, help="0 picks a free port")
    sim.add_argument("--time-scale", type=float, default=1.0)
    sim.add_argument("--failure-rate", type=float, default=0.0, help="tasks that end failed")
    sim.add_argument("--error-rate", type=float, default=0.0, help="requests answered 500")
    sim.add_argument("--timeout-rate", type=float, default=0.0, help="requests that hang")
    sim.add_argument(
        "--hang-seconds", type=float, default=35.0, help="how long a hanging request hangs"
    )
    sim.add_argument("--malformed-rate", type=float, default=0.0, help="garbled answers")
    sim.add_argument("--image-ttl", type=float, default=3600.0, help="image URL lifetime (s)")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument(
        "--hold-tasks",
        action="store_true",
        help="tasks stay running until POST /_sim/release (tests)",
    )

    slack = sub.add_parser("slack", help="run the Slack app (Socket Mode if SLACK_APP_TOKEN)")
    slack.add_argument("--http", action="store_true", help="HTTP mode even with SLACK_APP_TOKEN")
    slack.add_argument("--host", default="0.0.0.0", help="HTTP mode: address to listen on")  # noqa: S104
    slack.add_argument("--port", type=int, default=os.environ.get("PORT") or 3000)
    slack.add_argument(
        "--health-port", type=int, default=None, help="Socket Mode: serve /healthz and /readyz"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # a .env in the working directory fills in what the real environment leaves unset
    # (before the arguments: their defaults read PORT and DISCORD_CLIENT_ID)
    load_dotenv(Path.cwd() / ".env", override=False)
    args = _parser().parse_args(argv)
    if hasattr(args, "out"):
        args.out = os.path.abspath(args.out)
    try:
        config = Config.from_env(os.environ)
        redactor = configure_logging(level=config.log_level, fmt=config.log_format)
        if args.command == "doctor":
            return asyncio.run(_doctor(config))
        if args.command == "status":
            return asyncio.run(_status(config))
        if args.command == "migrate-db":
            return asyncio.run(_migrate_db(config, args))
        if args.command == "sim":
            return asyncio.run(_sim(args))
        if args.command in ("discord", "demo", "slack", "run", "console", None):
            heap.settle()  # a bot process that runs for long (tmbot.heap)
        if args.command == "discord":
            return _discord(config, args, redactor)
        if args.command == "demo":
            return asyncio.run(_demo(config, args, redactor))
        if args.command == "slack":
            from adapters.slack.main import run as run_slack

            return asyncio.run(
                run_slack(
                    config,
                    os.environ,
                    redactor=redactor,
                    http=args.http,
                    host=args.host,
                    port=args.port,
                    health_port=args.health_port,
                )
            )
        if args.command == "run":
            return asyncio.run(_run(config, args, redactor))
        return asyncio.run(_console(config, args, redactor))
    except EngineLockLost:
        return 1  # the runtime logged the one line saying why
    except TmbotError as err:
        print(f"tmbot: {err.user_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
