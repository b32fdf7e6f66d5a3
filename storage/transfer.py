"""``tmbot migrate-db``: copy a SQLite database into an empty PostgreSQL one.

The source is opened as the engine would open it (its lock taken, so no bot writes to it
meanwhile, and migrated to this tmbot's schema); the target likewise (its engine lock taken,
migrated) and refused when any of its tables holds a row. Then every table is copied in one
PostgreSQL transaction, rows as they are: keys stay Fernet ciphertext (the same secret opens
them), outbox events keep their ids, ``seq`` and blobs, message links keep their order (SQLite's
rowid becomes the PostgreSQL table's ``rowid``), and the identity counters continue after the
copied ids. Column names come from the target's catalog and exist on both sides (the contract
suite checks that the two schemas have the same tables and columns); values are never part
of SQL text.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.database import Database, Dialect
from storage.postgres import PostgresStore
from storage.sqlite import SqliteStore
from tmbot.errors import ConfigError

#: Tables whose rows others refer to come first; any table not named here follows, by name.
COPY_ORDER = (
    "users",
    "key_bindings",
    "generations",
    "message_links",
    "team_budgets",
    "request_channels",
    "outbox",
    "seen",
    "link_codes",
    "team_links",
    "person_links",
)

#: Rows sent to PostgreSQL per COPY.
BATCH = 500


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


async def migrate_database(source: Database, target: Database) -> list[Copied]:
    """Copy every table of the SQLite ``source`` into the empty PostgreSQL ``target``; the
    rows copied per table. Every refusal is one :class:`ConfigError` sentence."""
    if source.dialect is not Dialect.SQLITE or source.path is None:
        raise ConfigError("--from must name a SQLite database (sqlite:///path.db).")
    if target.dialect is not Dialect.POSTGRESQL:
        raise ConfigError("--to must name a PostgreSQL database (postgresql://…).")
    path = source.path
    if str(path) == ":memory:" or not path.is_file():
        raise ConfigError(f"There is no SQLite database at {path} to copy.")
    # the engine's way in: locked (no bot writes meanwhile) and migrated to this schema
    sqlite_store = await SqliteStore.open(path, exclusive=True)
    try:
        pg = await PostgresStore.open(target.url, exclusive=True)
        try:
            held = {table: n for table, n in (await pg.row_counts()).items() if n}
            if held:
                shown = ", ".join(f"{n} in {table}" for table, n in sorted(held.items()))
                raise ConfigError(
                    f"{target.shown[0].upper()}{target.shown[1:]} already holds data "
                    f"({shown}); migrate-db only fills an empty database."
                )
            tables = await pg.table_columns()
            order = [t for t in COPY_ORDER if t in tables]
            order += sorted(t for t in tables if t not in order)
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                present = {
                    row[0]
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                missing = [t for t in order if t not in present]
                if missing:
                    raise ConfigError(
                        f"The SQLite database {path} has no table {missing[0]}, which "
                        "PostgreSQL's schema has; the two schemas differ (a bug)."
                    )
                counts = await pg.load_tables(
                    (table, tables[table], _rows(db, table, tables[table])) for table in order
                )
        finally:
            await pg.close()
    finally:
        await sqlite_store.close()
    return [Copied(table, counts[table]) for table in order]


def _rows(
    db: sqlite3.Connection, table: str, columns: Sequence[str]
) -> Iterator[Sequence[tuple[object, ...]]]:
    """The table's rows in the order SQLite stored them, a batch at a time. The names come
    from PostgreSQL's catalog (identifiers, quoted), never from a value."""
    names = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    quoted = '"' + table.replace('"', '""') + '"'
    cursor = db.execute(f"SELECT {names} FROM {quoted} ORDER BY rowid")  # noqa: S608
    while batch := cursor.fetchmany(BATCH):
        yield [tuple(row) for row in batch]


def key_file_hint(source: Database, secret_set: bool) -> str:
    """What to do about the secret after a copy (keys stay encrypted with it)."""
    if secret_set:
        return (
            "Keys were copied encrypted: run the bot on PostgreSQL with the same TMBOT_SECRET_KEY."
        )
    key_file = source.key_file
    if key_file is not None and Path(key_file).exists():
        return (
            "Keys were copied encrypted: set TMBOT_SECRET_KEY to the secret in "
            f"{key_file} when the bot runs on PostgreSQL."
        )
    return "Keys were copied encrypted: set TMBOT_SECRET_KEY to the secret they were stored with."
