"""Trusted signing keys and AUM signature entries (docs/format.md §3, §1, docs/format.md §5)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType

from verifier import cbor
from verifier.errors import DecodeError, ValidationError
from verifier.fields import Frozen

MAX_KEY_VOTES = 4096
MAX_META_BYTES = 512

_KEY_FIELDS = {1: "Kind", 2: "Votes", 3: "Public", 12: "Meta"}
_SIG_FIELDS = {1: "KeyID", 2: "Signature"}


class KeyKind(IntEnum):
    INVALID = 0
    ED25519 = 1


def key_kind_name(kind: int) -> str:
    if kind == KeyKind.INVALID:
        return "invalid"
    if kind == KeyKind.ED25519:
        return "25519"
    return f"Key?<{kind}>"


_set = object.__setattr__
_NO_META: Mapping[str, str] = MappingProxyType({})


class Key(Frozen):
    """A key trusted by the authority.

    `public` is None when the wire value was null (encoded `f6`) and b"" when it was an empty
    byte string (`40`); both re-encode as received. `meta` empty and absent are the same on the
    wire (omitempty) and are both stored as an empty mapping.
    """

    __match_args__ = ("kind", "votes", "public", "meta")
    __slots__ = __match_args__
    kind: int
    votes: int
    public: bytes | None
    meta: Mapping[str, str]

    def __init__(
        self,
        kind: int = KeyKind.ED25519,
        votes: int = 1,
        public: bytes | None = None,
        meta: Mapping[str, str] = _NO_META,
    ) -> None:
        _set(self, "kind", kind)
        _set(self, "votes", votes)
        _set(self, "public", public)
        # A private copy keeps the frozen object immutable in practice.
        _set(self, "meta", dict(meta))

    def __hash__(self) -> int:
        return hash((self.kind, self.votes, self.public))  # meta is a dict: not hashed

    def key_id(self) -> bytes:
        """KeyID: for Ed25519 keys the raw public key bytes."""
        if self.kind != KeyKind.ED25519:
            raise ValidationError(f"unknown key kind: {key_kind_name(self.kind)}")
        return b"" if self.public is None else self.public

    def validate(self) -> None:
        """Key validity (docs/format.md §5), in the reference's order and wording."""
        if self.votes > MAX_KEY_VOTES:
            raise ValidationError(f"excessive key weight: {self.votes} > {MAX_KEY_VOTES}")
        if self.votes == 0:
            raise ValidationError("key votes must be non-zero")
        meta_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in self.meta.items())
        if meta_bytes > MAX_META_BYTES:
            raise ValidationError(f"key metadata too big ({meta_bytes} > {MAX_META_BYTES})")
        if self.kind != KeyKind.ED25519:
            raise ValidationError(f"unrecognized key kind: {key_kind_name(self.kind)}")

    def to_cbor(self) -> bytes:
        entries = [
            (1, cbor.enc_uint(self.kind)),
            (2, cbor.enc_uint(self.votes)),
            (3, cbor.enc_opt_bytes(self.public)),
        ]
        if self.meta:
            entries.append((12, cbor.enc_text_map(self.meta)))
        return cbor.enc_struct(entries)

    @classmethod
    def from_cbor(cls, data: bytes) -> Key:
        return cls.from_model(cbor.decode(data), "Key")

    @classmethod
    def from_model(cls, value: cbor.CValue, what: str) -> Key:
        """A Key held by value: null decodes to the zero Key."""
        fields = cbor.struct_fields(value, _KEY_FIELDS, what)
        if fields is None:
            return cls(kind=0, votes=0, public=None)
        return cls(
            kind=cbor.field_uint(fields.get(1), 8, f"{what}.Kind"),
            votes=cbor.field_uint(fields.get(2), 64, f"{what}.Votes"),
            public=cbor.field_bytes(fields.get(3), f"{what}.Public"),
            meta=cbor.field_text_map(fields.get(12), f"{what}.Meta") or {},
        )


class Signature(Frozen):
    """One signature over an AUM's SigHash. None = null on the wire, b"" = empty byte string."""

    __match_args__ = ("key_id", "signature")
    __slots__ = __match_args__
    key_id: bytes | None
    signature: bytes | None

    def __init__(self, key_id: bytes | None = None, signature: bytes | None = None) -> None:
        _set(self, "key_id", key_id)
        _set(self, "signature", signature)

    def to_cbor(self) -> bytes:
        return cbor.enc_struct(
            [(1, cbor.enc_opt_bytes(self.key_id)), (2, cbor.enc_opt_bytes(self.signature))]
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> Signature:
        return cls.from_model(cbor.decode(data), "Signature")

    @classmethod
    def from_model(cls, value: cbor.CValue, what: str) -> Signature:
        fields = cbor.struct_fields(value, _SIG_FIELDS, what)
        if fields is None:
            return cls()
        return cls(
            key_id=cbor.field_bytes(fields.get(1), f"{what}.KeyID"),
            signature=cbor.field_bytes(fields.get(2), f"{what}.Signature"),
        )


def ed25519_key(public: bytes, votes: int = 1, meta: Mapping[str, str] | None = None) -> Key:
    """Convenience constructor for the only key kind in use."""
    if len(public) != 32:
        raise DecodeError(f"an Ed25519 public key is 32 bytes, got {len(public)}")
    return Key(kind=KeyKind.ED25519, votes=votes, public=bytes(public), meta=dict(meta or {}))
