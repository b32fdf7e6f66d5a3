"""A throwaway PostgreSQL cluster for the tests: the machine's server binaries, ``initdb``
into a temporary directory, a free port on 127.0.0.1, the socket in that directory, fsync
off. Run as the ``postgres`` OS user when the tests run as root (PostgreSQL refuses root).

:class:`Cluster` is started once per test session (``tests/conftest.py``) and removed at its
end; :meth:`Cluster.fresh_database` gives each test an empty database of its own. When the
binaries are missing or the server cannot start, :class:`ClusterUnavailable` says why in one
sentence, and the tests that need PostgreSQL fail with it (they are never skipped).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from storage.postgres import ENGINE_LOCK, LOCK_CLASS

#: where Debian puts the server binaries; the newest version found is used (15 here)
BINARY_GLOB = "/usr/lib/postgresql/*/bin/initdb"
#: the OS user the server runs as when we are root
SERVER_USER = "postgres"
#: the cluster's superuser (trust authentication: the cluster only listens on loopback)
SUPERUSER = "postgres"


class ClusterUnavailable(Exception):
    """PostgreSQL cannot be had here; the message is one sentence saying why."""


def find_binaries() -> Path:
    """The folder with ``initdb`` and ``pg_ctl`` (the newest installed version)."""
    found = sorted(glob.glob(BINARY_GLOB), key=_version_of)
    if not found:
        raise ClusterUnavailable(
            "PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/"
            "initdb); run scripts/ensure-postgres as root (make test does) or "
            "apt-get install postgresql."
        )
    return Path(found[-1]).parent


def _version_of(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    root: Path
    bin: Path
    port: int = 0
    started_seconds: float = 0.0
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # --- life -----------------------------------------------------------------------------

    @classmethod
    def start(cls) -> Cluster:
        began = time.monotonic()
        binaries = find_binaries()
        base = Path(tempfile.gettempdir())
        if os.geteuid() == 0 and not all(
            os.stat(folder).st_mode & 0o001 for folder in (base, *base.parents)
        ):
            base = Path("/tmp")  # noqa: S108 (the server's user must reach its folder)
        root = Path(tempfile.mkdtemp(prefix="tmbot-pg-", dir=base))
        cluster = cls(root=root, bin=binaries)
        try:
            if os.geteuid() == 0:
                try:
                    user = pwd.getpwnam(SERVER_USER)
                except KeyError:
                    raise ClusterUnavailable(
                        f"The tests run as root and there is no {SERVER_USER!r} OS user to run "
                        "PostgreSQL as (it refuses root); install the postgresql package."
                    ) from None
                os.chown(root, user.pw_uid, user.pw_gid)
            cluster._run(
                "initdb",
                "--pgdata",
                str(cluster.data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
            cluster._listen()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        cluster.started_seconds = time.monotonic() - began
        return cluster

    def _listen(self) -> None:
        """Start the server on a free port (another one if that port was taken meanwhile)."""
        for _ in range(3):
            self.port = _free_port()
            options = " ".join(
                (
                    f"-p {self.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-c unix_socket_directories={self.root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                    "-c shared_buffers=32MB",
                )
            )
            try:
                self._run(
                    "pg_ctl", "--pgdata", str(self.data), "--log", str(self.log),
                    "--options", options, "--wait", "--timeout", "60", "start",
                )  # fmt: skip
                return
            except ClusterUnavailable:
                if "could not bind" not in self._log_text():
                    raise
        raise ClusterUnavailable("PostgreSQL found no free port on 127.0.0.1 in three tries.")

    def stop(self) -> None:
        with contextlib.suppress(ClusterUnavailable):
            self._run("pg_ctl", "--pgdata", str(self.data), "--mode", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        try:
            done = subprocess.run(  # noqa: S603 (our own arguments)
                command, capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterUnavailable(f"PostgreSQL's {program} could not be run ({exc}).") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            tail = said[-1] if said else f"exit code {done.returncode}"
            raise ClusterUnavailable(f"PostgreSQL's {program} failed: {tail}")

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # --- databases ----------------------------------------------------------------------

    async def fresh_database(self, *, icu_locale: str | None = None) -> str:
        """An empty database of its own (its URL); ``icu_locale`` (e.g. ``en-US``) gives it
        that locale's collation instead of the cluster's C."""
        name = f"tmbot_test_{next(self._names)}"
        options = "TEMPLATE template0 ENCODING 'UTF8'"
        if icu_locale is not None:
            assert icu_locale.replace("-", "").isalnum()
            options += f" LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C.UTF-8'"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" {options}')
        finally:
            await conn.close()
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def end_the_engine_lock_session(url: str) -> None:
    """What a failover or an administrator does: the server ends the session holding the
    engine lock (and drops the lock with it)."""
    conn = await asyncpg.connect(url)
    try:
        ended = await conn.fetchval(
            # the timeout makes it wait until the backend has ended
            "SELECT COUNT(pg_terminate_backend(l.pid, 5000)) FROM pg_locks l"
            " WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2",
            LOCK_CLASS,
            ENGINE_LOCK,
        )
    finally:
        await conn.close()
    assert ended == 1
