"""Ed25519 verification with the two rules tailnet lock needs (docs/format.md §4), in native code.

* ``"zip215"`` — ed25519consensus (ZIP-215): S < L, lenient (non-canonical, small-order) A and
  R, cofactored equation. Used for AUM signatures and direct/credential node-key signatures.
* ``"cofactorless"`` — Go's ``crypto/ed25519``: S < L, lenient A, R compared byte for byte with
  the canonical encoding of [S]B - [k]A. Used for the outer signature of rotation signatures.

Both run in ``verifier._native`` (C, GIL released). Wrong lengths are invalid signatures, not
errors; an unknown rule is a programming error (``ValueError``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Literal, get_args

from verifier._native import ffi, lib

# array typecode whose items are C size_t (the offsets the packed entry points read)
OFFSET_TYPECODE = next(t for t in "LQI" if array(t).itemsize == ffi.sizeof("size_t"))

Rule = Literal["zip215", "cofactorless"]

KeyClass = Literal["ok", "not_point", "small_order", "noncanonical", "mixed_order"]

_RULES: dict[str, int] = {
    "zip215": lib.TKA_RULE_ZIP215,
    "cofactorless": lib.TKA_RULE_COFACTORLESS,
}


def native_failure(code: int) -> Exception:
    """The exception for a negative return code of the native library (never a verdict)."""
    if code == lib.TKA_ERR_NOMEM:
        return MemoryError("native Ed25519 verification could not allocate memory")
    if code == lib.TKA_ERR_RANDOM:
        return OSError("the OS random generator (getrandom) failed during batch verification")
    return RuntimeError(f"native Ed25519 verification failed with code {code}")


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
        raise native_failure(result)
    return result == 1


def verify_batch(
    items: Iterable[tuple[bytes, bytes, bytes]], rule: Rule = "zip215"
) -> list[bool]:
    """One verdict per (public_key, message, signature) triple, equal to `verify` on each.

    ZIP-215 uses randomized batch verification (one call into C for the whole list, bisecting
    on failure). The cofactorless rule has no exact batch form: each signature is checked on
    its own, in one call that shares the decoding and inversion work across signatures.
    """
    code = _rule_code(rule)
    triples = list(items)
    if not triples:
        return []
    # Comprehensions, not zip(*triples): unpacking 10^5 arguments costs more than the rest.
    pks = [pk for pk, _, _ in triples]
    msgs = [msg for _, msg, _ in triples]
    sigs = [sig for _, _, sig in triples]
    if set(map(len, pks)) == {32} and set(map(len, sigs)) == {64}:
        return _native_many(pks, msgs, sigs, code)
    # Malformed lengths are invalid without reaching C, which takes fixed strides.
    verdicts = [False] * len(triples)
    wellformed = [i for i in range(len(triples)) if len(pks[i]) == 32 and len(sigs[i]) == 64]
    if wellformed:
        results = _native_many(
            [pks[i] for i in wellformed],
            [msgs[i] for i in wellformed],
            [sigs[i] for i in wellformed],
            code,
        )
        for i, ok in zip(wellformed, results, strict=True):
            verdicts[i] = ok
    return verdicts


def verify_batch_packed(
    public_keys: bytes | bytearray | memoryview,
    messages: bytes | bytearray | memoryview,
    signatures: bytes | bytearray | memoryview,
    message_len: int,
    rule: Rule = "zip215",
) -> list[bool]:
    """`verify_batch` for signatures already packed: n public keys of 32 bytes one after the
    other, n messages of `message_len` bytes each, n signatures of 64 bytes. C reads the
    buffers where they are, so nothing per signature is made in Python (a list of 10^5
    triples costs 30-50 ms to walk before C starts)."""
    code = _rule_code(rule)
    if message_len < 0:
        raise ValueError(f"message_len must be 0 or more, not {message_len}")
    key_bytes, message_bytes, signature_bytes = (
        memoryview(b).nbytes for b in (public_keys, messages, signatures)
    )
    n, odd = divmod(key_bytes, 32)
    if odd or signature_bytes != 64 * n or message_bytes != message_len * n:
        raise ValueError(
            f"packed batch sizes do not match: {key_bytes} bytes of keys (32 each), "
            f"{signature_bytes} of signatures (64 each), {message_bytes} of messages "
            f"({message_len} each)"
        )
    if n == 0:
        return []
    offsets = (array(OFFSET_TYPECODE, range(0, message_len * n + 1, message_len))
               if message_len else array(OFFSET_TYPECODE, [0]) * (n + 1))
    return _native_packed(public_keys, signatures, messages if message_bytes else None,
                          offsets, n, code)


def _native_many(
    pks: Sequence[bytes], msgs: Sequence[bytes], sigs: Sequence[bytes], code: int
) -> list[bool]:
    """One native call over packed buffers (no per-signature objects on the way in)."""
    # An array read in place: cffi converting a list of 10^5 ints took twice as long.
    offsets = array(OFFSET_TYPECODE, accumulate(map(len, msgs), initial=0))
    return _native_packed(b"".join(pks), b"".join(sigs), b"".join(msgs), offsets, len(pks), code)


def _native_packed(
    pks: bytes | bytearray | memoryview,
    sigs: bytes | bytearray | memoryview,
    msgs: bytes | bytearray | memoryview | None,
    offsets: array[int],
    n: int,
    code: int,
) -> list[bool]:
    """The packed native call under rule `code`; msgs None: every message is empty."""
    out = ffi.new("uint8_t[]", n)
    packed = (ffi.from_buffer(pks), ffi.from_buffer(sigs),
              ffi.NULL if msgs is None else ffi.from_buffer(msgs),
              ffi.from_buffer("size_t[]", offsets), n, out)
    if code == lib.TKA_RULE_ZIP215:
        result: int = lib.tka_verify_batch_zip215_packed(*packed)
    else:
        result = lib.tka_verify_each_packed(*packed, code)
    if result < 0:
        raise native_failure(result)
    return list(map(bool, bytes(ffi.buffer(out))))


_KEY_CLASSES: dict[int, KeyClass] = {
    lib.TKA_PK_OK: "ok",
    lib.TKA_PK_NOT_POINT: "not_point",
    lib.TKA_PK_SMALL_ORDER: "small_order",
    lib.TKA_PK_MIXED_ORDER: "mixed_order",
    lib.TKA_PK_NONCANONICAL: "noncanonical",
}
assert set(_KEY_CLASSES.values()) == set(get_args(KeyClass))


def public_key_class(public_key: bytes) -> KeyClass:
    """What a 32-byte Ed25519 public key is, the first that applies: "not_point" (no curve
    point has this encoding), "small_order" (order 1, 2, 4 or 8; the all-zero key is one),
    "noncanonical" (another non-canonical encoding: y >= p or x = 0 with the sign bit set),
    "mixed_order" (a prime-order point plus a torsion component) or "ok" (canonical, prime
    order: what key generation produces). Both verification rules accept every class but
    "not_point"; only "ok" keys should be trusted as rotation keys (a small-order key lets
    anyone forge signatures)."""
    pk = bytes(public_key)
    if len(pk) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(pk)}")
    return _KEY_CLASSES[lib.tka_public_key_class(pk)]
