"""Writes seed inputs for the fuzz target into tests/fuzz/corpus (first byte = mode, see
fuzz_target.c): valid direct, credential-rooted and rotation NKS chains for the reader (0) and
the peer verifier (1), and signed messages for the single verifiers (2).

    python3 tests/fuzz/make_seeds.py
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "native"))

import nks_corpus  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402


def main() -> None:
    out = HERE / "corpus"
    out.mkdir(exist_ok=True)
    rng = random.Random(2026)
    maker = nks_corpus.ChainMaker(SigningKey(rng.randbytes(32)), rng)
    seeds: list[bytes] = []
    for levels in (1, 2, 3, 5, 16):
        for credential_root in (False, True):
            _, nks = maker.chain(levels, credential_root)
            seeds += [b"\x00" + nks.to_cbor(), b"\x01" + nks.to_cbor()]
    for length in (0, 32, 200):
        key = SigningKey(rng.randbytes(32))
        msg = rng.randbytes(length)
        seeds.append(b"\x02" + bytes(key.verify_key) + key.sign(msg).signature + msg)
    for seed in seeds:
        (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
