"""A node's state directory: the identity and local authority of one `tka` node.

Layout of `<state>/`:

    node.json        name, control-assigned IDs, lock-key backend URI, local-disable deny-list
    node.key         the node's WireGuard-style private key, `privkey:<hex>`, mode 0600
    lock.key         a file-backed tailnet-lock key, only when no --lock-key URI was given
    tka/             the local authority, in Tailscale's filesystem layout (spec §8.9)
    .lock            the process-wide lock file (`fcntl.flock`); its content is never written

Every write goes through `atomic_write` (temp file in the same directory, fsync, rename, fsync of
the directory) so that a crash leaves either the old or the new file, never half of one. One
exclusive `flock` on `.lock` serializes concurrent `tka` invocations on the same state directory.
No PIN and no disablement secret is ever written here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nacl.bindings

from verifier.errors import DecodeError, StorageError
from verifier.storage.atomic import atomic_write
from verifier.textforms import format_node_public

NODE_KEY_PREFIX = "privkey:"
CONFIG_VERSION = 1


def data_dir() -> Path:
    """`$XDG_DATA_HOME/tka`, or `~/.local/share/tka` when XDG_DATA_HOME is unset."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "tka"


def default_state_dir() -> Path:
    return data_dir() / "node"


def default_control_path() -> Path:
    return data_dir() / "control.sqlite"


def node_public_from_private(private: bytes) -> bytes:
    """The X25519 public key of a node private key (clamped as X25519 always is)."""
    if len(private) != 32:
        raise DecodeError(f"node private key must be 32 bytes, got {len(private)}")
    return bytes(nacl.bindings.crypto_scalarmult_base(private))


@dataclass(frozen=True)
class NodeConfig:
    """What `node.json` holds. The lock key is a backend URI: never a PIN (see `pin-source=`)."""

    name: str
    node_id: int = 0
    stable_id: str = ""
    lock_key: str | None = None
    lock_public: bytes | None = None  # cached so read-only commands never need the device
    disallowed_state_ids: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "Version": CONFIG_VERSION,
            "Name": self.name,
            "NodeID": self.node_id,
            "StableID": self.stable_id,
            "LockKey": self.lock_key,
            "LockPublic": None if self.lock_public is None else self.lock_public.hex(),
            "DisallowedTKAStateIDs": list(self.disallowed_state_ids),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> NodeConfig:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("Version") != CONFIG_VERSION:
                raise ValueError("unsupported version")
            lock_key = doc.get("LockKey")
            lock_public = doc.get("LockPublic")
            denied = doc.get("DisallowedTKAStateIDs") or []
            return cls(
                name=str(doc["Name"]),
                node_id=int(doc.get("NodeID", 0)),
                stable_id=str(doc.get("StableID", "")),
                lock_key=None if lock_key is None else str(lock_key),
                lock_public=None if lock_public is None else bytes.fromhex(str(lock_public)),
                disallowed_state_ids=tuple(str(s) for s in denied),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"node.json is corrupt ({exc}); restore it or re-register") from None


class NodeState:
    """One node's state directory. Methods that write expect the caller to hold `locked()`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_path = root / "node.json"
        self.node_key_path = root / "node.key"
        self.file_lock_key_path = root / "lock.key"
        self.tka_dir = root / "tka"
        self.lock_path = root / ".lock"

    # -- existence and creation ------------------------------------------------------------

    def exists(self) -> bool:
        return self.config_path.is_file() and self.node_key_path.is_file()

    def require(self) -> None:
        if not self.exists():
            raise StorageError(
                f"no node state in {self.root}; run 'tka node register --state {self.root} "
                "--name NAME' first"
            )

    def create(self, config: NodeConfig) -> None:
        """Write a fresh node key and config. Refuses to overwrite an existing node."""
        if self.exists():
            raise StorageError(f"{self.root} already holds a registered node")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(
            self.node_key_path, (NODE_KEY_PREFIX + os.urandom(32).hex() + "\n").encode(), 0o600
        )
        self.save_config(config)

    # -- config ----------------------------------------------------------------------------

    def config(self) -> NodeConfig:
        try:
            return NodeConfig.from_json(self.config_path.read_bytes())
        except FileNotFoundError:
            self.require()
            raise

    def save_config(self, config: NodeConfig) -> None:
        atomic_write(self.config_path, config.to_json(), 0o600)

    # -- node key --------------------------------------------------------------------------

    def node_private(self) -> bytes:
        text = self.node_key_path.read_text().strip()
        if not text.startswith(NODE_KEY_PREFIX) or len(text) != len(NODE_KEY_PREFIX) + 64:
            raise StorageError(f"{self.node_key_path} is not a 'privkey:<64 hex>' file")
        try:
            return bytes.fromhex(text[len(NODE_KEY_PREFIX) :])
        except ValueError:
            raise StorageError(f"{self.node_key_path} is not valid hex") from None

    def node_public(self) -> bytes:
        return node_public_from_private(self.node_private())

    def node_key_text(self) -> str:
        return format_node_public(self.node_public())

    # -- local authority ---------------------------------------------------------------------

    def tka_present(self) -> bool:
        """TKA is enabled locally iff the authority directory exists (spec §14)."""
        return self.tka_dir.is_dir()

    def remove_tka(self) -> None:
        """Delete the local authority entirely (disable / local-disable, spec §8.9)."""
        if self.tka_dir.exists():
            # Rename first so that a crash mid-delete never leaves a half-authority in place.
            doomed = self.root / f"tka.deleting{secrets.token_hex(4)}"
            os.replace(self.tka_dir, doomed)
            shutil.rmtree(doomed)

    # -- local-disable deny-list ------------------------------------------------------------

    def is_disallowed(self, state_id1: int, state_id2: int) -> bool:
        return state_id_text(state_id1, state_id2) in self.config().disallowed_state_ids

    def disallow(self, state_id1: int, state_id2: int) -> None:
        cfg = self.config()
        sid = state_id_text(state_id1, state_id2)
        if sid not in cfg.disallowed_state_ids:
            cfg = replace(cfg, disallowed_state_ids=(*cfg.disallowed_state_ids, sid))
            self.save_config(cfg)

    # -- serialization of concurrent invocations --------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory's exclusive lock for the duration of the block.

        The directory must exist (registration creates it): a failing command on a missing
        node must not leave an empty directory behind.
        """
        if not self.root.is_dir():
            self.require()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if sys.stderr.isatty():
                    print(f"tka: waiting for another tka using {self.root}", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def state_id_text(state_id1: int, state_id2: int) -> str:
    """The deny-list form of an authority's identity (spec §1.5): `"<id1>:<id2>"`."""
    return f"{state_id1}:{state_id2}"
