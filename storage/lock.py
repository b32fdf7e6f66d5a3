"""One engine per SQLite database: an exclusive lock held for as long as the engine runs.

The lock is ``flock`` on a file beside the database (``tmbot.db`` -> ``tmbot.db.lock``, mode
0600) that records the holder's pid. The kernel drops the lock when the process ends, even on
``kill -9``, so a stale file never blocks a restart. A second engine on the same database gets
:class:`tmbot.errors.DatabaseInUse`, one sentence naming the holder. Read-only tools (a future
``tmbot status`` or ``doctor``) open the store without the lock and resume nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tmbot.errors import ConfigError, DatabaseInUse

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None  # type: ignore[assignment]


def lock_path_for(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> DatabaseLock:
        path = lock_path_for(database)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"The lock file {path} beside the database cannot be created "
                f"({exc.strerror or 'unknown error'}); check the folder's permissions."
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise DatabaseInUse(
                    f"Another tmbot ({who}) is already running on the database {database}; stop "
                    "it first, or use PostgreSQL to run several processes on one database."
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
