"""Writes seed inputs for the fuzz target into tests/fuzz/corpus (first byte = mode, see
fuzz_target.c): valid direct, credential-rooted and rotation NKS chains for the reader (0) and
the peer verifier (1), signed messages for the single verifiers (2), and AUMs of every kind
(with metadata, states and signatures) plus 32-byte public keys of every class for the AUM
reader and the key classifier (3).

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

sys.path.insert(0, str(HERE.parent.parent))
from verifier.aum import AUM, MessageKind  # noqa: E402
from verifier.key import Key, Signature  # noqa: E402
from verifier.state import State  # noqa: E402


def aum_seeds(rng: random.Random) -> list[bytes]:
    signers = [SigningKey(rng.randbytes(32)) for _ in range(3)]
    keys = [
        Key(kind=1, votes=1 + i, public=bytes(s.verify_key), meta={"purpose": "pre-auth key"} if i
            else {})
        for i, s in enumerate(signers)
    ]
    state = State(
        disablement_values=(rng.randbytes(32), rng.randbytes(32)),
        keys=tuple(keys),
        state_id1=rng.getrandbits(64),
        state_id2=rng.getrandbits(64),
    )
    parent = rng.randbytes(32)
    unsigned = [
        AUM(kind=MessageKind.CHECKPOINT, state=state),
        AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=parent, state=state),
        AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=parent, key=keys[1]),
        AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=parent, key_id=keys[0].public),
        AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=parent, key_id=keys[2].public, votes=0,
            meta={"z": "\u00e9", "ab": ""}),
        AUM(kind=MessageKind.NO_OP, prev_aum_hash=b""),
        AUM(kind=200, prev_aum_hash=parent, key=Key(kind=0, votes=0, public=None)),
    ]
    out = []
    for aum in unsigned:
        signed = aum
        for s in signers[: 1 + len(out) % 3]:
            signed = signed.add_signature(
                Signature(bytes(s.verify_key), s.sign(aum.sig_hash()).signature)
            )
        out += [aum.to_cbor(), signed.to_cbor()]
    # 32-byte inputs exercise the key classifier: the all-zero key, an order-8 point, a real key.
    out += [
        bytes(32),
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        bytes(signers[0].verify_key),
    ]
    return [b"\x03" + data for data in out]


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
    seeds += aum_seeds(rng)
    for seed in seeds:
        (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
