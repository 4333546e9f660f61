"""Ed25519 verification with the two rules tailnet lock needs (spec §4.3), in native code.

* ``"zip215"`` — ed25519consensus (ZIP-215): S < L, lenient (non-canonical, small-order) A and
  R, cofactored equation. Used for AUM signatures and direct/credential node-key signatures.
* ``"cofactorless"`` — Go's ``crypto/ed25519``: S < L, lenient A, R compared byte for byte with
  the canonical encoding of [S]B - [k]A. Used for the outer signature of rotation signatures.

Both run in ``verifier._native`` (C, GIL released). Wrong lengths are invalid signatures, not
errors; an unknown rule is a programming error (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from verifier._native import ffi, lib

Rule = Literal["zip215", "cofactorless"]

_RULES: dict[str, int] = {
    "zip215": lib.TKA_RULE_ZIP215,
    "cofactorless": lib.TKA_RULE_COFACTORLESS,
}


def _rule_code(rule: str) -> int:
    try:
        return _RULES[rule]
    except KeyError:
        raise ValueError(
            f"unknown Ed25519 verification rule {rule!r}: use 'zip215' or 'cofactorless'"
        ) from None


def verify(public_key: bytes, message: bytes, signature: bytes, rule: Rule = "zip215") -> bool:
    """True if `signature` is a valid signature of `message` by `public_key` under `rule`."""
    code = _rule_code(rule)
    pk, msg, sig = bytes(public_key), bytes(message), bytes(signature)
    result: int = lib.tka_verify(pk, len(pk), msg, len(msg), sig, len(sig), code)
    if result < 0:
        raise MemoryError(f"native Ed25519 verification failed with code {result}")
    return result == 1


def verify_batch(
    items: Iterable[tuple[bytes, bytes, bytes]], rule: Rule = "zip215"
) -> list[bool]:
    """One verdict per (public_key, message, signature) triple, equal to `verify` on each.

    ZIP-215 uses randomized batch verification (one call into C for the whole list, bisecting
    on failure); the cofactorless rule has no exact batch form and is checked one by one.
    """
    code = _rule_code(rule)
    triples = [(bytes(pk), bytes(msg), bytes(sig)) for pk, msg, sig in items]
    if code == lib.TKA_RULE_COFACTORLESS:
        return [verify(pk, msg, sig, "cofactorless") for pk, msg, sig in triples]
    verdicts = [False] * len(triples)
    # Malformed lengths are invalid without reaching the batch, which takes fixed strides.
    batchable = [i for i, (pk, _, sig) in enumerate(triples) if len(pk) == 32 and len(sig) == 64]
    n = len(batchable)
    if n == 0:
        return verdicts
    pks = b"".join(triples[i][0] for i in batchable)
    sigs = b"".join(triples[i][2] for i in batchable)
    msgs = b"".join(triples[i][1] for i in batchable)
    offsets = [0] * (n + 1)
    total = 0
    for j, i in enumerate(batchable):
        total += len(triples[i][1])
        offsets[j + 1] = total
    out = ffi.new("uint8_t[]", n)
    result: int = lib.tka_verify_batch_zip215_packed(
        pks, sigs, msgs, ffi.new("size_t[]", offsets), n, out
    )
    if result < 0:
        raise MemoryError(f"native Ed25519 batch verification failed with code {result}")
    for j, i in enumerate(batchable):
        verdicts[i] = out[j] == 1
    return verdicts
