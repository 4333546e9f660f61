"""A software Ed25519 key in a file (development, tests, node-local lock keys).

File format: one line `nlpriv:<128 hex>` — Tailscale's text form of a 64-byte Ed25519 private key,
the 32-byte seed followed by the 32-byte public key (docs/format.md §1). The public half must match
the seed: Go would silently sign with a mismatched half (docs/format.md §10 item 3); we refuse such
a file.

The file must not be readable or writable by group or others (mode 0600 or stricter); we refuse
to read it otherwise, as ssh does, because a readable key file is a leaked key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nacl.exceptions
import nacl.signing

from signer import verbose
from signer.backends.base import KeyBackend, SigningContext
from signer.echo import clip_input
from verifier.errors import SignerError, StorageError
from verifier.storage.atomic import atomic_create

NLPRIV_PREFIX = "nlpriv:"
SEED_SIZE = 32
_SECRET_SIZE = 64


def format_nlpriv(seed: bytes) -> str:
    """`nlpriv:` text of the 64-byte seed‖public form for a 32-byte seed."""
    if len(seed) != SEED_SIZE:
        raise SignerError(f"an Ed25519 seed is {SEED_SIZE} bytes, got {len(seed)}")
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return NLPRIV_PREFIX + (seed + public).hex()


def parse_nlpriv(text: str, where: str) -> bytes:
    """Return the 32-byte seed from `nlpriv:` text; `where` names the source for messages."""
    line = text.strip()
    if not line.startswith(NLPRIV_PREFIX):
        raise SignerError(f"{where} does not hold an 'nlpriv:' Ed25519 private key")
    body = line[len(NLPRIV_PREFIX):]
    if len(body) != 2 * _SECRET_SIZE:
        raise SignerError(
            f"{where}: 'nlpriv:' must be followed by {2 * _SECRET_SIZE} hex digits, got {len(body)}"
        )
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raise SignerError(f"{where}: 'nlpriv:' key is not valid hex") from None
    seed, public = raw[:SEED_SIZE], raw[SEED_SIZE:]
    if bytes(nacl.signing.SigningKey(seed).verify_key) != public:
        raise SignerError(
            f"{where}: the public half of the 'nlpriv:' key does not match its seed; "
            "the key file is corrupt"
        )
    return seed


def check_private_file_mode(path: Path) -> os.stat_result:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SignerError(f"key file {clip_input(path)} does not exist") from None
    except OSError as exc:
        raise SignerError(f"cannot open key file {clip_input(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SignerError(f"key file {clip_input(path)} is not a regular file")
    if st.st_mode & 0o066:
        raise SignerError(
            f"key file {clip_input(path)} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {clip_input(path)}"
        )
    return st


def read_seed(path: Path) -> bytes:
    check_private_file_mode(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignerError(f"cannot read key file {clip_input(path)}: {exc.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SignerError(f"key file {clip_input(path)} is not 'nlpriv:' text") from None
    return parse_nlpriv(text, f"key file {clip_input(path)}")


def write_new_key_file(path: Path, seed: bytes | None = None) -> bytes:
    """Create `path` (mode 0600, refusing to overwrite) holding a new or given key.

    Returns the 32-byte public key.
    """
    if seed is None:
        seed = bytes(nacl.signing.SigningKey.generate())
    text = format_nlpriv(seed) + "\n"
    if path.exists():  # also a dangling link: never written through
        raise SignerError(f"key file {path} already exists; refusing to overwrite it")
    try:
        # Whole or absent after a crash: written under a temporary 0600 name, then linked.
        atomic_create(path, text.encode("ascii"), 0o600)
        verbose.log("wrote a new software key to %s (mode 0600)", path)
    except StorageError as err:
        raise SignerError(str(err)) from None
    return bytes(nacl.signing.SigningKey(seed).verify_key)


class FileBackend(KeyBackend):
    """Signs with a software key read once from a 0600 `nlpriv:` file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._key: nacl.signing.SigningKey | None = nacl.signing.SigningKey(read_seed(path))
        self._public = bytes(self._key.verify_key)

    @property
    def path(self) -> Path:
        return self._path

    def seed(self) -> bytes:
        """The 32-byte private seed (for `tka key import`); handle with care."""
        return bytes(self._require_key())

    def public_key(self) -> bytes:
        return self._public

    def _require_key(self) -> nacl.signing.SigningKey:
        if self._key is None:
            raise SignerError(f"{self.describe()} is closed")
        return self._key

    def _sign_digest(self, digest: bytes, context: SigningContext | None) -> bytes:
        try:
            return bytes(self._require_key().sign(digest).signature)
        except nacl.exceptions.CryptoError as exc:  # pragma: no cover - libsodium never fails here
            raise SignerError(f"{self.describe()} could not sign: {type(exc).__name__}") from None

    def describe(self) -> str:
        return f"key file {self._path}"

    def close(self) -> None:
        self._key = None
