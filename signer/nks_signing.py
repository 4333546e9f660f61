"""Making direct node-key signatures with a key backend (docs/format.md §7): one, or many at once.

What the backend receives is the whole unsigned NKS (`SigningContext.payload`), so a backend that
shows what it signs (the appliance) parses it itself instead of trusting our summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from signer.backends.base import KeyBackend, SigningContext
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import format_node_public, node_key_binary


def _unsigned_direct(signer_public: bytes, node_key: bytes, rotation: bytes) -> NodeKeySignature:
    # An all-zero rotation key is never emitted (docs/format.md §10, item 1): the reference does,
    # and rotations on top of it can be forged.
    if rotation == bytes(32):
        rotation = b""
    return NodeKeySignature(
        kind=SigKind.DIRECT,
        pubkey=node_key_binary(node_key),
        key_id=signer_public,
        wrapping_pubkey=rotation,
    )


def _request(unsigned: NodeKeySignature, node_key: bytes, deeplink: str | None
             ) -> tuple[bytes, SigningContext]:
    return unsigned.sig_hash(), SigningContext(
        purpose="node-key-signature",
        summary=f"authorize node key {format_node_public(node_key)}",
        payload=unsigned.to_cbor(),
        deeplink=deeplink,
    )


def sign_direct_nks(
    backend: KeyBackend, node_key: bytes, rotation: bytes, deeplink: str | None = None
) -> bytes:
    """A serialized direct NKS for `node_key` signed by `backend`'s lock key."""
    unsigned = _unsigned_direct(backend.public_key(), node_key, rotation)
    signature = backend.sign(*_request(unsigned, node_key, deeplink))
    return unsigned.replace(signature=signature).to_cbor()


def sign_direct_nks_many(
    backend: KeyBackend,
    items: Sequence[tuple[bytes, bytes]],
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """Serialized direct NKSs for many `(node_key, rotation)` pairs, through the backend's batch
    path (an appliance shows the batch and asks once)."""
    public = backend.public_key()
    unsigned = [_unsigned_direct(public, node_key, rotation) for node_key, rotation in items]
    requests = [
        _request(u, node_key, None) for u, (node_key, _) in zip(unsigned, items, strict=True)
    ]
    signatures = backend.sign_many(requests, on_progress)
    return [u.replace(signature=s).to_cbor() for u, s in zip(unsigned, signatures, strict=True)]
