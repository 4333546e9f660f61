"""Batch ZIP-215 behaviour: verdicts per signature equal single verification wherever the bad
ones sit, many distinct keys (the Pippenger path for A terms), malformed entries, rules."""

from __future__ import annotations

import os
import random

import pytest
from nacl.signing import SigningKey

from verifier import ed25519


def signed(keys: list[SigningKey], n: int, rng: random.Random) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for i in range(n):
        sk = keys[i % len(keys)]
        m = rng.randbytes(32)
        out.append((bytes(sk.verify_key), m, sk.sign(m).signature))
    return out


def corrupt(case: tuple[bytes, bytes, bytes]) -> tuple[bytes, bytes, bytes]:
    pk, m, sig = case
    return pk, m, sig[:40] + bytes([sig[40] ^ 0x10]) + sig[41:]


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(os.urandom(8))


@pytest.mark.parametrize("n_keys", [1, 3, 40])
def test_one_bad_anywhere_is_found(n_keys: int, rng: random.Random) -> None:
    keys = [SigningKey.generate() for _ in range(n_keys)]
    good = signed(keys, 300, rng)
    assert ed25519.verify_batch(good) == [True] * 300
    for pos in [0, 1, 150, 298, 299, rng.randrange(300)]:
        items = list(good)
        items[pos] = corrupt(items[pos])
        expected = [i != pos for i in range(300)]
        assert ed25519.verify_batch(items) == expected


def test_many_bad_get_individual_verdicts(rng: random.Random) -> None:
    keys = [SigningKey.generate() for _ in range(5)]
    items = signed(keys, 1000, rng)
    bad = set(rng.sample(range(1000), 37))
    items = [corrupt(c) if i in bad else c for i, c in enumerate(items)]
    assert ed25519.verify_batch(items) == [i not in bad for i in range(1000)]


@pytest.mark.parametrize("n_keys", [3, 60])
def test_large_batch_through_pippenger_and_lanes(n_keys: int, rng: random.Random) -> None:
    # Past the small-range size (2,048) the whole batch goes through Pippenger, and the
    # bisection's deeper levels through the eight-lane Straus pass: both must find the same
    # few bad signatures, one of them in the last place.
    keys = [SigningKey.generate() for _ in range(n_keys)]
    items = signed(keys, 5000, rng)
    assert ed25519.verify_batch(items) == [True] * 5000
    bad = set(rng.sample(range(5000), 5)) | {4999}
    items = [corrupt(c) if i in bad else c for i, c in enumerate(items)]
    assert ed25519.verify_batch(items) == [i not in bad for i in range(5000)]


def test_all_bad(rng: random.Random) -> None:
    items = [corrupt(c) for c in signed([SigningKey.generate()], 50, rng)]
    assert ed25519.verify_batch(items) == [False] * 50


def test_signature_under_another_key_is_rejected(rng: random.Random) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    items = signed([a], 20, rng)
    pk_b = bytes(b.verify_key)
    items[7] = (pk_b, items[7][1], items[7][2])
    assert ed25519.verify_batch(items) == [i != 7 for i in range(20)]


def test_malformed_entries_are_invalid_not_errors(rng: random.Random) -> None:
    items = signed([SigningKey.generate()], 10, rng)
    items[2] = (items[2][0][:31], items[2][1], items[2][2])
    items[5] = (items[5][0], items[5][1], items[5][2] + b"\0")
    items[8] = (b"\xff" * 32, items[8][1], items[8][2])  # may or may not decode; still wrong
    assert ed25519.verify_batch(items) == [i not in (2, 5, 8) for i in range(10)]
    assert ed25519.verify_batch([]) == []
    assert ed25519.verify_batch([(b"", b"", b"")]) == [False]


def test_cofactorless_batch_is_per_signature(rng: random.Random) -> None:
    items = signed([SigningKey.generate()], 10, rng)
    items[4] = corrupt(items[4])
    assert ed25519.verify_batch(items, rule="cofactorless") == [i != 4 for i in range(10)]


def test_unknown_rule_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="zip215"):
        ed25519.verify(b"\0" * 32, b"", b"\0" * 64, rule="rfc8032")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ed25519.verify_batch([], rule="strict")  # type: ignore[arg-type]


def test_accepts_bytes_like_inputs(rng: random.Random) -> None:
    pk, m, sig = signed([SigningKey.generate()], 1, rng)[0]
    assert ed25519.verify(bytearray(pk), memoryview(m), bytearray(sig))


@pytest.mark.parametrize(
    "switches",
    [{"TKA_NATIVE_NO_IFMA": "1"}, {"TKA_NATIVE_NO_IFMA": "1", "TKA_NATIVE_NO_AVX2": "1"}],
    ids=["no-ifma", "scalar"],
)
def test_portable_path_gives_the_same_verdicts(switches: dict[str, str]) -> None:
    """TKA_NATIVE_NO_IFMA=1 turns the AVX-512 IFMA lanes off (the AVX2 ones then run where
    the CPU has them), TKA_NATIVE_NO_AVX2=1 those too; every path must give the verdicts of
    the definitions, batch and each-on-its-own alike."""
    import subprocess
    import sys

    script = (
        "import random\n"
        "from nacl.signing import SigningKey\n"
        "from verifier import ed25519\n"
        "rng = random.Random(7)\n"
        "keys = [SigningKey(bytes([i]) * 32) for i in range(3)]\n"
        "items = []\n"
        "for i in range(203):\n"
        "    m = rng.randbytes(32)\n"
        "    s = keys[i % 3].sign(m).signature\n"
        "    if i % 29 == 3:\n"
        "        s = s[:10] + bytes([s[10] ^ 1]) + s[11:]\n"
        "    items.append((bytes(keys[i % 3].verify_key), m, s))\n"
        "got = ed25519.verify_batch(items)\n"
        "assert got == [ed25519.verify(*c) for c in items], got\n"
        "assert got.count(False) == 7, got.count(False)\n"
        "each = ed25519.verify_batch(items, rule='cofactorless')\n"
        "assert each == [ed25519.verify(*c, rule='cofactorless') for c in items], each\n"
        "assert each == got, each\n"
    )
    env = {**os.environ, **switches}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


def test_concurrent_calls_from_threads(rng: random.Random) -> None:
    """The GIL is released inside the native calls; concurrent batches and single verifies
    (each thread with its own key cache) must still give exact verdicts."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [SigningKey.generate() for _ in range(6)]
    jobs = []
    for t in range(4):
        items = signed(keys[t : t + 3], 400, rng)
        bad = {7 * t + 1, 200 + t}
        jobs.append(([corrupt(c) if i in bad else c for i, c in enumerate(items)], bad))

    def batch(job: tuple[list[tuple[bytes, bytes, bytes]], set[int]]) -> bool:
        items, bad = job
        return ed25519.verify_batch(items) == [i not in bad for i in range(len(items))]

    def singles(job: tuple[list[tuple[bytes, bytes, bytes]], set[int]]) -> bool:
        items, bad = job
        return [ed25519.verify(*c, rule="cofactorless") for c in items[:100]] == [
            i not in bad for i in range(100)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(batch, jobs * 2))
        assert all(pool.map(singles, jobs * 2))


@pytest.mark.parametrize("rule", ["zip215", "cofactorless"])
def test_packed_batch_matches_the_list_api(rule: ed25519.Rule, rng: random.Random) -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    items = signed(keys, 200, rng)
    for pos in (0, 77, 199):
        items[pos] = corrupt(items[pos])
    pks = b"".join(pk for pk, _, _ in items)
    msgs = bytearray(b"".join(m for _, m, _ in items))
    sigs = memoryview(b"".join(s for _, _, s in items))
    want = ed25519.verify_batch(items, rule=rule)
    assert want.count(False) == 3
    assert ed25519.verify_batch_packed(pks, msgs, sigs, 32, rule=rule) == want


def test_packed_batch_empty_messages_and_bad_sizes() -> None:
    sk = SigningKey.generate()
    pk, sig = bytes(sk.verify_key), sk.sign(b"").signature
    assert ed25519.verify_batch_packed(pk * 2, b"", sig * 2, 0) == [True, True]
    assert ed25519.verify_batch_packed(b"", b"", b"", 32) == []
    for pks, msgs, sigs, message_len in [
        (pk[:31], b"", sig, 0),  # a key short
        (pk, b"", sig + b"x", 0),  # a signature long
        (pk, b"abc", sig, 2),  # messages do not fill message_len each
    ]:
        with pytest.raises(ValueError, match="packed batch sizes do not match"):
            ed25519.verify_batch_packed(pks, msgs, sigs, message_len)
    with pytest.raises(ValueError, match="message_len"):
        ed25519.verify_batch_packed(pk, b"", sig, -1)
    with pytest.raises(ValueError, match="unknown Ed25519 verification rule"):
        ed25519.verify_batch_packed(pk, b"", sig, 0, rule="strict")  # type: ignore[arg-type]
