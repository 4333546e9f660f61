"""The CBOR profile (docs/format.md §2), case by case, without the Go oracle: the decoder's
strictness and leniency, and hashes taken over the canonical re-encoding. (The interop suite checks
the same rules against the reference on random and mutated inputs; these pin the individual
rules.)"""

from __future__ import annotations

import pytest

from verifier import cbor
from verifier.aum import AUM
from verifier.errors import DecodeError
from verifier.nks import NodeKeySignature

NP = b"np" + bytes(range(32))
# {1: 1, 2: h'6e70…'}: a direct NKS with only a Pubkey.
CANONICAL = bytes([0xA2, 0x01, 0x01, 0x02, 0x58, 34]) + NP


def _nested_maps(levels: int) -> bytes:
    return bytes([0xA2, 0x01, 0x02, 0x05]) * (levels - 1) + bytes([0xA1, 0x01, 0x01])


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("duplicate key", bytes([0xA2, 0x01, 0x01, 0x01, 0x02]), "duplicate"),
        ("tag", bytes([0xC0, 0xA1, 0x01, 0x01]), "tag"),
        ("indefinite map", bytes([0xBF, 0x01, 0x01, 0xFF]), "indefinite"),
        ("indefinite byte string", bytes([0xA1, 0x02, 0x5F, 0x41, 0x00, 0xFF]), "indefinite"),
        ("trailing byte", CANONICAL + b"\x00", "trailing"),
        ("truncated", CANONICAL[:-1], "truncated"),
        ("17 nested maps", _nested_maps(17), "nesting"),
        ("empty input", b"", "empty"),
        ("SigKind wider than 8 bits", bytes([0xA1, 0x01, 0x19, 0x01, 0x00]), "SigKind"),
        ("negative SigKind", bytes([0xA1, 0x01, 0x20]), "SigKind"),
        ("text where bytes belong", bytes([0xA1, 0x02, 0x61, 0x41]), "Pubkey"),
        ("reserved additional info", bytes([0xA1, 0x01, 0x1C]), ""),
    ],
)
def test_strict_rules_reject(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as err:
        NodeKeySignature.from_cbor(data)
    assert message.lower() in str(err.value).lower(), name


def test_sixteen_nested_maps_are_within_the_limit() -> None:
    nks = NodeKeySignature.from_cbor(_nested_maps(16))
    depth = 0
    level: NodeKeySignature | None = nks
    while level is not None:
        depth, level = depth + 1, level.nested
    assert depth == 16


def test_array_and_map_size_limits_apply_inside_unknown_fields() -> None:
    def unknown_field(value: bytes) -> bytes:
        return bytes([0xA2, 0x01, 0x01, 0x18, 99]) + value  # key 99: unknown, skipped

    ok_array = cbor.head(4, 4096) + bytes(4096)
    NodeKeySignature.from_cbor(unknown_field(ok_array))
    with pytest.raises(DecodeError, match="4097"):
        NodeKeySignature.from_cbor(unknown_field(cbor.head(4, 4097) + bytes(4097)))
    pairs = b"".join(cbor.enc_uint(i) + b"\x00" for i in range(1025))
    with pytest.raises(DecodeError, match="1025"):
        NodeKeySignature.from_cbor(unknown_field(cbor.head(5, 1025) + pairs))
    # Lengths are checked against the input before anything is allocated.
    with pytest.raises(DecodeError):
        NodeKeySignature.from_cbor(unknown_field(bytes([0x5B]) + (2**63).to_bytes(8, "big")))


def test_invalid_utf8_matters_only_where_text_is_decoded() -> None:
    bad_text = bytes([0x62, 0xC3, 0x28])
    # Inside an unknown field the reference never decodes it: accepted.
    NodeKeySignature.from_cbor(bytes([0xA2, 0x01, 0x01, 0x18, 99]) + bad_text)
    # As an AUM Meta value (field 7, a text map) it is decoded: refused.
    aum = bytes([0xA2, 0x01, 0x01, 0x07, 0xA1, 0x61, 0x6B]) + bad_text
    with pytest.raises(DecodeError, match=r"(?i)utf"):
        AUM.from_cbor(aum)


@pytest.mark.parametrize(
    ("name", "lenient"),
    [
        ("non-shortest map head", bytes([0xB8, 0x02]) + CANONICAL[1:]),
        ("non-shortest SigKind", bytes([0xA2, 0x01, 0x18, 0x01]) + CANONICAL[3:]),
        ("non-shortest byte-string head", bytes([0xA2, 0x01, 0x01, 0x02, 0x59, 0, 34]) + NP),
        ("unsorted keys", bytes([0xA2, 0x02, 0x58, 34]) + NP + bytes([0x01, 0x01])),
        (
            "unknown integer key",
            bytes([0xA3, 0x01, 0x01, 0x02, 0x58, 34]) + NP + bytes([0x18, 99, 0x00]),
        ),
        ("text key (ignored)", bytes([0xA3, 0x01, 0x01, 0x02, 0x58, 34]) + NP + b"\x61\x31\x05"),
    ],
)
def test_lenient_forms_decode_to_the_canonical_value(name: str, lenient: bytes) -> None:
    nks = NodeKeySignature.from_cbor(lenient)
    assert nks.to_cbor() == CANONICAL, name
    # The hash is over the canonical re-encoding, never the received bytes.
    assert nks.sig_hash() == NodeKeySignature.from_cbor(CANONICAL).sig_hash()


def test_null_in_an_integer_field_reads_as_zero() -> None:
    nks = NodeKeySignature.from_cbor(bytes([0xA1, 0x01, 0xF6]))
    assert nks.kind == 0


def test_text_key_equal_to_a_field_number_does_not_name_the_field() -> None:
    # {"1": 1} has no key 1 at all: kind stays 0 (docs/design.md, spec corrections).
    assert NodeKeySignature.from_cbor(bytes([0xA1, 0x61, 0x31, 0x01])).kind == 0


def test_absent_and_present_but_empty_state_keys_differ() -> None:
    # An AUM's State (field 5) with Keys (field 3) absent vs an empty array: different hashes.
    absent = bytes([0xA2, 0x01, 0x06, 0x05, 0xA0])
    empty = bytes([0xA2, 0x01, 0x06, 0x05, 0xA1, 0x03, 0x80])
    a, b = AUM.from_cbor(absent), AUM.from_cbor(empty)
    assert a.state is not None and b.state is not None
    assert a.state.keys is None and b.state.keys == ()
    # Absent re-encodes as null (the reference has no omitempty there), empty as an empty array.
    assert a.to_cbor().endswith(bytes([0x03, 0xF6])) and b.to_cbor().endswith(bytes([0x03, 0x80]))
    assert a.hash() != b.hash()
