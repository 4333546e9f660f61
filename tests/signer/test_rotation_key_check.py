"""The host refuses rotation keys no honest key generator produces (small-order, mixed-order,
non-canonical, not a point) before anything is signed: rotations over such keys can be forged
or never verify, and both verification rules would accept the signature that names them."""

from __future__ import annotations

import sys
from pathlib import Path

import nacl.signing
import pytest

from signer.bulk import check_rotation_key
from verifier.errors import SignerError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "native"))
import ed25519_testkit as tk  # the test kit lives beside the native tests

ORDER_EIGHT = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")


def _mixed_order() -> bytes:
    real = tk.decode_lenient(bytes(nacl.signing.SigningKey.generate().verify_key))
    assert real is not None
    return tk.encode(tk.add(real, tk.torsion_points()[1]))


def _not_a_point() -> bytes:
    for y in range(2, 100):
        candidate = y.to_bytes(32, "little")
        if tk.decode_lenient(candidate) is None:
            return candidate
    raise AssertionError("no undecodable y below 100")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (bytes(32), "all-zero"),
        (ORDER_EIGHT, "small-order point"),
        (_mixed_order(), "small-order component"),
        (_not_a_point(), "not an Ed25519 public key"),
        ((tk.P + 1).to_bytes(32, "little"), "small-order point"),  # y = 1 spelled y = p + 1
    ],
)
def test_rotation_keys_nobody_generates_are_refused(key: bytes, reason: str) -> None:
    with pytest.raises(SignerError, match=reason):
        check_rotation_key(key)


def test_real_keys_and_no_key_pass() -> None:
    check_rotation_key(bytes(nacl.signing.SigningKey.generate().verify_key))
    check_rotation_key(None)
