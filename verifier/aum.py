"""Authority Update Messages (docs/format.md §3, §4): the signed unit of change in the authority's
log.

The model keeps "absent" apart from "present but empty" wherever validation looks at the
difference (docs/format.md §5): `prev_aum_hash`, `key_id` and `meta` are None when absent. Hashes
are always computed over the canonical re-encoding of the model (docs/format.md §2), never over
received bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum

from verifier import cbor
from verifier.fields import Frozen
from verifier.hashes import AUMHash, aum_hash_of, blake2s256
from verifier.key import Key, Signature
from verifier.state import State

_AUM_FIELDS = {
    1: "MessageKind",
    2: "PrevAUMHash",
    3: "Key",
    4: "KeyID",
    5: "State",
    6: "Votes",
    7: "Meta",
    23: "Signatures",
}


class MessageKind(IntEnum):
    INVALID = 0
    ADD_KEY = 1
    REMOVE_KEY = 2
    NO_OP = 3
    UPDATE_KEY = 4
    CHECKPOINT = 5


_KIND_NAMES = {
    MessageKind.INVALID: "invalid",
    MessageKind.ADD_KEY: "add-key",
    MessageKind.REMOVE_KEY: "remove-key",
    MessageKind.NO_OP: "no-op",
    MessageKind.UPDATE_KEY: "update-key",
    MessageKind.CHECKPOINT: "checkpoint",
}


def message_kind_name(kind: int) -> str:
    """The reference's String() of a message kind; unknown kinds print as `AUM?<N>`."""
    for known, name in _KIND_NAMES.items():
        if kind == known:
            return name
    return f"AUM?<{kind}>"


_set = object.__setattr__


class AUM(Frozen):
    __match_args__ = (
        "kind", "prev_aum_hash", "key", "key_id", "state", "votes", "meta", "signatures"
    )
    __slots__ = __match_args__
    kind: int
    prev_aum_hash: bytes | None
    key: Key | None
    key_id: bytes | None
    state: State | None
    votes: int | None
    meta: Mapping[str, str] | None
    signatures: tuple[Signature, ...]

    def __init__(
        self,
        kind: int,
        prev_aum_hash: bytes | None = None,
        key: Key | None = None,
        key_id: bytes | None = None,
        state: State | None = None,
        votes: int | None = None,
        meta: Mapping[str, str] | None = None,
        signatures: tuple[Signature, ...] = (),
    ) -> None:
        _set(self, "kind", kind)
        _set(self, "prev_aum_hash", prev_aum_hash)
        _set(self, "key", key)
        _set(self, "key_id", key_id)
        _set(self, "state", state)
        _set(self, "votes", votes)
        _set(self, "meta", None if meta is None else dict(meta))
        _set(self, "signatures", tuple(signatures))

    def __hash__(self) -> int:
        # meta is a dict: not hashed
        return hash((self.kind, self.prev_aum_hash, self.key, self.key_id, self.state,
                     self.votes, self.signatures))

    @property
    def parent(self) -> AUMHash | None:
        """The parent as the reference's `Parent()` reads it, which every walk through storage
        uses: None when PrevAUMHash is absent or empty, else its bytes left-aligned in 32
        (shorter ones zero-padded, longer ones cut). Only applying an AUM compares the raw
        bytes (`parent AUMHash mismatch`)."""
        if not self.prev_aum_hash:
            return None
        return AUMHash(self.prev_aum_hash[:32].ljust(32, b"\0"))

    @property
    def kind_name(self) -> str:
        return message_kind_name(self.kind)

    def _encode(self, with_signatures: bool) -> bytes:
        entries = [
            (1, cbor.enc_uint(self.kind)),
            (2, cbor.enc_opt_bytes(self.prev_aum_hash)),
        ]
        if self.key is not None:
            entries.append((3, self.key.to_cbor()))
        if self.key_id:
            entries.append((4, cbor.enc_bytes(self.key_id)))
        if self.state is not None:
            entries.append((5, self.state.to_cbor()))
        if self.votes is not None:
            entries.append((6, cbor.enc_uint(self.votes)))
        if self.meta:
            entries.append((7, cbor.enc_text_map(self.meta)))
        if with_signatures and self.signatures:
            entries.append((23, cbor.enc_array(s.to_cbor() for s in self.signatures)))
        return cbor.enc_struct(entries)

    def to_cbor(self) -> bytes:
        return self._encode(with_signatures=True)

    def hash(self) -> AUMHash:
        """BLAKE2s-256 of the canonical encoding, signatures included (docs/format.md §4)."""
        return aum_hash_of(self.to_cbor())

    def sig_hash(self) -> bytes:
        """The digest every signature covers: the encoding without Signatures (docs/format.md
        §4)."""
        return blake2s256(self._encode(with_signatures=False))

    def with_signatures(self, signatures: Iterable[Signature]) -> AUM:
        return self.replace(signatures=tuple(signatures))

    def add_signature(self, signature: Signature) -> AUM:
        return self.replace(signatures=(*self.signatures, signature))

    @classmethod
    def from_cbor(cls, data: bytes) -> AUM:
        return cls.from_model(cbor.decode(data), "AUM")

    @classmethod
    def from_model(cls, value: cbor.CValue, what: str) -> AUM:
        fields = cbor.struct_fields(value, _AUM_FIELDS, what)
        if fields is None:
            return cls(kind=0)
        key_value = fields.get(3)
        state_value = fields.get(5)
        sig_values = cbor.field_array(fields.get(23), f"{what}.Signatures") or ()
        return cls(
            kind=cbor.field_uint(fields.get(1), 8, f"{what}.MessageKind"),
            prev_aum_hash=cbor.field_bytes(fields.get(2), f"{what}.PrevAUMHash"),
            key=(
                None
                if key_value is None or cbor.is_nil(key_value)
                else Key.from_model(key_value, f"{what}.Key")
            ),
            key_id=cbor.field_bytes(fields.get(4), f"{what}.KeyID"),
            state=(
                None
                if state_value is None or cbor.is_nil(state_value)
                else State.from_model(state_value, f"{what}.State")
            ),
            votes=cbor.field_opt_uint(fields.get(6), 64, f"{what}.Votes"),
            meta=cbor.field_text_map(fields.get(7), f"{what}.Meta"),
            signatures=tuple(
                Signature.from_model(v, f"{what}.Signatures[{i}]")
                for i, v in enumerate(sig_values)
            ),
        )
