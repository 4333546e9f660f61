"""Check every signature a backend returns before anything uses it.

A token can hold a private key that does not belong to the public-key object we read, a device
can be faulty, a module can silently sign with Ed25519ph: in each case the signature would be
published and then rejected by every node. So each signature is verified against the backend's
public key under BOTH rules tailnet lock uses (spec §4.3): ZIP-215 (AUMs, direct and credential
node-key signatures) and the cofactorless Go-standard rule (rotation signatures). An honest
Ed25519 signature passes both.
"""

from __future__ import annotations

from signer.backends.base import KeyBackend, SigningContext
from verifier import ed25519
from verifier.errors import SignerError


class VerifiedBackend(KeyBackend):
    """Wraps a backend; `sign` returns only signatures that verify under both rules."""

    def __init__(self, inner: KeyBackend) -> None:
        self._inner = inner

    @property
    def inner(self) -> KeyBackend:
        return self._inner

    def public_key(self) -> bytes:
        return self._inner.public_key()

    def _sign_digest(self, digest: bytes, context: SigningContext | None) -> bytes:
        signature = self._inner.sign(digest, context)
        public = self._inner.public_key()
        # One check covers both rules: a signature the cofactorless rule accepts has a canonical
        # R equal to [S]B - [k]A, so the cofactored ZIP-215 equation holds too (the native
        # tests check this implication on adversarial inputs).
        if not ed25519.verify(public, digest, signature, rule="cofactorless"):
            raise SignerError(
                f"{self._inner.describe()} returned a signature that does not verify with its "
                f"public key {public.hex()}; the device holds a different key than it reports, "
                "or is faulty — do not use this key"
            )
        return signature

    def describe(self) -> str:
        return self._inner.describe()

    def close(self) -> None:
        self._inner.close()
