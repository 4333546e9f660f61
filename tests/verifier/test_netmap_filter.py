"""tailscaled's netmap filter (verifier.netmap_filter): missing and bad signatures, the
key-rotation rule (previous keys are obsolete; one chain per wrapping key of a direct start,
the longest kept, a tie drops all; credential starts exempt), and forgeable signatures. Real
tailscaled gives the same split in tests/realnet."""

from __future__ import annotations

import os

from nacl.signing import SigningKey

from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.netmap_filter import MISSING, ROTATED, ROTATION_TIE, filter_netmap
from verifier.nks import NodeKeySignature, SigKind
from verifier.peers import AUTHORIZED, PeerVerdict
from verifier.state import State
from verifier.textforms import node_key_binary

ADMIN = SigningKey(bytes(range(32)))
STATE = State(disablement_values=(disablement_kdf(b"s" * 32),),
              keys=(ed25519_key(bytes(ADMIN.verify_key)),), state_id1=1, state_id2=2)
SMALL_ORDER = bytes([0xEC]) + b"\xff" * 30 + b"\x7f"  # the point of order 2


def _signed(nks: NodeKeySignature, key: SigningKey) -> NodeKeySignature:
    return nks.replace(signature=key.sign(nks.sig_hash()).signature)


def direct(node_key: bytes, wrapping: bytes = b"") -> NodeKeySignature:
    return _signed(NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                                    key_id=bytes(ADMIN.verify_key), wrapping_pubkey=wrapping),
                   ADMIN)


def rotate(old: NodeKeySignature, new_key: bytes, by: SigningKey) -> NodeKeySignature:
    return _signed(NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(new_key),
                                    nested=old), by)


def keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


def test_missing_bad_and_good() -> None:
    a, b, c = keys(3)
    out = filter_netmap(STATE, [(a, None), (b, direct(a).to_cbor()), (c, direct(c).to_cbor())])
    assert [r.visible for r in out] == [False, False, True]
    assert out[0].reason == MISSING and "SignatureError" in out[1].reason and out[2].reason == ""


def test_verdicts_computed_by_the_caller_are_used_not_recomputed() -> None:
    a, b, c = keys(3)
    peers = [(a, None), (b, direct(b).to_cbor()), (c, direct(c).to_cbor())]
    given = [PeerVerdict(False, "NotTrustedError: said by the caller"), AUTHORIZED]
    out = filter_netmap(STATE, peers, given)  # one verdict per signed peer, in order
    assert [r.visible for r in out] == [False, False, True]
    assert out[1].reason == "NotTrustedError: said by the caller"
    assert filter_netmap(STATE, peers)[1].visible  # without them: verified, and good

def test_rotation_makes_previous_keys_obsolete_and_keeps_the_longest_chain() -> None:
    rot = SigningKey.generate()
    k0, k1, k2, clone = keys(4)
    first = direct(k0, bytes(rot.verify_key))
    second = rotate(first, k1, rot)
    third = rotate(second, k2, rot)
    cloned = rotate(first, clone, rot)  # a clone rotated once from the same start
    peers = [(k0, first.to_cbor()), (k1, second.to_cbor()), (k2, third.to_cbor()),
             (clone, cloned.to_cbor())]
    out = filter_netmap(STATE, peers)
    assert [r.visible for r in out] == [False, False, True, False]
    assert out[0].reason == ROTATED and out[1].reason == ROTATED and out[3].reason == ROTATED


def test_equally_long_chains_from_one_wrapping_key_are_both_dropped() -> None:
    rot = SigningKey.generate()
    k0, a, b = keys(3)
    first = direct(k0, bytes(rot.verify_key))
    out = filter_netmap(STATE, [(a, rotate(first, a, rot).to_cbor()),
                                (b, rotate(first, b, rot).to_cbor())])
    assert [r.reason for r in out] == [ROTATION_TIE, ROTATION_TIE]


def test_chains_from_a_credential_are_exempt() -> None:
    wrapping = SigningKey.generate()
    credential = _signed(NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=bytes(ADMIN.verify_key),
                                          wrapping_pubkey=bytes(wrapping.verify_key)), ADMIN)
    a, b = keys(2)
    out = filter_netmap(STATE, [(a, rotate(credential, a, wrapping).to_cbor()),
                                (b, rotate(credential, b, wrapping).to_cbor())])
    assert all(r.visible for r in out)  # two nodes enrolled with one reusable auth key


def test_forgeable_signatures_are_named_but_not_dropped() -> None:
    a, b, c, d = keys(4)
    rot = SigningKey.generate()
    peers = [(a, direct(a, bytes(32)).to_cbor()), (b, direct(b, SMALL_ORDER).to_cbor()),
             (c, direct(c, bytes(rot.verify_key)).to_cbor()), (d, direct(d).to_cbor())]
    out = filter_netmap(STATE, peers)
    assert all(r.visible for r in out)
    assert "all-zero" in out[0].forgeable and "small-order" in out[1].forgeable
    assert out[2].forgeable == "" and out[3].forgeable == ""
