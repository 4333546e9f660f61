"""A node's state directory: the identity and local authority of one `tka` node.

Layout of `<state>/`:

    node.json        name, control-assigned IDs, lock-key backend URI, local-disable deny-list
    node.key         the node's WireGuard-style private key, `privkey:<hex>`, mode 0600
    node.credential  the secret the node presents to its coordination service on every request,
                     `nodecred:<hex>`, created 0600 before registration (docs/control.md)
    control-ca.pem   optional: the CA the service's https certificate must chain to
    lock.key         a file-backed tailnet-lock key, only when no --lock-key URI was given
    tka/             the local authority, in Tailscale's filesystem layout (docs/format.md §8)
    .lock            the process-wide lock file (`fcntl.flock`); its content is never written

Every write goes through `atomic_write` (temp file in the same directory, fsync, rename, fsync of
the directory) so that a crash leaves either the old or the new file, never half of one. One
exclusive `flock` on `.lock` serializes concurrent `tka` invocations on the same state directory;
whoever takes it first removes what a killed run left behind (temporary files of those writes,
`tka.deleting*`, `tka.bootstrap`). The directory and the parents it needs are created 0700.
No PIN and no disablement secret is ever written here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from signer import verbose
from signer.echo import clip_input
from verifier.credential import CREDENTIAL_FORM, is_credential, new_credential
from verifier.errors import DecodeError, StorageError
from verifier.fields import Frozen
from verifier.storage.atomic import atomic_create, atomic_write, make_private_dirs
from verifier.textforms import format_node_public

NODE_KEY_PREFIX = "privkey:"
CONFIG_VERSION = 1
# What a killed run can leave: atomic_write's `<name>.tmp<12 hex>`, atomic_create's
# `.<name>.tmp<12 hex>`, remove_tka's `tka.deleting<8 hex>`, sync's `tka.bootstrap`.
_STALE_FILE = re.compile(r"\.?.+\.tmp[0-9a-f]{12}")
_STALE_DIR = re.compile(r"tka\.deleting[0-9a-f]{8}|tka\.bootstrap")


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
    try:
        # PyNaCl's cffi binding of libsodium itself, without `nacl.bindings`: that package's
        # body imports every one of its binding modules, about 5 ms of the start-up of every
        # command on a node (issue 14 item 4), for the one function needed here.
        from nacl._sodium import ffi, lib  # type: ignore[import-not-found]  # no stub
    except ImportError:  # a PyNaCl laid out otherwise: its public binding
        import nacl.bindings

        return bytes(nacl.bindings.crypto_scalarmult_base(private))

    def sodium_init() -> None:
        if lib.sodium_init() == -1:
            import nacl.exceptions

            raise nacl.exceptions.RuntimeError("Could not initialize sodium")

    # What `import nacl.bindings` does first (once per process: the same tag), then what its
    # crypto_scalarmult_base does.
    ffi.init_once(sodium_init, "libsodium")
    public = ffi.new("unsigned char[]", 32)
    if lib.crypto_scalarmult_base(public, private) != 0:
        import nacl.exceptions

        raise nacl.exceptions.RuntimeError("Unexpected library error")
    return bytes(ffi.buffer(public, 32))


_set = object.__setattr__


class NodeConfig(Frozen):
    """What `node.json` holds. The lock key is a backend URI: never a PIN (see `pin-source=`)."""

    __match_args__ = (
        "name", "node_id", "stable_id", "lock_key", "lock_public", "disallowed_state_ids"
    )
    __slots__ = __match_args__
    name: str
    node_id: int
    stable_id: str
    lock_key: str | None
    lock_public: bytes | None  # cached so read-only commands never need the device
    disallowed_state_ids: tuple[str, ...]

    def __init__(
        self,
        name: str,
        node_id: int = 0,
        stable_id: str = "",
        lock_key: str | None = None,
        lock_public: bytes | None = None,
        disallowed_state_ids: tuple[str, ...] = (),
    ) -> None:
        _set(self, "name", name)
        _set(self, "node_id", node_id)
        _set(self, "stable_id", stable_id)
        _set(self, "lock_key", lock_key)
        _set(self, "lock_public", lock_public)
        _set(self, "disallowed_state_ids", disallowed_state_ids)

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
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
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
        self.credential_path = root / "node.credential"
        self.control_ca_path = root / "control-ca.pem"

    # -- existence and creation ------------------------------------------------------------

    def exists(self) -> bool:
        return all(
            stat.S_ISREG(_mode(path) or 0) for path in (self.config_path, self.node_key_path)
        )

    def require(self) -> None:
        self.check_layout()
        if not self.exists():
            root = clip_input(self.root)
            raise StorageError(
                f"no node state in {root}; run 'tka node register --state {root} --name NAME' "
                "first"
            )

    def check_layout(self) -> None:
        """Refuse a state directory whose entries are not what they should be (node.json a
        directory, tka a file, a FIFO): found only when read or replaced, they would fail a
        command half-way, after other files changed."""
        for directory in (self.root, self.tka_dir):
            mode = _mode(directory)
            if mode is not None and not stat.S_ISDIR(mode):
                raise StorageError(f"{clip_input(directory)} is not a directory")
        for path in (
            self.config_path, self.node_key_path, self.credential_path, self.file_lock_key_path,
            self.control_ca_path, self.lock_path,
        ):
            mode = _mode(path)
            if mode is not None and not stat.S_ISREG(mode):
                raise StorageError(f"{clip_input(path)} is not a regular file")

    def create(self, config: NodeConfig) -> None:
        """Write a fresh node key and config. Refuses to overwrite an existing node."""
        if self.exists():
            raise StorageError(f"{self.root} already holds a registered node")
        self.make_root()
        self.ensure_node_key()
        self.save_config(config)

    def make_root(self) -> None:
        make_private_dirs(self.root)
        self.check_layout()

    def ensure_node_key(self) -> bool:
        """The node key, made (0600, whole or absent after a crash) unless there is one; True if
        it was made now."""
        if self.node_key_path.exists():
            self.node_private()  # must be readable: a resumed registration keeps it
            return False
        atomic_create(
            self.node_key_path, (NODE_KEY_PREFIX + os.urandom(32).hex() + "\n").encode(), 0o600
        )
        verbose.log("wrote a new node key to %s (mode 0600)", self.node_key_path)
        return True

    def registered(self) -> bool:
        """Registration finished: the service's node ID is recorded and the credential kept."""
        if not self.exists() or not self.credential_path.is_file():
            return False
        return self.config().node_id != 0

    # -- the credential for the coordination service ------------------------------------------

    def ensure_credential(self) -> bool:
        """The node's credential, made now unless there is one: a new 0600 file (created with
        that mode, never chmod-ed), whole or absent after a crash. True if it was made now."""
        if self.credential_path.exists():
            self.credential()
            return False
        atomic_create(
            self.credential_path,
            (new_credential() + "\n").encode(),
            0o600,
        )
        verbose.log("wrote a new node credential to %s (mode 0600)", self.credential_path)
        return True

    def credential(self) -> str:
        try:
            text = self.credential_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise StorageError(
                f"{self.root} has no credential for its coordination service (node.credential): "
                f"run 'tka node register --state {self.root} --name NAME' again to finish "
                "registering it"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or "not text"
            raise StorageError(f"cannot read {self.credential_path}: {reason}") from None
        if not is_credential(text):
            raise StorageError(f"{self.credential_path} is not a '{CREDENTIAL_FORM}' file")
        return text

    def control_ca(self) -> Path | None:
        return self.control_ca_path if self.control_ca_path.is_file() else None

    def session_credential(self) -> str:
        """The credential of a node whose registration finished (else one line saying what to
        run)."""
        if self.config().node_id == 0:
            raise StorageError(
                f"the registration of the node in {self.root} did not finish: run 'tka node "
                f"register --state {self.root} --name NAME' again"
            )
        return self.credential()

    # -- config ----------------------------------------------------------------------------

    def config(self) -> NodeConfig:
        try:
            data = self.config_path.read_bytes()
        except FileNotFoundError:
            self.require()
            raise
        except OSError as err:
            raise StorageError(f"cannot read {self.config_path}: {err.strerror}") from None
        return NodeConfig.from_json(data)

    def save_config(self, config: NodeConfig) -> None:
        atomic_write(self.config_path, config.to_json(), 0o600)
        verbose.log("wrote %s", self.config_path)

    # -- node key --------------------------------------------------------------------------

    def node_private(self) -> bytes:
        try:
            text = self.node_key_path.read_bytes().decode("ascii").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or "not text"
            raise StorageError(f"cannot read {self.node_key_path}: {reason}") from None
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
        """TKA is enabled locally iff the authority directory exists (docs/control.md)."""
        return self.tka_dir.is_dir()

    def remove_tka(self) -> None:
        """Delete the local authority entirely (disable / local-disable, docs/format.md §8)."""
        if self.tka_dir.exists():
            import secrets  # here, not at start-up: it loads `random`

            # Rename first so that a crash mid-delete never leaves a half-authority in place.
            doomed = self.root / f"tka.deleting{secrets.token_hex(4)}"
            os.replace(self.tka_dir, doomed)
            shutil.rmtree(doomed)
            verbose.log("removed the local authority %s", self.tka_dir)

    # -- local-disable deny-list ------------------------------------------------------------

    def is_disallowed(self, state_id1: int, state_id2: int) -> bool:
        return state_id_text(state_id1, state_id2) in self.config().disallowed_state_ids

    def disallow(self, state_id1: int, state_id2: int) -> None:
        cfg = self.config()
        sid = state_id_text(state_id1, state_id2)
        if sid not in cfg.disallowed_state_ids:
            cfg = cfg.replace(disallowed_state_ids=(*cfg.disallowed_state_ids, sid))
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
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise StorageError(f"cannot open {self.lock_path}: {err.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if sys.stderr.isatty():
                    print(f"tka: waiting for another tka using {self.root}", file=sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
            self.remove_stale()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def remove_stale(self) -> list[Path]:
        """Remove what killed runs left: their temporary files (here and in the authority's
        directories) and half-deleted or half-bootstrapped authorities. Call with the lock held:
        every writer of this directory holds it, so nothing found is in use."""
        removed: list[Path] = []
        for directory, dirnames, filenames in os.walk(self.root):
            here = Path(directory)
            for name in list(dirnames):
                if here == self.root and _STALE_DIR.fullmatch(name):
                    shutil.rmtree(here / name, ignore_errors=True)
                    removed.append(here / name)
                    dirnames.remove(name)
            for name in filenames:
                if _STALE_FILE.fullmatch(name):
                    with contextlib.suppress(FileNotFoundError):
                        (here / name).unlink()
                        removed.append(here / name)
        return removed


def _mode(path: Path) -> int | None:
    """The mode of what is at `path`, None if nothing is; one line for a path that cannot even
    be looked at (too long, a loop of links), where Path.exists would raise or say no."""
    try:
        return path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise StorageError(f"cannot use {clip_input(path)}: {err.strerror}") from None


def state_id_text(state_id1: int, state_id2: int) -> str:
    """The deny-list form of an authority's identity (docs/format.md §1): `"<id1>:<id2>"`."""
    return f"{state_id1}:{state_id2}"
