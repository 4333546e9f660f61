"""Random descriptions of AUMs, keys, states and node-key signatures in the oracle's JSON form.

A description is plain JSON (hex byte strings, None = absent) that both sides can build from:
Go through `aum_encode`/`nks_encode`, Python through `pyside`. Keys come from 32-byte seeds so both
sides can sign; `sign_seeds` / `sign_seed` ask the builder to sign the finished structure.
"""

from __future__ import annotations

import random
from typing import Any

import nacl.signing

Desc = dict[str, Any]

KIND_ADD, KIND_REMOVE, KIND_NOOP, KIND_UPDATE, KIND_CHECKPOINT = 1, 2, 3, 4, 5
SIG_DIRECT, SIG_ROTATION, SIG_CREDENTIAL = 1, 2, 3


def pub(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def sign(seed: bytes, msg: bytes) -> bytes:
    return nacl.signing.SigningKey(seed).sign(msg).signature


def rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def rand_meta(rng: random.Random, max_entries: int = 3) -> dict[str, str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz_-é☃"
    out: dict[str, str] = {}
    for _ in range(rng.randint(1, max_entries)):
        k = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        out[k] = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
    return out


def key_desc(seed: bytes, votes: int = 1, meta: dict[str, str] | None = None) -> Desc:
    return {"kind": 1, "votes": votes, "public": pub(seed).hex(), "meta": meta}


def rand_key(rng: random.Random, seed: bytes | None = None) -> Desc:
    seed = seed if seed is not None else rand_bytes(rng, 32)
    votes = rng.choice([1, 1, 2, 3, 7, 4096, rng.randint(1, 4096)])
    meta = rand_meta(rng) if rng.random() < 0.3 else None
    if meta is not None and rng.random() < 0.1:
        meta = {}
    return key_desc(seed, votes, meta)


def state_desc(
    keys: list[Desc], disablement: list[bytes], id1: int = 0, id2: int = 0
) -> Desc:
    return {
        "last": None,
        "disablement": [d.hex() for d in disablement],
        "keys": keys,
        "id1": id1,
        "id2": id2,
    }


def aum_desc(kind: int, prev: bytes | None, **fields: Any) -> Desc:
    d: Desc = {
        "kind": kind,
        "prev": None if prev is None else prev.hex(),
        "key": None,
        "key_id": None,
        "state": None,
        "votes": None,
        "meta": None,
        "sigs": None,
    }
    d.update(fields)
    return d


def rand_state(rng: random.Random, key_seeds: list[bytes]) -> Desc:
    ids = rng.choice([(0, 0), (rng.getrandbits(64), rng.getrandbits(64)), (1, 0), (0, 2**64 - 1)])
    return state_desc(
        [rand_key(rng, s) for s in key_seeds],
        [rand_bytes(rng, 32) for _ in range(rng.randint(1, 4))],
        *ids,
    )


def rand_aum(rng: random.Random) -> Desc:
    """Any AUM, valid or not: every kind, odd-but-encodable field combinations, signatures."""
    prev = None if rng.random() < 0.15 else rand_bytes(rng, rng.choice([32, 32, 32, 0, 16, 40]))
    kind = rng.choice([1, 1, 2, 3, 4, 4, 5, 5, 0, 6, 200, 255])
    d = aum_desc(kind, prev)
    if kind == KIND_ADD or rng.random() < 0.1:
        d["key"] = rand_key(rng)
        if rng.random() < 0.1:
            d["key"]["votes"] = rng.choice([0, 4097, 2**32])
        if rng.random() < 0.05:
            d["key"]["kind"] = rng.choice([0, 2, 255])
        if rng.random() < 0.05:
            d["key"]["public"] = None
    if kind in (KIND_REMOVE, KIND_UPDATE) or rng.random() < 0.1:
        d["key_id"] = pub(rand_bytes(rng, 32)).hex() if rng.random() < 0.9 else ""
    if kind == KIND_UPDATE or rng.random() < 0.05:
        r = rng.random()
        if r < 0.4:
            d["votes"] = rng.choice([0, 1, 5, 4096, 4097])
        elif r < 0.8:
            d["meta"] = rand_meta(rng)
        else:
            d["votes"] = rng.randint(0, 10)
            d["meta"] = rand_meta(rng) if rng.random() < 0.8 else {}
    if kind == KIND_CHECKPOINT or rng.random() < 0.05:
        d["state"] = rand_state(rng, [rand_bytes(rng, 32) for _ in range(rng.randint(1, 5))])
        if rng.random() < 0.05:
            d["state"]["last"] = rand_bytes(rng, 32).hex()
        if rng.random() < 0.05:
            d["state"]["disablement"] = rng.choice([None, []])
        if rng.random() < 0.05:
            d["state"]["keys"] = rng.choice([None, []])
    r = rng.random()
    if r < 0.5:
        d["sign_seeds"] = [rand_bytes(rng, 32).hex() for _ in range(rng.randint(1, 3))]
    elif r < 0.6:
        d["sigs"] = [
            {"key_id": rand_bytes(rng, rng.choice([32, 31])).hex(),
             "sig": rand_bytes(rng, rng.choice([64, 63])).hex()}
            for _ in range(rng.randint(1, 2))
        ]
    elif r < 0.65:
        d["sigs"] = [{"key_id": None, "sig": None}]
    return d


def node_key_binary(nk: bytes) -> bytes:
    return b"np" + nk


def direct_nks(trusted_seed: bytes, node_key: bytes, wrapping: bytes | None) -> Desc:
    return {
        "kind": SIG_DIRECT,
        "pubkey": node_key_binary(node_key).hex(),
        "key_id": pub(trusted_seed).hex(),
        "sig": None,
        "nested": None,
        "wrapping": None if wrapping is None else wrapping.hex(),
        "sign_seed": trusted_seed.hex(),
    }


def credential_nks(trusted_seed: bytes, wrapping: bytes) -> Desc:
    return {
        "kind": SIG_CREDENTIAL,
        "pubkey": None,
        "key_id": pub(trusted_seed).hex(),
        "sig": None,
        "nested": None,
        "wrapping": wrapping.hex(),
        "sign_seed": trusted_seed.hex(),
    }


def rotation_nks(
    rotation_seed: bytes, node_key: bytes, nested: Desc, wrapping: bytes | None = None
) -> Desc:
    return {
        "kind": SIG_ROTATION,
        "pubkey": node_key_binary(node_key).hex(),
        "key_id": None,
        "sig": None,
        "nested": nested,
        "wrapping": None if wrapping is None else wrapping.hex(),
        "sign_seed": rotation_seed.hex(),
    }


def rand_nks(rng: random.Random, max_depth: int = 16) -> Desc:
    """Any NKS: direct / credential innermost, 0..max_depth-1 rotations, odd fields sometimes."""
    trusted = rand_bytes(rng, 32)
    rot = rand_bytes(rng, 32)
    if rng.random() < 0.3:
        inner = credential_nks(trusted, pub(rot))
    else:
        wrapping = rng.choice([pub(rot), None, bytes(32)])
        inner = direct_nks(trusted, rand_bytes(rng, 32), wrapping)
    d = inner
    for _ in range(rng.randint(0, max_depth - 1) if rng.random() < 0.7 else 0):
        d = rotation_nks(rot, rand_bytes(rng, 32), d)
    r = rng.random()
    if r < 0.05:
        d["kind"] = rng.choice([0, 4, 255])
    elif r < 0.1:
        d["key_id"] = rand_bytes(rng, 32).hex()
    elif r < 0.15:
        d["pubkey"] = ""
    elif r < 0.2:
        d["sign_seed"] = None
        d["sig"] = rand_bytes(rng, 64).hex()
    return d
