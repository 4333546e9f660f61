"""SQLite storage for an authority (docs/format.md §8 semantics): one table of AUM records and one
of settings, written inside the caller's transaction when there is one, else in its own."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator

from verifier.aum import AUM
from verifier.errors import DecodeError, StorageError
from verifier.hashes import AUMHash
from verifier.textforms import format_aum_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS tka_aums (
    hash BLOB PRIMARY KEY,
    parent BLOB,
    cbor BLOB NOT NULL,
    created_unix REAL NOT NULL,
    purged_unix REAL
);
CREATE INDEX IF NOT EXISTS tka_aums_parent ON tka_aums(parent);
CREATE TABLE IF NOT EXISTS tka_settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class SQLiteStorage:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        with self._write():
            for statement in filter(None, (s.strip() for s in SCHEMA.split(";"))):
                conn.execute(statement)

    @classmethod
    def open(cls, path: str) -> SQLiteStorage:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return cls(conn)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _decode(self, h: bytes, data: bytes) -> AUM:
        try:
            aum = AUM.from_cbor(data)
        except DecodeError as err:
            raise StorageError(f"corrupt AUM {format_aum_hash(h)} in the database: {err}") from None
        if bytes(aum.hash()) != bytes(h):
            raise StorageError(f"corrupt AUM {format_aum_hash(h)} in the database: hash mismatch")
        return aum

    def aum(self, h: bytes) -> AUM | None:
        row = self.conn.execute(
            "SELECT cbor FROM tka_aums WHERE hash = ? AND purged_unix IS NULL", (bytes(h),)
        ).fetchone()
        return None if row is None else self._decode(h, row[0])

    def child_aums(self, h: bytes) -> list[AUM]:
        rows = self.conn.execute(
            "SELECT hash, cbor FROM tka_aums WHERE parent = ? AND purged_unix IS NULL",
            (bytes(h),),
        ).fetchall()
        return [self._decode(r[0], r[1]) for r in rows]

    def commit_verified_aums(self, aums: Iterable[AUM]) -> None:
        now = time.time()
        with self._write():
            for aum in aums:
                self.conn.execute(
                    "INSERT INTO tka_aums(hash, parent, cbor, created_unix) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(hash) DO UPDATE SET purged_unix = NULL",
                    (bytes(aum.hash()), aum.parent, aum.to_cbor(), now),
                )

    def heads(self) -> list[AUM]:
        rows = self.conn.execute(
            "SELECT a.hash, a.cbor FROM tka_aums a WHERE a.purged_unix IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM tka_aums c WHERE c.parent = a.hash AND c.purged_unix IS NULL) "
            "ORDER BY a.hash"
        ).fetchall()
        return [self._decode(r[0], r[1]) for r in rows]

    def last_active_ancestor(self) -> AUMHash | None:
        row = self.conn.execute(
            "SELECT value FROM tka_settings WHERE name = 'last_active_ancestor'"
        ).fetchone()
        if row is None:
            return None
        if len(row[0]) != 32:
            raise StorageError("corrupt last_active_ancestor in the database")
        return AUMHash(row[0])

    def set_last_active_ancestor(self, h: bytes) -> None:
        with self._write():
            self.conn.execute(
                "INSERT OR REPLACE INTO tka_settings(name, value) "
                "VALUES ('last_active_ancestor', ?)",
                (bytes(h),),
            )

    def all_aums(self) -> list[AUMHash]:
        rows = self.conn.execute(
            "SELECT hash FROM tka_aums WHERE purged_unix IS NULL ORDER BY hash"
        ).fetchall()
        return [AUMHash(r[0]) for r in rows]

    def commit_time(self, h: bytes) -> float | None:
        row = self.conn.execute(
            "SELECT created_unix FROM tka_aums WHERE hash = ? AND purged_unix IS NULL", (bytes(h),)
        ).fetchone()
        return None if row is None else float(row[0])

    def purge_aums(self, hashes: Iterable[bytes]) -> None:
        now = time.time()
        with self._write():
            for h in hashes:
                self.conn.execute(
                    "UPDATE tka_aums SET purged_unix = ? WHERE hash = ? AND purged_unix IS NULL",
                    (now, bytes(h)),
                )

    def remove_all(self) -> None:
        with self._write():
            self.conn.execute("DELETE FROM tka_aums")
            self.conn.execute("DELETE FROM tka_settings")
