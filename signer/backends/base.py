"""The one interface every key backend implements.

A backend holds (or reaches) one Ed25519 private key and signs 32-byte digests with pure Ed25519
(RFC 8032, never Ed25519ph): tailnet lock signs the BLAKE2s-256 SigHash of an AUM or a node-key
signature (spec §4), so the message is always exactly 32 bytes.

`sign` takes an optional `SigningContext`. Backends that cannot show anything (PKCS#11 tokens,
files) ignore it; a signer appliance that displays what it signs and asks for confirmation uses
it: `payload` carries the CBOR whose SigHash is `digest`, so the device can parse it, recompute
the hash and show the user what the signature authorizes instead of trusting the host's summary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from verifier.errors import SignerError

DIGEST_SIZE = 32
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32

# What kind of message the digest is the SigHash of.
SigningPurpose = Literal["aum", "node-key-signature", "test", "other"]


@dataclass(frozen=True)
class SigningContext:
    """What a signature is for, for backends that show it to a person before signing.

    - `purpose`: which structure `digest` is the SigHash of.
    - `summary`: one line for a human ("sign node key nodekey:ab12… for tailnet lock").
    - `payload`: the canonical CBOR (without its signature field) whose BLAKE2s-256 is the digest;
      lets a device verify the summary itself. Optional.
    - `timeout_seconds`: how long a confirming device may wait for the person; None = its default.
    """

    purpose: SigningPurpose
    summary: str
    payload: bytes | None = None
    timeout_seconds: float | None = None


class KeyBackend(ABC):
    """One Ed25519 signing key. Use as a context manager or call `close()`."""

    @abstractmethod
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (the key's KeyID in tailnet lock)."""

    def sign(self, digest: bytes, context: SigningContext | None = None) -> bytes:
        """Pure Ed25519 signature (64 bytes) over the 32-byte `digest`."""
        if len(digest) != DIGEST_SIZE:
            raise SignerError(
                f"refusing to sign a {len(digest)}-byte message: tailnet lock signs "
                f"{DIGEST_SIZE}-byte SigHash digests only"
            )
        signature = self._sign_digest(bytes(digest), context)
        if len(signature) != SIGNATURE_SIZE:
            raise SignerError(
                f"{self.describe()} returned a {len(signature)}-byte signature, "
                f"expected {SIGNATURE_SIZE}; the device does not do pure Ed25519"
            )
        return signature

    @abstractmethod
    def _sign_digest(self, digest: bytes, context: SigningContext | None) -> bytes:
        """Backend-specific signing; `digest` is already checked to be 32 bytes."""

    @abstractmethod
    def describe(self) -> str:
        """A short, secret-free description for messages ("PKCS#11 token 'x' key 'y'")."""

    def close(self) -> None:
        """Release the device or session. Idempotent."""
        return None  # backends without a device have nothing to release

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
