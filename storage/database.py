"""The one place that picks a store from ``TMBOT_DATABASE_URL``.

``sqlite:///path.db`` is the embedded default (:mod:`storage.sqlite`, one process per file);
``postgresql://…`` (or ``postgres://…``) is the shared store (:mod:`storage.postgres`).
:func:`database` reads the URL once into a :class:`Database` value, which knows how to name
the database in a sentence without repeating the URL (it may hold a password) and where the
vault's key file may live; :func:`open_store` opens it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from storage import postgres
from storage.postgres import PostgresStore
from storage.sqlite import DEFAULT_DATABASE_URL, MEMORY, SqliteStore, path_from_url
from tmbot.coordination import SoleCoordinator
from tmbot.errors import ConfigError
from tmbot.ports import Coordinator, Store
from tmbot.vault import key_file_for


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Database:
    """Where everything is kept, as ``TMBOT_DATABASE_URL`` names it."""

    dialect: Dialect
    url: str = field(repr=False)
    #: the SQLite file (None for PostgreSQL)
    path: Path | None = None
    #: how a sentence names it: ``the database tmbot.db``, ``the PostgreSQL database tmbot at
    #: 127.0.0.1:5432`` (never the URL)
    shown: str = ""

    @property
    def key_file(self) -> Path | None:
        """Where the vault keeps a generated secret when ``TMBOT_SECRET_KEY`` is not set:
        beside a SQLite file. None for PostgreSQL (several processes on several hosts share
        the database, so the secret must come from ``TMBOT_SECRET_KEY``) and in memory."""
        if self.path is None or str(self.path) == MEMORY:
            return None
        return key_file_for(self.path)


def database(url: str | None = None) -> Database:
    """Read ``TMBOT_DATABASE_URL`` (None: the embedded default); a bad one is one
    :class:`ConfigError` sentence that does not repeat it."""
    url = (url or DEFAULT_DATABASE_URL).strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in postgres.SCHEMES:
        return Database(Dialect.POSTGRESQL, url, shown=postgres.parse_url(url).shown)
    if scheme in ("", "sqlite"):
        path = path_from_url(url)
        return Database(Dialect.SQLITE, url, path=path, shown=f"the database {path}")
    shown = re.fullmatch(r"[a-z][a-z0-9+.-]{0,19}", scheme)  # else it may hold a password
    raise ConfigError(
        "TMBOT_DATABASE_URL must be sqlite:///path.db (the default: one process) or "
        "postgresql://user:password@host:5432/database; "
        + (f"'{scheme}' databases are not supported." if shown else "it names neither.")
    )


async def open_store(
    url: str | Database | None = None,
    *,
    exclusive: bool = False,
    read_only: bool = False,
    now: Callable[[], float] = time.time,
) -> Store:
    """Open (and migrate) the store ``url`` names. ``exclusive`` is for the engine: one
    engine per SQLite file (a lock file beside it); on PostgreSQL any number of engines
    share the database (a shared session advisory lock, which ``tmbot migrate-db`` takes
    alone), each key's lane owned by one of them (:func:`open_coordinator`); ``read_only``
    is for looking beside a running bot."""
    target = url if isinstance(url, Database) else database(url)
    if target.dialect is Dialect.POSTGRESQL:
        # engines share a PostgreSQL database (each key's lane owned by one: storage.lanes)
        return await PostgresStore.open(
            target.url, exclusive=exclusive, shared=exclusive, read_only=read_only, now=now
        )
    assert target.path is not None  # noqa: S101 (a SQLite database always has one)
    return await SqliteStore.open(target.path, exclusive=exclusive, read_only=read_only, now=now)


def open_coordinator(store: Store) -> Coordinator:
    """Who runs which key's lane: on PostgreSQL shared with the other processes on the
    database (:mod:`storage.lanes`, started by the runtime); else this process alone."""
    if isinstance(store, PostgresStore):
        return store.coordinator()
    return SoleCoordinator()
