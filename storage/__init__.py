"""Implementations of :class:`tmbot.ports.Store`.

:mod:`storage.sqlite` is the embedded default (aiosqlite, WAL, numbered migrations in
``storage/migrations/``); :mod:`storage.postgres` the shared store (asyncpg, the same numbered
migrations in ``storage/migrations/postgres/``). :func:`open_store` picks one from
``TMBOT_DATABASE_URL``. Only the composition root (``tmbot.runtime``, ``tmbot.cli``) imports
this package.
"""

from storage.database import Database, Dialect, database, open_coordinator, open_store
from storage.postgres import PostgresStore
from storage.sqlite import DEFAULT_DATABASE_URL, SqliteStore, path_from_url

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Database",
    "Dialect",
    "PostgresStore",
    "SqliteStore",
    "database",
    "open_coordinator",
    "open_store",
    "path_from_url",
]
