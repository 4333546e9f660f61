"""Synthetic netmaps for the peer-verification benchmark: n peers whose node-key signatures
are direct signatures by one trusted key, or (a chosen share of them) one-step rotations
whose outer signature is made by a per-peer rotation key, as `tailscale lock sign` with a
rotation key produces them. Deterministic from the seed."""

from __future__ import annotations

import random

from nacl.signing import SigningKey

from verifier.key import ed25519_key
from verifier.nks import NodeKeySignature, SigKind
from verifier.state import State
from verifier.textforms import node_key_binary

Peer = tuple[bytes, bytes]


def _signed(nks: NodeKeySignature, signer: SigningKey) -> NodeKeySignature:
    return nks.replace(signature=signer.sign(nks.sig_hash()).signature)


def synthetic_netmap(n: int, rotation_share: float, seed: int) -> tuple[State, list[Peer]]:
    rng = random.Random(seed)
    trusted = SigningKey(rng.randbytes(32))
    key_id = bytes(trusted.verify_key)
    peers: list[Peer] = []
    for i in range(n):
        node_key = rng.randbytes(32)
        if i < n * rotation_share:
            rotation = SigningKey(rng.randbytes(32))
            old_node_key = rng.randbytes(32)
            inner = _signed(
                NodeKeySignature(
                    kind=SigKind.DIRECT,
                    pubkey=node_key_binary(old_node_key),
                    key_id=key_id,
                    wrapping_pubkey=bytes(rotation.verify_key),
                ),
                trusted,
            )
            nks = _signed(
                NodeKeySignature(
                    kind=SigKind.ROTATION, pubkey=node_key_binary(node_key), nested=inner
                ),
                rotation,
            )
        else:
            nks = _signed(
                NodeKeySignature(
                    kind=SigKind.DIRECT, pubkey=node_key_binary(node_key), key_id=key_id
                ),
                trusted,
            )
        peers.append((node_key, nks.to_cbor()))
    rng.shuffle(peers)
    return State(keys=(ed25519_key(key_id),)), peers
