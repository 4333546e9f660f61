"""verify_peers gives one verdict per peer, matching the single-peer rule of docs/format.md §7."""

from __future__ import annotations

import nacl.signing

from verifier.key import ed25519_key
from verifier.nks import NodeKeySignature, SigKind
from verifier.peers import verify_peers
from verifier.state import State
from verifier.textforms import node_key_binary


def test_valid_tampered_untrusted_and_garbage_peers() -> None:
    trusted = nacl.signing.SigningKey.generate()
    stranger = nacl.signing.SigningKey.generate()
    key = ed25519_key(bytes(trusted.verify_key))
    state = State(keys=(key,))
    node_key = bytes(range(32))

    def signed_by(signer: nacl.signing.SigningKey) -> bytes:
        unsigned = NodeKeySignature(
            kind=SigKind.DIRECT, pubkey=node_key_binary(node_key), key_id=bytes(signer.verify_key)
        )
        sig = signer.sign(unsigned.sig_hash()).signature
        return unsigned.replace(signature=sig).to_cbor()

    good = signed_by(trusted)
    peers = [
        (node_key, good),
        (bytes(32), good),
        (node_key, signed_by(stranger)),
        (node_key, b"\xff\x00garbage"),
    ]
    verdicts = verify_peers(state, peers)
    assert [v.authorized for v in verdicts] == [True, False, False, False]
    assert verdicts[0].reason == ""
    assert "does not authorize" in verdicts[1].reason
    assert verdicts[2].reason.startswith("NotTrustedError")
    assert verdicts[3].reason.startswith("DecodeError")
