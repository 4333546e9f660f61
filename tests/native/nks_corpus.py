"""Peers for differential tests of the bulk node-key verifier: valid chains, every structural
failure of docs/format.md §7 made on purpose, and byte-level damage.

Verdicts never come from here: tests compare the C path with `node_key_authorized`.
"""

from __future__ import annotations

import random

from nacl.signing import SigningKey

from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import node_key_binary

Peer = tuple[bytes, bytes]


def signed(nks: NodeKeySignature, signer: SigningKey) -> NodeKeySignature:
    return nks.replace(signature=signer.sign(nks.sig_hash()).signature)


class ChainMaker:
    """Builds direct signatures and rotation chains rooted at `trusted`, with fresh rotation
    keys held here so each level can be signed by the key its nested level names."""

    def __init__(self, trusted: SigningKey, rng: random.Random) -> None:
        self.trusted = trusted
        self.rng = rng

    def node_key(self) -> bytes:
        return self.rng.randbytes(32)

    def signing_key(self) -> SigningKey:
        return SigningKey(self.rng.randbytes(32))

    def chain(self, levels: int, credential_root: bool = False) -> tuple[bytes, NodeKeySignature]:
        """A valid chain of `levels` maps (1 = direct); the root may be a credential."""
        node, nks, _ = self.chain_with_signers(levels, credential_root)
        return node, nks

    def chain_with_signers(
        self, levels: int, credential_root: bool = False
    ) -> tuple[bytes, NodeKeySignature, list[SigningKey]]:
        """`chain`, plus the key that signed each level (outermost first)."""
        signers = [self.trusted]
        rotation = self.signing_key()
        node = self.node_key()
        root_kind = SigKind.CREDENTIAL if credential_root and levels > 1 else SigKind.DIRECT
        nks = signed(
            NodeKeySignature(
                kind=root_kind,
                pubkey=b"" if root_kind == SigKind.CREDENTIAL else node_key_binary(node),
                key_id=bytes(self.trusted.verify_key),
                wrapping_pubkey=bytes(rotation.verify_key) if levels > 1 else b"",
            ),
            self.trusted,
        )
        for level in range(1, levels):
            node = self.node_key()
            following = self.signing_key()
            wrap = bytes(following.verify_key) if level < levels - 1 else b""
            # Leaving WrappingPubkey out now and then makes the verifier look further down.
            if wrap and self.rng.random() < 0.2:
                wrap, following = b"", rotation
            nks = signed(
                NodeKeySignature(
                    kind=SigKind.ROTATION,
                    pubkey=node_key_binary(node),
                    nested=nks,
                    wrapping_pubkey=wrap,
                ),
                rotation,
            )
            signers.insert(0, rotation)
            rotation = following
        return node, nks, signers


def _levels(nks: NodeKeySignature) -> list[NodeKeySignature]:
    out = [nks]
    while out[-1].nested is not None:
        out.append(out[-1].nested)
    return out


def _rebuild(levels: list[NodeKeySignature]) -> NodeKeySignature:
    inner: NodeKeySignature | None = None
    for level in reversed(levels):
        inner = level.replace(nested=inner)
    assert inner is not None
    return inner


def structural_mutation(
    nks: NodeKeySignature, rng: random.Random, signers: list[SigningKey] | None = None
) -> NodeKeySignature:
    """One field of one level changed to something docs/format.md §7 has a rule about; re-encoded
    canonically.

    With `signers` (the key of each level), the levels above the change are signed again, so
    the failure is met deep in the chain rather than at the outer signature."""
    levels = _levels(nks)
    i = rng.randrange(len(levels))
    lvl = levels[i]
    choice = rng.randrange(12)
    if choice == 0:
        lvl = lvl.replace(kind=rng.choice([0, 1, 2, 3, 4, 200]))
    elif choice == 1:
        lvl = lvl.replace(key_id=b"")
    elif choice == 2:
        lvl = lvl.replace(key_id=rng.randbytes(rng.choice([31, 32, 33])))
    elif choice == 3:
        lvl = lvl.replace(wrapping_pubkey=rng.randbytes(rng.choice([0, 31, 33])))
    elif choice == 4 and lvl.signature:
        sig = bytearray(lvl.signature)
        sig[rng.randrange(64)] ^= 1 << rng.randrange(8)
        lvl = lvl.replace(signature=bytes(sig))
    elif choice == 5:
        lvl = lvl.replace(signature=lvl.signature[: rng.choice([0, 1, 63])])
    elif choice == 6:
        lvl = lvl.replace(pubkey=b"nq" + lvl.pubkey[2:])
    elif choice == 7:
        lvl = lvl.replace(pubkey=lvl.pubkey[: rng.choice([0, 1, 2, 33])])
    elif choice == 8:
        lvl = lvl.replace(pubkey=lvl.pubkey + b"\x00")
    elif choice == 9:
        # Drop the nested signature: the level becomes the end of the chain.
        levels = levels[: i + 1]
    elif choice == 10:
        # Give the innermost level a nested signature it must not have.
        levels = [*levels, levels[-1]]
    else:
        lvl = lvl.replace(kind=SigKind.CREDENTIAL, pubkey=b"")
    levels[i] = lvl
    if rng.random() < 0.5:
        levels = levels[:16]
    if signers is None:
        return _rebuild(levels)
    inner: NodeKeySignature | None = None
    for depth in reversed(range(len(levels))):
        level = levels[depth].replace(nested=inner)
        if depth < i and depth < len(signers):
            level = signed(level, signers[depth])
        inner = level
    assert inner is not None
    return inner


def byte_damage(data: bytes, rng: random.Random) -> bytes:
    """Random damage to encoded bytes: flips, truncation, insertion, non-shortest heads."""
    buf = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0 and buf:
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del buf[rng.randrange(len(buf) + 1) :]
    elif choice == 2:
        buf.insert(rng.randrange(len(buf) + 1), rng.randrange(256))
    elif choice == 3 and buf:
        # Re-encode the outer map head in a longer (non-shortest) form: 0xb8 <count>.
        buf[0:1] = bytes([0xB8, buf[0] & 0x1F])
    else:
        buf += b"\x00"
    return bytes(buf)


def mixed_peers(trusted: SigningKey, count: int, seed: int) -> list[Peer]:
    """About half valid chains of 1-17 levels, a third structurally wrong, the rest damaged
    bytes, wrong node keys and signatures by an untrusted key."""
    rng = random.Random(seed)
    maker = ChainMaker(trusted, rng)
    stranger = ChainMaker(SigningKey(rng.randbytes(32)), rng)
    peers: list[Peer] = []
    for _ in range(count):
        levels = rng.choice([1, 1, 1, 2, 2, 3, 5, 15, 16, 17])
        source = stranger if rng.random() < 0.05 else maker
        node, nks, signers = source.chain_with_signers(levels, credential_root=rng.random() < 0.2)
        roll = rng.random()
        if roll < 0.45:
            peers.append((node, nks.to_cbor()))
        elif roll < 0.8:
            resign = signers if rng.random() < 0.6 else None
            peers.append((node, structural_mutation(nks, rng, resign).to_cbor()))
        elif roll < 0.9:
            peers.append((node, byte_damage(nks.to_cbor(), rng)))
        else:
            peers.append((maker.node_key(), nks.to_cbor()))
    return peers
