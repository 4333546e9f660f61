"""Node-key signature verdicts (docs/format.md §7) with real Ed25519 keys."""

from __future__ import annotations

import os

import pytest
from nacl.signing import SigningKey

from verifier.errors import DecodeError, NotTrustedError, SignatureError
from verifier.key import ed25519_key
from verifier.nks import (
    NodeKeySignature,
    SigKind,
    describe_nks,
    node_key_authorized,
)
from verifier.state import State
from verifier.textforms import node_key_binary


def _sign(nks: NodeKeySignature, signer: SigningKey) -> NodeKeySignature:
    sig = signer.sign(nks.sig_hash()).signature
    return NodeKeySignature(
        kind=nks.kind,
        pubkey=nks.pubkey,
        key_id=nks.key_id,
        signature=sig,
        nested=nks.nested,
        wrapping_pubkey=nks.wrapping_pubkey,
    )


@pytest.fixture
def trusted() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def state(trusted: SigningKey) -> State:
    return State(
        last_aum_hash=bytes(32),
        disablement_values=(os.urandom(32),),
        keys=(ed25519_key(bytes(trusted.verify_key)),),
    )


def _direct(trusted: SigningKey, node: bytes, wrap: bytes = b"") -> NodeKeySignature:
    base = NodeKeySignature(
        kind=SigKind.DIRECT,
        pubkey=node_key_binary(node),
        key_id=bytes(trusted.verify_key),
        wrapping_pubkey=wrap,
    )
    return _sign(base, trusted)


def test_direct_signature_authorizes_its_node_key(trusted: SigningKey, state: State) -> None:
    node = os.urandom(32)
    nks = _direct(trusted, node)
    decoded = node_key_authorized(state, node, nks.to_cbor())
    assert decoded == nks
    with pytest.raises(SignatureError, match="does not authorize nodeKey"):
        node_key_authorized(state, os.urandom(32), nks.to_cbor())


def test_tampered_and_untrusted_signatures_fail(trusted: SigningKey, state: State) -> None:
    node = os.urandom(32)
    raw = bytearray(_direct(trusted, node).to_cbor())
    raw[-1] ^= 1  # last byte of the signature
    with pytest.raises(SignatureError, match="invalid signature"):
        node_key_authorized(state, node, bytes(raw))
    stranger = SigningKey.generate()
    with pytest.raises(NotTrustedError):
        node_key_authorized(state, node, _direct(stranger, node).to_cbor())
    with pytest.raises(DecodeError, match="unserialize"):
        node_key_authorized(state, node, b"\xa1\x01")


def test_rotation_chain_is_followed_to_the_trusted_key(trusted: SigningKey, state: State) -> None:
    rotation = SigningKey.generate()
    keys = [os.urandom(32) for _ in range(4)]
    nks = _direct(trusted, keys[0], wrap=bytes(rotation.verify_key))
    for new in keys[1:]:
        nks = _sign(
            NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(new), nested=nks),
            rotation,
        )
    decoded = node_key_authorized(state, keys[-1], nks.to_cbor())
    assert decoded.previous_node_keys() == list(reversed(keys[:-1]))
    assert decoded.initial_signature().kind == SigKind.DIRECT
    assert "Nested:" in describe_nks(decoded)
    # The rotation key, not the trusted key, must sign the outer level.
    forged = _sign(
        NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(os.urandom(32)), nested=nks),
        trusted,
    )
    with pytest.raises(SignatureError, match="invalid signature"):
        node_key_authorized(state, forged.node_key(), forged.to_cbor())


def test_credential_cannot_authorize_alone_but_can_start_a_chain(
    trusted: SigningKey, state: State
) -> None:
    wrapping = SigningKey.generate()
    cred = _sign(
        NodeKeySignature(
            kind=SigKind.CREDENTIAL,
            key_id=bytes(trusted.verify_key),
            wrapping_pubkey=bytes(wrapping.verify_key),
        ),
        trusted,
    )
    with pytest.raises(SignatureError, match="credential signatures cannot authorize"):
        node_key_authorized(state, os.urandom(32), cred.to_cbor())
    node = os.urandom(32)
    outer = _sign(
        NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(node), nested=cred),
        wrapping,
    )
    node_key_authorized(state, node, outer.to_cbor())


def test_roundtrip_is_canonical(trusted: SigningKey) -> None:
    nks = _direct(trusted, os.urandom(32), wrap=os.urandom(32))
    assert NodeKeySignature.from_cbor(nks.to_cbor()).to_cbor() == nks.to_cbor()
