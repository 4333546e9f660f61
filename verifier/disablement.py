"""Disablement secrets (docs/format.md §9): the Argon2i KDF with the reference's exact parameters
and the constant-time check of a secret against an authority's disablement values."""

from __future__ import annotations

import hmac

KDF_SALT = b"tailscale network-lock disablement salt"
KDF_TIME_COST = 4
KDF_MEMORY_KIB = 16 * 1024
KDF_PARALLELISM = 4
KDF_OUTPUT_LEN = 32
SECRET_LEN = 32


def disablement_kdf(secret: bytes) -> bytes:
    """Argon2i v0x13, t=4, m=16 MiB, p=4, 32-byte output; secrets of any length as given."""
    # Loaded on first use: opening an authority must not load Argon2 (start-up time).
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        secret=bytes(secret),
        salt=KDF_SALT,
        time_cost=KDF_TIME_COST,
        memory_cost=KDF_MEMORY_KIB,
        parallelism=KDF_PARALLELISM,
        hash_len=KDF_OUTPUT_LEN,
        type=Type.I,
        version=19,
    )


def new_disablement_secret() -> bytes:
    import secrets  # here, not at start-up: it loads `random`

    return secrets.token_bytes(SECRET_LEN)


def secret_matches(secret: bytes, values: tuple[bytes, ...] | None) -> bool:
    """True iff KDF(secret) equals any disablement value (each compared in constant time)."""
    derived = disablement_kdf(secret)
    found = False
    for value in values or ():
        found |= hmac.compare_digest(derived, value)
    return found
