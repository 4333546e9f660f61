"""The one interface every key backend implements.

A backend holds (or reaches) one Ed25519 private key and signs 32-byte digests with pure Ed25519
(RFC 8032, never Ed25519ph): tailnet lock signs the BLAKE2s-256 SigHash of an AUM or a node-key
signature (docs/format.md §4), so the message is always exactly 32 bytes.

`sign` takes an optional `SigningContext`. Backends that cannot show anything (PKCS#11 tokens,
files) ignore it; a signer appliance that displays what it signs and asks for confirmation uses
it: `payload` carries the CBOR whose SigHash is `digest`, so the device can parse it, recompute
the hash and show the user what the signature authorizes instead of trusting the host's summary.
Such a backend refuses a bare digest.

Backends that track the tailnet's authority themselves (the appliance refuses to sign under a
head it has not verified) are told about the authority a signature will be made under with
`track(authority)`; the others ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from verifier.errors import SignerError

if TYPE_CHECKING:
    from verifier.authority import Authority

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
    - `payload`: what the digest is the SigHash of, in canonical CBOR: for a node-key signature
      the NKS without its Signature field; for an AUM the whole AUM, carrying the signatures
      other keys already made (its SigHash leaves them out). Lets a device check the summary.
    - `timeout_seconds`: how long a confirming device may wait for the person; None = its default.
    - `deeplink`: a signing deeplink (`tailscale://sign-device/v1/?…`) naming the node, which a
      device checks and shows; only for node-key signatures.
    """

    purpose: SigningPurpose
    summary: str
    payload: bytes | None = None
    timeout_seconds: float | None = None
    deeplink: str | None = None


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

    def sign_many(
        self,
        items: Sequence[tuple[bytes, SigningContext]],
        on_progress: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        """Signatures over many digests; backends that can confirm a whole batch at once (the
        appliance) override this. Each item is `(digest, context)` as for `sign`;
        `on_progress(done)` is called as signatures are made."""
        out: list[bytes] = []
        for digest, context in items:
            out.append(self.sign(digest, context))
            if on_progress is not None:
                on_progress(len(out))
        return out

    def track(self, authority: Authority) -> None:
        """The authority the next signatures are made under (see the module docstring)."""
        return None  # only backends that verify the authority themselves need it

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
