"""Check every signature a backend returns before anything uses it.

A token can hold a private key that does not belong to the public-key object we read, a device
can be faulty, a module can silently sign with Ed25519ph: in each case the signature would be
published and then rejected by every node. So each signature is verified against the backend's
public key under BOTH rules tailnet lock uses (docs/format.md §4): ZIP-215 (AUMs, direct and
credential node-key signatures) and the cofactorless Go-standard rule (rotation signatures). An
honest Ed25519 signature passes both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from signer import verbose
from signer.backends.base import KeyBackend, SigningContext
from verifier import ed25519
from verifier.errors import SignerError

if TYPE_CHECKING:
    from verifier.authority import Authority


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
        verbose.log("signing request to %s: %s (SigHash %s)", self._inner.describe(),
                    context.summary if context is not None else "no description", digest.hex())
        return self._checked(digest, self._inner.sign(digest, context))

    def sign_many(
        self,
        items: Sequence[tuple[bytes, SigningContext]],
        on_progress: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        verbose.log("signing request to %s: %d signatures in one batch", self._inner.describe(),
                    len(items))
        signatures = self._inner.sign_many(items, on_progress)
        if len(signatures) != len(items):
            raise SignerError(
                f"{self._inner.describe()} returned {len(signatures)} signatures for "
                f"{len(items)} requests"
            )
        return [self._checked(d, s) for (d, _), s in zip(items, signatures, strict=True)]

    def _checked(self, digest: bytes, signature: bytes) -> bytes:
        public = self._inner.public_key()
        # One check covers both rules: a signature the cofactorless rule accepts has a canonical
        # R equal to [S]B - [k]A, so the cofactored ZIP-215 equation holds too (the native
        # tests check this implication on adversarial inputs).
        if len(signature) != 64 or not ed25519.verify(
            public, digest, signature, rule="cofactorless"
        ):
            raise SignerError(
                f"{self._inner.describe()} returned a signature that does not verify with its "
                f"public key {public.hex()}; the device holds a different key than it reports, "
                "or is faulty — do not use this key"
            )
        return signature

    def track(self, authority: Authority) -> None:
        self._inner.track(authority)

    def describe(self) -> str:
        return self._inner.describe()

    def close(self) -> None:
        self._inner.close()
