"""Pinning each appliance's identity key on first use (TOFU), as ssh pins host keys.

The first time tka talks to a device (named as the user names it: `/dev/ttyACM0`,
`/dev/serial/by-id/…`, `socket://host:port`) it records the identity key the device reports in
`<data dir>/appliance-identities.json` (mode 0600; `signer.node.data_dir()`). Afterwards a
different identity on that name is an error naming both keys: it is another device, or an
impostor. Attestations of generated keys and the audit log are checked against the pinned key.

The file also keeps, per device, where the audit log was when it last verified (entry count
and hash of the newest entry), so a log that later goes backwards or rewrites an entry the host
has already seen is reported.

    {"version": 1, "devices": {"/dev/ttyACM0": {"identity": "<hex>", "first_seen": 1764000000,
      "board": "host", "log": {"count": 12, "last": "<hex>"}}}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.errors import DeviceError, StorageError
from verifier.storage.atomic import atomic_write

PINS_FILE = "appliance-identities.json"
FORMAT_VERSION = 1


def default_pins_path() -> Path:
    from signer.node import data_dir

    return data_dir() / PINS_FILE


@dataclass(frozen=True)
class LogCheckpoint:
    count: int
    last: bytes


@dataclass(frozen=True)
class DevicePin:
    identity: bytes
    first_seen: int
    board: str = ""
    log: LogCheckpoint | None = None


class IdentityPins:
    """The pin file. Every update takes an exclusive lock on `<file>.lock` and rewrites the
    file atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_pins_path()
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open {self._lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"version": FORMAT_VERSION, "devices": {}}
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        if st.st_mode & 0o022:
            raise StorageError(
                f"{self.path} can be written by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so its pinned identities cannot be trusted; "
                f"check its content, then run: chmod 600 {self.path}"
            )
        try:
            doc = json.loads(self.path.read_bytes())
            if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION or \
                    not isinstance(doc.get("devices"), dict):
                raise ValueError("unsupported format")
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
            raise StorageError(
                f"{self.path} is corrupt ({exc}); fix or remove it (the next contact pins each "
                "device again)"
            ) from None
        return doc

    def _save(self, doc: dict[str, Any]) -> None:
        atomic_write(self.path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(),
                     0o600)

    def get(self, device: str) -> DevicePin | None:
        entry = self._load()["devices"].get(device)
        return _parse_pin(entry, self.path, device) if entry is not None else None

    def check(self, device: str, identity: bytes, *, board: str = "") -> bool:
        """Pin `identity` for `device` if it is new (returns True), or check it matches."""
        with self._locked():
            doc = self._load()
            entry = doc["devices"].get(device)
            if entry is None:
                doc["devices"][device] = {
                    "identity": identity.hex(),
                    "first_seen": int(time.time()),
                    "board": board,
                }
                self._save(doc)
                return True
            pinned = _parse_pin(entry, self.path, device)
            if pinned.identity != identity:
                when = time.strftime("%Y-%m-%d", time.gmtime(pinned.first_seen))
                raise DeviceError(
                    f"the appliance at {device} has identity key {identity.hex()}, but identity "
                    f"{pinned.identity.hex()} was pinned for it on {when}: this is a different "
                    f"device, or an impostor. If you replaced the device on purpose, remove "
                    f"its entry from {self.path}"
                )
            return False

    def record_log(self, device: str, checkpoint: LogCheckpoint) -> None:
        with self._locked():
            doc = self._load()
            entry = doc["devices"].get(device)
            if entry is None:
                return
            entry["log"] = {"count": checkpoint.count, "last": checkpoint.last.hex()}
            self._save(doc)


def _parse_pin(entry: object, path: Path, device: str) -> DevicePin:
    try:
        if not isinstance(entry, dict):
            raise ValueError("not an object")
        identity = bytes.fromhex(str(entry["identity"]))
        if len(identity) != 32:
            raise ValueError("identity is not 32 bytes")
        log = entry.get("log")
        checkpoint = None
        if isinstance(log, dict):
            last = bytes.fromhex(str(log["last"]))
            checkpoint = LogCheckpoint(count=int(log["count"]), last=last)
        return DevicePin(identity=identity, first_seen=int(entry.get("first_seen", 0)),
                         board=str(entry.get("board", "")), log=checkpoint)
    except (KeyError, ValueError, TypeError, OverflowError) as exc:  # Overflow: int(Infinity)
        raise StorageError(
            f"{path}: the entry for {device} is corrupt ({exc}); remove it to pin the device "
            "again"
        ) from None
