"""The native AUM reader (tka_aum_is_canonical, tka_aum_hashes) against the Python model, and
the public-key classes (tka_public_key_class) against independent oracles.

* For random AUM models of every kind (keys, states, metadata, real and junk signatures) the C
  reader accepts `aum.to_cbor()` and its hash and sighash equal `aum.hash()` / `aum.sig_hash()`.
* For mutated bytes the reader accepts exactly the inputs that `verifier.aum.AUM` decodes and
  re-encodes byte for byte (within the reader's bounds): it is neither stricter nor laxer than
  "canonical".
* Key classes: "ok" exactly when libsodium's crypto_core_ed25519_is_valid_point says valid;
  the eight small-order points from the literature (plus their non-canonical spellings) are
  "small_order"; every encoding with y >= p is classified as the facts demand.
"""

from __future__ import annotations

import random

import ed25519_testkit as tk
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.signing import SigningKey
from verifier._native import ffi, lib

from verifier.aum import AUM
from verifier.ed25519 import public_key_class
from verifier.errors import DecodeError
from verifier.key import Key, Signature
from verifier.state import State

MAX_KEYS = 512
MAX_DISABLEMENT = 32
MAX_SIGNATURES = 64
MAX_META_ENTRIES = 64


def c_hashes(data: bytes) -> tuple[bytes, bytes] | None:
    h = ffi.new("uint8_t[32]")
    s = ffi.new("uint8_t[32]")
    if not lib.tka_aum_hashes(data, len(data), h, s):
        return None
    return bytes(h), bytes(s)


def c_canonical(data: bytes) -> bool:
    return bool(lib.tka_aum_is_canonical(data, len(data)))


# --- models --------------------------------------------------------------------------------

_SIGNERS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]

u64 = st.one_of(
    st.integers(0, 30),
    st.sampled_from([23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
u8 = st.one_of(st.integers(0, 6), st.integers(0, 255))
blob = st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32))
opt_blob = st.one_of(st.none(), blob)
text = st.text(max_size=12)  # never surrogates: Python strings that encode to valid UTF-8
meta = st.dictionaries(text, text, max_size=6)


@st.composite
def keys(draw: st.DrawFn) -> Key:
    return Key(kind=draw(u8), votes=draw(u64), public=draw(opt_blob), meta=draw(meta))


@st.composite
def states(draw: st.DrawFn) -> State:
    return State(
        last_aum_hash=draw(st.one_of(st.none(), st.binary(min_size=32, max_size=32))),
        disablement_values=draw(st.one_of(st.none(), st.lists(blob, max_size=5))),
        keys=draw(st.one_of(st.none(), st.lists(keys(), max_size=5))),
        state_id1=draw(u64),
        state_id2=draw(u64),
    )


@st.composite
def aums(draw: st.DrawFn) -> AUM:
    aum = AUM(
        kind=draw(u8),
        prev_aum_hash=draw(opt_blob),
        key=draw(st.one_of(st.none(), keys())),
        key_id=draw(opt_blob),
        state=draw(st.one_of(st.none(), states())),
        votes=draw(st.one_of(st.none(), u64)),
        meta=draw(st.one_of(st.none(), meta)),
        signatures=draw(
            st.lists(st.builds(Signature, key_id=opt_blob, signature=opt_blob), max_size=3)
        ),
    )
    # Some AUMs carry real signatures by real keys over their sighash.
    for signer in draw(st.lists(st.sampled_from(_SIGNERS), max_size=3)):
        sig = signer.sign(aum.sig_hash()).signature
        aum = aum.add_signature(Signature(bytes(signer.verify_key), sig))
    return aum


def within_bounds(aum: AUM) -> bool:
    metas = [aum.meta or {}]
    if aum.key is not None:
        metas.append(aum.key.meta)
    if aum.state is not None:
        if len(aum.state.trusted_keys) > MAX_KEYS:
            return False
        if len(aum.state.disablement_values or ()) > MAX_DISABLEMENT:
            return False
        metas += [k.meta for k in aum.state.trusted_keys]
    return len(aum.signatures) <= MAX_SIGNATURES and all(
        len(m) <= MAX_META_ENTRIES for m in metas
    )


def python_canonical(data: bytes) -> bool:
    """The definition the reader implements: decodes, re-encodes to the same bytes, fits."""
    try:
        aum = AUM.from_cbor(data)
    except DecodeError:
        return False
    return aum.to_cbor() == data and within_bounds(aum)


# --- the model's encodings are accepted, with the model's hashes ---------------------------


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(aums())
def test_reader_accepts_every_model_encoding_with_its_hashes(aum: AUM) -> None:
    data = aum.to_cbor()
    got = c_hashes(data)
    assert got is not None, data.hex()
    assert got == (bytes(aum.hash()), aum.sig_hash())
    assert c_canonical(data)


def test_reader_handles_the_bounds_like_the_definition() -> None:
    rng = random.Random(5)

    def key(i: int) -> Key:
        return Key(kind=1, votes=1, public=i.to_bytes(32, "big"))

    def checkpoint(n_keys: int, n_dis: int, n_sigs: int) -> AUM:
        state = State(
            disablement_values=tuple(rng.randbytes(32) for _ in range(n_dis)),
            keys=tuple(key(i) for i in range(n_keys)),
            state_id1=1,
        )
        sigs = tuple(Signature(rng.randbytes(32), rng.randbytes(64)) for _ in range(n_sigs))
        return AUM(kind=5, state=state, signatures=sigs)

    for n_keys, n_dis, n_sigs, ok in [
        (512, 32, 64, True),
        (513, 1, 1, False),
        (1, 33, 1, False),
        (1, 1, 65, False),
    ]:
        aum = checkpoint(n_keys, n_dis, n_sigs)
        data = aum.to_cbor()
        assert AUM.from_cbor(data).to_cbor() == data  # canonical in Python either way
        assert (c_hashes(data) is not None) is ok, (n_keys, n_dis, n_sigs)
        if ok:
            assert c_hashes(data) == (bytes(aum.hash()), aum.sig_hash())
    many = AUM(kind=4, key_id=b"k", meta={f"k{i:03}": "v" for i in range(65)})
    assert not c_canonical(many.to_cbor())
    most = AUM(kind=4, key_id=b"k", meta={f"k{i:03}": "v" for i in range(64)})
    assert c_canonical(most.to_cbor())


# --- mutations: the reader accepts exactly the canonical inputs ----------------------------


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in ops:
        if not buf:
            break
        i = where % len(buf)
        if op == 0:
            buf[i] = value
        elif op == 1:
            buf.insert(i, value)
        elif op == 2:
            del buf[i]
        elif op == 3:
            buf[i] ^= 1 << (value % 8)
        elif op == 4:
            del buf[i:]
        else:
            j = value % len(buf)
            buf[i], buf[j] = buf[j], buf[i]
    return bytes(buf)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    aums(),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2**16), st.integers(0, 255)),
             min_size=1, max_size=4),
)
def test_reader_accepts_exactly_what_round_trips(aum: AUM, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(aum.to_cbor(), ops)
    accepted = c_canonical(data)
    if accepted:
        assert AUM.from_cbor(data).to_cbor() == data
        got = c_hashes(data)
        decoded = AUM.from_cbor(data)
        assert got == (bytes(decoded.hash()), decoded.sig_hash())
    assert accepted == python_canonical(data), data.hex()


@settings(max_examples=800)
@given(st.binary(max_size=64))
def test_reader_on_arbitrary_bytes(data: bytes) -> None:
    assert c_canonical(data) == python_canonical(data), data.hex()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("text key naming a field", bytes.fromhex("a3010302f6613103")),
        ("null for an integer field", bytes.fromhex("a201f602f6")),
        ("simple value for an integer field", bytes.fromhex("a201e502f6")),
        ("bytes as an array of integers", bytes.fromhex("a20101028100")),
        ("short LastAUMHash, padded on decode", bytes.fromhex("a3010502f605a30141aa02f603f6")),
        ("unsorted metadata", bytes.fromhex("a4010402f60441aa07a2616260616160")),
        ("empty omitempty metadata", bytes.fromhex("a4010402f60441aa07a0")),
        ("non-shortest head", bytes.fromhex("a201180302f6")),
        ("unknown key", bytes.fromhex("a3010302f60800")),
    ],
)
def test_reader_refuses_what_python_decodes_but_normalises(name: str, data: bytes) -> None:
    decoded = AUM.from_cbor(data)  # the lenient decoder takes it...
    assert decoded.to_cbor() != data  # ...and would hash something else
    assert not c_canonical(data), name


@pytest.mark.parametrize(
    "raw",
    [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xe2\x82", b"\x80"],
)
def test_reader_refuses_invalid_utf8_like_python(raw: bytes) -> None:
    data = bytes.fromhex("a3010402f607a1") + bytes([0x60 + len(raw)]) + raw + b"\x60"
    with pytest.raises(DecodeError):
        AUM.from_cbor(data)
    assert not c_canonical(data)
    ok = bytes.fromhex("a3010402f607a1") + b"\x64" + "€a".encode() + b"\x60"
    assert c_canonical(ok) and python_canonical(ok)


# --- public-key classes --------------------------------------------------------------------

# The eight small-order points (canonical encodings), as listed in the literature (e.g.
# libsodium's blocklist and "Taming the many EdDSAs", Chalkias et al. 2020).
SMALL_ORDER_CANONICAL = {
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
        "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
        "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    )
}


def test_small_order_points_are_small_order() -> None:
    encodings = tk.low_order_encodings()
    assert set(encodings[:8]) == SMALL_ORDER_CANONICAL  # the model agrees with the literature
    for enc in encodings:
        assert public_key_class(enc) == "small_order", enc.hex()
        assert not crypto_core_ed25519_is_valid_point(enc)
    assert public_key_class(bytes(32)) == "small_order"


def test_ok_exactly_when_libsodium_says_valid() -> None:
    rng = random.Random(11)
    seen: set[str] = set()
    for _ in range(3000):
        enc = rng.randbytes(32)
        cls = public_key_class(enc)
        seen.add(cls)
        assert (cls == "ok") == bool(crypto_core_ed25519_is_valid_point(enc)), enc.hex()
    assert {"ok", "not_point", "mixed_order"} <= seen
    for i in range(50):
        pk = bytes(SigningKey(rng.randbytes(32)).verify_key)
        assert public_key_class(pk) == "ok"
        assert crypto_core_ed25519_is_valid_point(pk)


def test_mixed_order_keys() -> None:
    rng = random.Random(12)
    torsion = tk.torsion_points()
    for i in range(16):
        a = tk.decode_lenient(bytes(SigningKey(rng.randbytes(32)).verify_key))
        assert a is not None
        t = torsion[1 + i % 7]  # never the identity
        enc = tk.encode(tk.add(a, t))
        assert public_key_class(enc) == "mixed_order", enc.hex()
        assert not crypto_core_ed25519_is_valid_point(enc)


def test_every_encoding_with_y_at_least_p() -> None:
    """y in [p, 2^255) is never canonical: the class is small_order (y = p, p + 1: the points
    with y = 0 and y = 1), not_point or noncanonical; never ok or mixed_order."""
    for y in range(19):
        for sign in (0, 1):
            enc = ((tk.P + y) | (sign << 255)).to_bytes(32, "little")
            point = tk.decode_lenient(enc)
            cls = public_key_class(enc)
            if point is None:
                assert cls == "not_point", (y, sign)
            elif tk.equal(tk.mul(8, point), tk.IDENTITY):
                assert cls == "small_order", (y, sign)
            else:
                assert cls == "noncanonical", (y, sign)
            assert not crypto_core_ed25519_is_valid_point(enc)
    # x = 0 with the sign bit set: y = 1 (identity) and y = -1 (order 2).
    for y in (1, tk.P - 1):
        assert public_key_class((y | (1 << 255)).to_bytes(32, "little")) == "small_order"


def test_public_key_class_wants_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        public_key_class(bytes(31))
