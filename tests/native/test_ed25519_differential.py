"""Differential tests of the native verifier against independent oracles:

* ZIP-215 against `ed25519_zebra` (py-ed25519-zebra-bindings, Rust ed25519-zebra);
* cofactorless against `cryptography` (OpenSSL), which agrees with Go's crypto/ed25519
  (docs/design.md);
* batch against single.

Cases are random honest signatures plus adversarial mutations: flipped bits, S >= L,
non-canonical and small-order A and R, mixed-order keys and nonces, wrong lengths, garbage.
TKA_ED25519_DIFF_CASES sets the number of cases (default sized to run in CI in seconds).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import ed25519_testkit as tk
import ed25519_zebra
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.signing import SigningKey

from verifier import ed25519

CASES = int(os.environ.get("TKA_ED25519_DIFF_CASES", "20000"))
SEED = int(os.environ.get("TKA_ED25519_DIFF_SEED", str(random.SystemRandom().randrange(2**32))))

Case = tuple[bytes, bytes, bytes]


def zebra_verdict(pk: bytes, msg: bytes, sig: bytes) -> bool:
    if len(pk) != 32 or len(sig) != 64:
        return False  # ed25519consensus/zebra take fixed-size arrays; callers check lengths
    return bool(ed25519_zebra.ed_verify(sig, msg, pk))


def openssl_verdict(pk: bytes, msg: bytes, sig: bytes) -> bool:
    if len(pk) != 32 or len(sig) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


class CaseFactory:
    """Builds one case at a time from a seeded RNG (the seed is printed on failure)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys = [SigningKey(self.rng.randbytes(32)) for _ in range(4)]
        self.low_order = tk.low_order_encodings()
        self.torsion = tk.torsion_points()
        # Mixed-order keys: A = [a]B + T with T of small order, secret scalar a known.
        self.mixed: list[tuple[int, bytes]] = []
        for i in range(1, 8):
            a = self.rng.randrange(1, tk.L)
            self.mixed.append((a, tk.encode(tk.add(tk.base_mul(a), self.torsion[i]))))

    def msg(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 32, 32, 32, 77, 200]))

    def honest(self) -> Case:
        sk = self.rng.choice(self.keys)
        m = self.msg()
        return bytes(sk.verify_key), m, sk.sign(m).signature

    def flip(self) -> Case:
        pk, m, sig = self.honest()
        which = self.rng.randrange(3)
        if which == 0 or not m:
            b = bytearray(sig)
            b[self.rng.randrange(64)] ^= 1 << self.rng.randrange(8)
            return pk, m, bytes(b)
        if which == 1:
            b = bytearray(pk)
            b[self.rng.randrange(32)] ^= 1 << self.rng.randrange(8)
            return bytes(b), m, sig
        b = bytearray(m)
        b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
        return pk, bytes(b), sig

    def s_not_reduced(self) -> Case:
        pk, m, sig = self.honest()
        s = int.from_bytes(sig[32:], "little")
        choice = self.rng.randrange(3)
        if choice == 0:
            s += tk.L  # same value mod L, non-canonical: must be rejected
        elif choice == 1:
            s = tk.L + self.rng.randrange(2**256 - tk.L)
        else:
            s = tk.L
        return pk, m, sig[:32] + s.to_bytes(32, "little")

    def mixed_order(self) -> Case:
        """Mixed-order A and/or R with a correctly computed S: ZIP-215 accepts, the
        cofactorless rule accepts only when the torsion parts cancel."""
        a, a_bytes = self.rng.choice(self.mixed)
        m = self.msg()
        r = self.rng.randrange(1, tk.L)
        r_point = tk.base_mul(r)
        if self.rng.random() < 0.5:
            r_point = tk.add(r_point, self.rng.choice(self.torsion))
        return a_bytes, m, tk.sign_raw(a, a_bytes, m, r_point, r)

    def small_order(self) -> Case:
        """Small-order A or R, S random or zero, sometimes a real key with a low-order R."""
        m = self.msg()
        r_bytes = self.rng.choice(self.low_order)
        s = 0 if self.rng.random() < 0.5 else self.rng.randrange(tk.L)
        if self.rng.random() < 0.5:
            pk = self.rng.choice(self.low_order)
        else:
            pk = bytes(self.rng.choice(self.keys).verify_key)
        return pk, m, r_bytes + s.to_bytes(32, "little")

    def small_order_key_valid(self) -> Case:
        """Small-order A, R = [r]B (+ torsion), S = r: valid under ZIP-215 since [8]kA = 0."""
        pk = self.rng.choice(self.low_order)
        m = self.msg()
        r = self.rng.randrange(1, tk.L)
        r_point = tk.base_mul(r)
        if self.rng.random() < 0.3:
            r_point = tk.add(r_point, self.rng.choice(self.torsion))
        return pk, m, tk.encode(r_point) + r.to_bytes(32, "little")

    def noncanonical_encoding(self) -> Case:
        """A and/or R given as the non-canonical twin of a low-order point. S = r stays
        right for any A bytes here: with small-order A, [8][k]A = 0 whatever k is."""
        pk, m, sig = self.small_order_key_valid()
        if self.rng.random() < 0.7:
            pk = self.rng.choice(self.low_order[8:])
        if self.rng.random() < 0.5:
            sig = self.rng.choice(self.low_order[8:]) + sig[32:]
        return pk, m, sig

    def wrong_length(self) -> Case:
        pk, m, sig = self.honest()
        if self.rng.random() < 0.5:
            return pk[: self.rng.choice([0, 16, 31])] + self.rng.choice([b"", b"\0\0"]), m, sig
        return pk, m, self.rng.choice([b"", sig[:63], sig + b"\0", sig + sig])

    def garbage(self) -> Case:
        return self.rng.randbytes(32), self.msg(), self.rng.randbytes(64)

    def cases(self, n: int) -> Iterator[Case]:
        makers: list[Callable[[], Case]] = [
            self.honest,
            self.honest,
            self.flip,
            self.s_not_reduced,
            self.mixed_order,
            self.mixed_order,
            self.small_order,
            self.small_order_key_valid,
            self.noncanonical_encoding,
            self.wrong_length,
            self.garbage,
        ]
        for i in range(n):
            yield makers[i % len(makers)]()


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    print(f"differential seed {SEED}, {CASES} cases")
    return list(CaseFactory(SEED).cases(CASES))


def test_zip215_matches_ed25519_zebra(cases: list[Case]) -> None:
    mismatches = [c for c in cases if ed25519.verify(*c) != zebra_verdict(*c)]
    assert not mismatches, f"seed {SEED}: first mismatch {[x.hex() for x in mismatches[0]]}"
    # The generated set must exercise both verdicts and the interesting classes.
    verdicts = [zebra_verdict(*c) for c in cases]
    assert sum(verdicts) > len(cases) // 4 and sum(verdicts) < len(cases) * 3 // 4


def test_cofactorless_matches_openssl(cases: list[Case]) -> None:
    mismatches = [
        c for c in cases if ed25519.verify(*c, rule="cofactorless") != openssl_verdict(*c)
    ]
    assert not mismatches, f"seed {SEED}: first mismatch {[x.hex() for x in mismatches[0]]}"


def test_cofactorless_bulk_matches_openssl(cases: list[Case]) -> None:
    # verify_batch(rule="cofactorless") checks each signature on its own in one native call
    # (shared decoding and inversion); its verdicts must be the oracle's, item by item.
    expected = [openssl_verdict(*c) for c in cases]
    assert ed25519.verify_batch(cases, rule="cofactorless") == expected, f"seed {SEED}"


def test_rules_differ_on_mixed_order_cases(cases: list[Case]) -> None:
    # Some cases are ZIP-215-valid yet cofactorless-invalid; none the other way round
    # (Go-valid implies ZIP-215-valid, docs/design.md).
    zip_only = [c for c in cases if ed25519.verify(*c) and not ed25519.verify(*c, "cofactorless")]
    go_only = [c for c in cases if ed25519.verify(*c, "cofactorless") and not ed25519.verify(*c)]
    assert zip_only
    assert not go_only


def test_batch_matches_single(cases: list[Case]) -> None:
    rng = random.Random(SEED)
    shuffled = list(cases)
    rng.shuffle(shuffled)
    # Several batch sizes, each a mix of valid and invalid signatures.
    start = 0
    for size in [1, 2, 3, 7, 64, 500, len(shuffled)]:
        chunk = shuffled[start : start + size] or shuffled[:size]
        start += size
        assert ed25519.verify_batch(chunk) == [ed25519.verify(*c) for c in chunk]
