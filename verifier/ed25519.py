"""Ed25519 verification with the two rules tailnet lock needs (spec §4.3).

INTERIM: this placeholder delegates to `cryptography` (the cofactorless rule) for both rules
so that the rest of `verifier` can be written and tested while the native core is built. It
agrees with the reference on honestly generated signatures only. The native-core work replaces
this module with calls into `verifier._native` (exact ZIP-215 and cofactorless semantics).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Rule = Literal["zip215", "cofactorless"]


def verify(public_key: bytes, message: bytes, signature: bytes, rule: Rule = "zip215") -> bool:
    if rule not in ("zip215", "cofactorless"):
        raise ValueError(f"unknown verification rule {rule!r}")
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_batch(
    items: Iterable[tuple[bytes, bytes, bytes]], rule: Rule = "zip215"
) -> list[bool]:
    return [verify(pk, msg, sig, rule) for pk, msg, sig in items]
