"""Implementations of :class:`tmbot.ports.Store`.

:mod:`storage.sqlite` is the embedded default (aiosqlite, WAL, numbered migrations in
``storage/migrations/``). Only ``tmbot.cli`` (the composition root) imports this package.
"""

from storage.sqlite import DEFAULT_DATABASE_URL, SqliteStore, path_from_url

__all__ = ["DEFAULT_DATABASE_URL", "SqliteStore", "path_from_url"]
