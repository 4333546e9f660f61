"""The storage interface (docs/format.md §8) every authority store implements, and the record format
of one stored AUM (docs/format.md §3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from verifier import cbor
from verifier.aum import AUM
from verifier.fields import Frozen
from verifier.hashes import AUMHash

_RECORD_FIELDS = {1: "Children", 2: "AUM", 3: "CreatedUnix", 4: "PurgedUnix"}


_set = object.__setattr__


class StoredRecord(Frozen):
    """One AUM as kept on disk. Key 1 (legacy children) is read past and never written."""

    __match_args__ = ("aum", "created_unix", "purged_unix")
    __slots__ = __match_args__
    aum: AUM | None
    created_unix: int
    purged_unix: int

    def __init__(self, aum: AUM | None, created_unix: int = 0, purged_unix: int = 0) -> None:
        _set(self, "aum", aum)
        _set(self, "created_unix", created_unix)
        _set(self, "purged_unix", purged_unix)

    def to_cbor(self) -> bytes:
        entries = [(2, cbor.NULL if self.aum is None else self.aum.to_cbor())]
        if self.created_unix:
            entries.append((3, cbor.enc_int(self.created_unix)))
        if self.purged_unix:
            entries.append((4, cbor.enc_int(self.purged_unix)))
        return cbor.enc_struct(entries)

    @classmethod
    def from_cbor_stream(cls, data: bytes, what: str) -> StoredRecord:
        """The reference reads records with a streaming decoder: trailing bytes are ignored."""
        value, _used = cbor.decode_stream(data)
        fields = cbor.struct_fields(value, _RECORD_FIELDS, what)
        if fields is None:
            return cls(aum=None)
        aum_value = fields.get(2)
        return cls(
            aum=(
                None
                if aum_value is None or cbor.is_nil(aum_value)
                else AUM.from_model(aum_value, f"{what}.AUM")
            ),
            created_unix=cbor.field_int64(fields.get(3), f"{what}.CreatedUnix"),
            purged_unix=cbor.field_int64(fields.get(4), f"{what}.PurgedUnix"),
        )


class Storage(Protocol):
    """An authority's AUM store ("Chonk"). Only verified AUMs are committed; readers trust it."""

    def aum(self, h: bytes) -> AUM | None:
        """The stored AUM with this hash, or None ("not exist")."""
        ...

    def child_aums(self, h: bytes) -> list[AUM]: ...

    def commit_verified_aums(self, aums: Iterable[AUM]) -> None: ...

    def heads(self) -> list[AUM]: ...

    def last_active_ancestor(self) -> AUMHash | None: ...

    def set_last_active_ancestor(self, h: bytes) -> None: ...

    def all_aums(self) -> list[AUMHash]: ...

    def commit_time(self, h: bytes) -> float | None: ...

    def purge_aums(self, hashes: Iterable[bytes]) -> None: ...

    def remove_all(self) -> None: ...
