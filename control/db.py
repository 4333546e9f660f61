"""The coordination service's database: one SQLite file in WAL mode, versioned migrations, and
one transaction per request so that a rejected request leaves no trace."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from verifier.errors import StorageError

# Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE nodes (
        node_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        node_key BLOB NOT NULL UNIQUE,
        lock_key BLOB,
        key_signature BLOB,
        addresses TEXT NOT NULL DEFAULT '',
        created_unix INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
    );
    CREATE TABLE tka (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        enabled INTEGER NOT NULL DEFAULT 0,
        disabled_secret BLOB,
        support_secret BLOB,
        pending_genesis BLOB,
        pending_node_key BLOB
    );
    INSERT INTO tka(id) VALUES (1);
    """,
)


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except sqlite3.DatabaseError as err:
        raise StorageError(f"coordination database {path} is unusable: {err}") from None
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        version = schema_version(conn)
        if version > len(MIGRATIONS):
            raise StorageError(
                f"database schema version {version} is newer than this tka understands "
                f"({len(MIGRATIONS)}); upgrade tka"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
