"""Known-answer tests: the generated 196-case ZIP-215 small-order grid and djb's sign.input
(from the cryptography_vectors package), under both rules, single and batch."""

from __future__ import annotations

from pathlib import Path

import cryptography_vectors
import ed25519_testkit as tk
import ed25519_zebra
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier import ed25519


def openssl_verdict(pk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def grid() -> list[tuple[bytes, bytes, bytes]]:
    cases = tk.zip215_grid()
    assert len(cases) == 196 and len(set(cases)) == 196
    return cases


def test_grid_zip215_accepts_all_196(grid: list[tuple[bytes, bytes, bytes]]) -> None:
    # ZIP-215 requires every grid case to verify (zips.z.cash/zip-0215; docs/design.md).
    assert all(ed25519.verify(*c) for c in grid)
    assert all(ed25519_zebra.ed_verify(sig, msg, pk) for pk, msg, sig in grid)


def test_grid_cofactorless_accepts_exactly_12(grid: list[tuple[bytes, bytes, bytes]]) -> None:
    ours = [ed25519.verify(*c, rule="cofactorless") for c in grid]
    assert ours == [openssl_verdict(*c) for c in grid]
    assert sum(ours) == 12  # Go stdlib / OpenSSL accept 12 of 196 (docs/design.md)


def test_grid_batch_accepts_all(grid: list[tuple[bytes, bytes, bytes]]) -> None:
    assert ed25519.verify_batch(grid) == [True] * 196


def test_grid_rejects_s_equal_to_l(grid: list[tuple[bytes, bytes, bytes]]) -> None:
    # Same points, S = L instead of 0: equal mod L but not canonical, so every rule rejects.
    bad = [(pk, m, sig[:32] + tk.L.to_bytes(32, "little")) for pk, m, sig in grid[:20]]
    assert not any(ed25519.verify(*c) for c in bad)
    assert not any(ed25519.verify(*c, rule="cofactorless") for c in bad)
    assert ed25519.verify_batch(bad) == [False] * 20


def sign_input() -> list[tuple[bytes, bytes, bytes]]:
    path = (
        Path(cryptography_vectors.__file__).parent / "asymmetric" / "Ed25519" / "sign.input"
    )
    cases = []
    for line in path.read_text().splitlines():
        _sk_pk, pk, msg, sig_msg, _ = line.split(":")
        sig = bytes.fromhex(sig_msg)[:64]
        cases.append((bytes.fromhex(pk), bytes.fromhex(msg), sig))
    return cases


def test_sign_input_all_valid_both_rules() -> None:
    cases = sign_input()
    assert len(cases) == 1024
    assert all(ed25519.verify(*c) for c in cases)
    assert all(ed25519.verify(*c, rule="cofactorless") for c in cases)
    assert ed25519.verify_batch(cases) == [True] * 1024


def test_sign_input_with_altered_message_rejected() -> None:
    cases = [(pk, msg + b"\x00", sig) for pk, msg, sig in sign_input()[:64]]
    assert not any(ed25519.verify(*c) for c in cases)
    assert not any(ed25519.verify(*c, rule="cofactorless") for c in cases)
    assert ed25519.verify_batch(cases) == [False] * 64
