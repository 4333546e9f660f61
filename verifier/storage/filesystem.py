"""Tailscale's on-disk authority layout (docs/format.md §8), read and written, so that a copy of a
real node's `tka-profiles/<profile>/` directory can be opened and audited, and what we write can be
used by tailscaled.

Layout: `<root>/<first 2 chars of base32 hash>/<52-char base32 hash>` holds a CBOR storage
record; `<root>/last_active_ancestor` holds the raw 32 hash bytes. Corrupt files are reported as
StorageError naming the file; nothing is repaired.

Reading follows the reference: every directory under the root is scanned, every file whose name
parses as an AUM hash is read from the place that hash belongs, so a file anywhere else makes
the directory corrupt (tailscaled then fails to open it too); a record is purged only when its
PurgedUnix is positive.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from verifier.aum import AUM
from verifier.errors import DecodeError, StorageError
from verifier.hashes import AUMHash
from verifier.storage.atomic import atomic_write
from verifier.storage.base import StoredRecord
from verifier.textforms import format_aum_hash, parse_aum_hash

LAST_ACTIVE_ANCESTOR = "last_active_ancestor"


class FilesystemStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"authority storage {self.root} is not a directory")
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._index: tuple[set[bytes], dict[bytes, list[bytes]]] | None = None

    # --- files ---------------------------------------------------------------------------------

    def _path(self, h: bytes) -> Path:
        name = format_aum_hash(h)
        return self.root / name[:2] / name

    def _read_record(self, h: bytes) -> StoredRecord | None:
        path = self._path(h)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror}") from None
        try:
            record = StoredRecord.from_cbor_stream(data, path.name)
        except DecodeError as err:
            raise StorageError(f"corrupt AUM file {path}: {err}") from None
        if record.aum is not None and bytes(record.aum.hash()) != bytes(h):
            raise StorageError(
                f"corrupt AUM file {path}: content hashes to {record.aum.hash()}, not its name"
            )
        return record

    def _live_hashes(self) -> tuple[set[bytes], dict[bytes, list[bytes]]]:
        if self._index is not None:
            return self._index
        live: set[bytes] = set()
        children: dict[bytes, list[bytes]] = {}
        for prefix in sorted(self.root.iterdir()):
            if not prefix.is_dir():
                continue
            for entry in sorted(prefix.iterdir()):
                try:
                    h = parse_aum_hash(entry.name)
                except DecodeError:
                    continue  # temporary files and strays are not AUMs
                record = self._read_record(h)
                if record is None:
                    raise StorageError(
                        f"corrupt authority directory {self.root}: {entry.relative_to(self.root)}"
                        f" is not where its name puts it ({self._path(h).relative_to(self.root)})"
                    )
                if record.aum is None or _purged(record) or h in live:
                    continue
                live.add(h)
                parent = record.aum.parent
                if parent is not None:
                    children.setdefault(bytes(parent), []).append(h)
        self._index = (live, children)
        return self._index

    # --- Storage interface -----------------------------------------------------------------------

    def aum(self, h: bytes) -> AUM | None:
        record = self._read_record(bytes(h))
        if record is None or record.aum is None or _purged(record):
            return None
        return record.aum

    def child_aums(self, h: bytes) -> list[AUM]:
        _live, children = self._live_hashes()
        out = []
        for child in children.get(bytes(h), []):
            aum = self.aum(child)
            if aum is not None:
                out.append(aum)
        return out

    def commit_verified_aums(self, aums: Iterable[AUM]) -> None:
        for aum in aums:
            h = bytes(aum.hash())
            existing = self._read_record(h)
            created = existing.created_unix if existing and existing.created_unix else 0
            record = StoredRecord(aum=aum, created_unix=created or int(time.time()))
            path = self._path(h)
            path.parent.mkdir(mode=0o755, exist_ok=True)
            atomic_write(path, record.to_cbor())
            self._index = None

    def heads(self) -> list[AUM]:
        live, children = self._live_hashes()
        out = []
        for h in sorted(live):
            if not any(c in live for c in children.get(h, [])):
                aum = self.aum(h)
                if aum is not None:
                    out.append(aum)
        return out

    def last_active_ancestor(self) -> AUMHash | None:
        path = self.root / LAST_ACTIVE_ANCESTOR
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != 32:
            raise StorageError(f"corrupt {path}: {len(data)} bytes, want 32")
        return AUMHash(data)

    def set_last_active_ancestor(self, h: bytes) -> None:
        atomic_write(self.root / LAST_ACTIVE_ANCESTOR, bytes(h))

    def all_aums(self) -> list[AUMHash]:
        live, _ = self._live_hashes()
        return [AUMHash(h) for h in sorted(live)]

    def commit_time(self, h: bytes) -> float | None:
        record = self._read_record(bytes(h))
        if record is None or record.aum is None or _purged(record):
            return None
        if record.created_unix:
            return float(record.created_unix)
        return self._path(bytes(h)).stat().st_mtime

    def purge_aums(self, hashes: Iterable[bytes]) -> None:
        now = int(time.time())
        for h in hashes:
            record = self._read_record(bytes(h))
            if record is None or record.aum is None or _purged(record):
                continue
            purged = StoredRecord(aum=record.aum, created_unix=record.created_unix, purged_unix=now)
            atomic_write(self._path(bytes(h)), purged.to_cbor())
            self._index = None

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=False)
        self._index = None


def _purged(record: StoredRecord) -> bool:
    return record.purged_unix > 0  # the reference keeps a record with a negative time live
