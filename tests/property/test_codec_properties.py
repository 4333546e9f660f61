"""Properties of the CBOR codec and the wire types (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import cbor
from verifier.aum import AUM
from verifier.errors import DecodeError
from verifier.key import Key, Signature
from verifier.nks import NodeKeySignature
from verifier.state import State

small_bytes = st.binary(max_size=40)
opt_bytes = st.none() | small_bytes
meta = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
keys = st.builds(Key, kind=st.integers(0, 255), votes=st.integers(0, 2**64 - 1),
                 public=opt_bytes, meta=meta)
states = st.builds(
    State,
    last_aum_hash=st.none() | st.binary(min_size=32, max_size=32),
    disablement_values=st.none() | st.lists(small_bytes, max_size=3).map(tuple),
    keys=st.none() | st.lists(keys, max_size=3).map(tuple),
    state_id1=st.integers(0, 2**64 - 1),
    state_id2=st.integers(0, 2**64 - 1),
)
signatures = st.builds(Signature, key_id=opt_bytes, signature=opt_bytes)
aums = st.builds(
    AUM,
    kind=st.integers(0, 255),
    prev_aum_hash=opt_bytes,
    key=st.none() | keys,
    key_id=st.none() | st.binary(min_size=1, max_size=40),
    state=st.none() | states,
    votes=st.none() | st.integers(0, 2**64 - 1),
    meta=st.none() | meta.filter(bool),
    signatures=st.lists(signatures, max_size=3).map(tuple),
)
nks_leaf = st.builds(
    NodeKeySignature,
    kind=st.integers(0, 255),
    pubkey=small_bytes,
    key_id=small_bytes,
    signature=small_bytes,
    wrapping_pubkey=small_bytes,
)
nks = st.recursive(
    nks_leaf,
    lambda inner: st.builds(NodeKeySignature, kind=st.integers(0, 255), pubkey=small_bytes,
                            signature=small_bytes, nested=inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(aums)
def test_aum_decode_encode_roundtrip(aum: AUM) -> None:
    data = aum.to_cbor()
    assert AUM.from_cbor(data) == aum
    assert AUM.from_cbor(data).to_cbor() == data


@settings(max_examples=300, deadline=None)
@given(nks)
def test_nks_decode_encode_roundtrip(sig: NodeKeySignature) -> None:
    data = sig.to_cbor()
    depth = 1
    level = sig
    while level.nested is not None:
        depth, level = depth + 1, level.nested
    if depth > cbor.MAX_NESTING:
        return
    assert NodeKeySignature.from_cbor(data) == sig


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    for decoder in (AUM.from_cbor, NodeKeySignature.from_cbor, State.from_cbor, Key.from_cbor):
        try:
            value = decoder(data)
        except DecodeError:
            continue
        # Whatever decodes re-encodes canonically, and that encoding is a fixed point.
        canonical = value.to_cbor()
        assert type(value).from_cbor(canonical).to_cbor() == canonical  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(aums)
def test_generic_reencoding_is_idempotent(aum: AUM) -> None:
    data = aum.to_cbor()
    generic = cbor.encode_generic(cbor.decode(data))
    assert generic == data
    assert cbor.encode_generic(cbor.decode(generic)) == generic
