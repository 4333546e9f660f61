"""How `verifier` asks for a signature without ever holding a key: a public key plus a callable
that signs a 32-byte digest (pure Ed25519). `signer/` adapts PKCS#11 tokens, file keys and
appliances to this shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from verifier.key import Signature


@dataclass(frozen=True)
class DigestSigner:
    public_key: bytes
    sign_digest: Callable[[bytes], bytes]

    @property
    def key_id(self) -> bytes:
        return self.public_key

    def signature_for(self, digest: bytes) -> Signature:
        return Signature(key_id=self.public_key, signature=self.sign_digest(digest))
