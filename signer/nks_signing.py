"""Making node-key signatures with a key backend (spec §7.4)."""

from __future__ import annotations

from dataclasses import replace

from signer.backends.base import KeyBackend, SigningContext
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import format_node_public, node_key_binary


def sign_direct_nks(backend: KeyBackend, node_key: bytes, rotation: bytes) -> bytes:
    """A direct NKS signed by our lock key. An all-zero rotation key is never emitted (spec §18,
    item 1): the reference does, and rotations on top of it can be forged."""
    if rotation == bytes(32):
        rotation = b""
    unsigned = NodeKeySignature(
        kind=SigKind.DIRECT,
        pubkey=node_key_binary(node_key),
        key_id=backend.public_key(),
        wrapping_pubkey=rotation,
    )
    signature = backend.sign(
        unsigned.sig_hash(),
        SigningContext(
            purpose="node-key-signature",
            summary=f"authorize node key {format_node_public(node_key)}",
            payload=unsigned.to_cbor(),
        ),
    )
    return replace(unsigned, signature=signature).to_cbor()
