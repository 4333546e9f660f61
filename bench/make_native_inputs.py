"""Writes the inputs of the C benchmark (bench/bench_native.c), so it measures the core with no
Python in the loop on the same kind of data as bench_verify.py:

    python3 bench/make_native_inputs.py OUT_DIR

OUT_DIR/signatures.bin: "TKAS", u32 count, then count records of public key (32), signature
(64) and message (32): signatures by 3 keys over random 32-byte digests.
OUT_DIR/fresh.bin: the same layout, FRESH records each by a key of its own (single
verification with a key seen once).
OUT_DIR/peers.bin: "TKAP", u32 count, the trusted key (32), then count records of node key
(32), u32 length and NKS bytes: the all-direct synthetic netmap of bench/netmap.py.
All integers little-endian.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nacl.signing import SigningKey  # noqa: E402

from bench.netmap import synthetic_netmap  # noqa: E402

COUNT = 100_000
FRESH = 5_000


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    keys = [SigningKey(rng.randbytes(32)) for _ in range(3)]
    with (out / "signatures.bin").open("wb") as f:
        f.write(b"TKAS" + struct.pack("<I", COUNT))
        for i in range(COUNT):
            key, msg = keys[i % 3], rng.randbytes(32)
            f.write(bytes(key.verify_key) + key.sign(msg).signature + msg)
    with (out / "fresh.bin").open("wb") as f:
        f.write(b"TKAS" + struct.pack("<I", FRESH))
        for _ in range(FRESH):
            key, msg = SigningKey(rng.randbytes(32)), rng.randbytes(32)
            f.write(bytes(key.verify_key) + key.sign(msg).signature + msg)
    state, peers = synthetic_netmap(COUNT, 0.0, seed=7)
    (trusted,) = state.trusted_keys
    assert trusted.public is not None
    with (out / "peers.bin").open("wb") as f:
        f.write(b"TKAP" + struct.pack("<I", COUNT) + trusted.public)
        for node_key, nks in peers:
            f.write(node_key + struct.pack("<I", len(nks)) + nks)
    print(
        f"wrote {out}/signatures.bin, fresh.bin and peers.bin ({COUNT:,}, {FRESH:,}, {COUNT:,})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
