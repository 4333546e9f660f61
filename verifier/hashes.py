"""BLAKE2s-256 digests and the 32-byte AUM hash type (docs/format.md §1, §4)."""

from __future__ import annotations

import hashlib

from verifier.errors import DecodeError
from verifier.textforms import HASH_LEN, format_aum_hash, parse_aum_hash


def blake2s256(data: bytes) -> bytes:
    """Unkeyed BLAKE2s with a 32-byte digest and default parameters."""
    return hashlib.blake2s(data, digest_size=32).digest()


class AUMHash(bytes):
    """A 32-byte AUM hash. It *is* bytes (compares equal to the raw digest) and prints as the
    52-character base32 text form used in CLI output, JSON, file names and control messages."""

    def __new__(cls, digest: bytes) -> AUMHash:
        if len(digest) != HASH_LEN:
            raise DecodeError(f"an AUM hash is {HASH_LEN} bytes, got {len(digest)}")
        return super().__new__(cls, digest)

    @classmethod
    def from_text(cls, text: str | bytes) -> AUMHash:
        return cls(parse_aum_hash(text))

    def to_text(self) -> str:
        return format_aum_hash(self)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"AUMHash({self.to_text()!r})"

    def is_zero(self) -> bool:
        return self == bytes(HASH_LEN)


def aum_hash_of(data: bytes) -> AUMHash:
    """BLAKE2s-256 of canonical bytes, typed as an AUMHash."""
    return AUMHash(blake2s256(data))
