"""How `verifier` asks for an AUM signature without ever holding a key.

An `AUMSigner` is a public key plus a callable that is handed the whole AUM — carrying any
signatures other keys already made — and returns the Ed25519 signature over its SigHash (spec
docs/format.md §4). Passing the AUM rather than its digest lets a signer that shows what it signs
(the appliance) parse it and check the co-signatures itself; `signer/` adapts PKCS#11 tokens, file
keys and appliances to this shape. `over_digest` adapts a plain digest-signing function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from verifier.aum import AUM
from verifier.key import Signature


@dataclass(frozen=True)
class AUMSigner:
    public_key: bytes
    sign_aum: Callable[[AUM], bytes]

    @classmethod
    def over_digest(cls, public_key: bytes, sign_digest: Callable[[bytes], bytes]) -> AUMSigner:
        """A signer that only needs the SigHash (a software key, a blind token)."""
        return cls(public_key, lambda aum: sign_digest(aum.sig_hash()))

    @property
    def key_id(self) -> bytes:
        return self.public_key

    def signature_for(self, aum: AUM) -> Signature:
        return Signature(key_id=self.public_key, signature=self.sign_aum(aum))

    def sign(self, aum: AUM) -> AUM:
        """`aum` with this key's signature appended."""
        return aum.add_signature(self.signature_for(aum))
