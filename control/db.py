"""The coordination service's database: one SQLite file in WAL mode, versioned migrations, and
one transaction per request so that a rejected request leaves no trace."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from verifier.errors import StorageError
from verifier.storage.atomic import make_private_dirs

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
    # 2: authentication (docs/control.md). Nodes present a credential whose SHA-256 is kept
    # here, registration redeems an enrolment key (kept as its SHA-256), the signatures a node
    # held before are remembered (by hash) so an older one cannot replace a newer one, and the
    # support disablement secret is kept only sealed to the support key. The column
    # tka.support_secret of version 1 is emptied when a database is opened (control.service).
    """
    ALTER TABLE nodes ADD COLUMN credential_hash BLOB;
    CREATE UNIQUE INDEX nodes_credential_hash ON nodes(credential_hash);
    ALTER TABLE nodes ADD COLUMN tailnet_lock_admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN enrolled_by TEXT;
    CREATE TABLE auth_keys (
        key_id TEXT PRIMARY KEY,
        key_hash BLOB NOT NULL,
        reusable INTEGER NOT NULL,
        tailnet_lock_admin INTEGER NOT NULL,
        owner INTEGER NOT NULL DEFAULT 0,
        created_unix INTEGER NOT NULL,
        expires_unix INTEGER NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE node_signature_history (
        node_id INTEGER NOT NULL,
        sig_hash BLOB NOT NULL,
        PRIMARY KEY (node_id, sig_hash)
    );
    ALTER TABLE tka ADD COLUMN support_sealed BLOB;
    ALTER TABLE tka ADD COLUMN support_public BLOB;
    """,
)


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 (so created, whatever the umask: it can only narrow
    it), and its missing directories 0700. SQLite then gives its -wal and -shm files the mode of
    the database file. An existing file is left alone."""
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return  # created meanwhile by a concurrent opener
    except OSError as err:
        raise StorageError(f"cannot create {path}: {err.strerror}") from None
    os.close(fd)


def connect(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating it 0600 in a 0700 directory if `create`) and migrate the database."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise StorageError(
                f"no coordination database at {path}: only `tka node register` creates one; "
                "check --control"
            )
        create_private_file(path)
    elif not path.is_file():
        raise StorageError(f"coordination database {path} is not a file")
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
    except sqlite3.Error as err:
        raise StorageError(f"coordination database {path} is unusable: {err}") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA secure_delete=ON")  # a replaced secret leaves no copy in free pages
        migrate(conn)
    except sqlite3.Error as err:
        conn.close()
        raise StorageError(f"coordination database {path} is unusable: {err}") from None
    except BaseException:
        conn.close()
        raise
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
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. A read (`write=False`) takes no
    lock: in WAL mode it reads one consistent snapshot while a writer goes on."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (e.g. disk full); and a failed COMMIT leaves the
        # transaction open, which would make every later BEGIN on this connection fail.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
