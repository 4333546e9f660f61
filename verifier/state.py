"""The authority's state (docs/format.md §3, §6): trusted keys, disablement values, state IDs.

Only checkpoint AUMs serialize a State. The order of `keys` and `disablement_values` is part of
the bytes of every later checkpoint, so every transition preserves it (see `verifier.machine`).
"""

from __future__ import annotations

from verifier import cbor
from verifier.errors import KeyNotFoundError, UnknownKeyKindError
from verifier.fields import Frozen
from verifier.key import Key, KeyKind, key_kind_name

_STATE_FIELDS = {
    1: "LastAUMHash",
    2: "DisablementValues",
    3: "Keys",
    4: "StateID1",
    5: "StateID2",
}


_set = object.__setattr__


class State(Frozen):
    """`None` fields are null on the wire (absent); empty tuples are present-but-empty."""

    __match_args__ = ("last_aum_hash", "disablement_values", "keys", "state_id1", "state_id2")
    __slots__ = __match_args__
    last_aum_hash: bytes | None
    disablement_values: tuple[bytes, ...] | None
    keys: tuple[Key, ...] | None
    state_id1: int
    state_id2: int

    def __init__(
        self,
        last_aum_hash: bytes | None = None,
        disablement_values: tuple[bytes, ...] | None = None,
        keys: tuple[Key, ...] | None = None,
        state_id1: int = 0,
        state_id2: int = 0,
    ) -> None:
        _set(self, "last_aum_hash", last_aum_hash)
        _set(self, "disablement_values",
             None if disablement_values is None else tuple(disablement_values))
        _set(self, "keys", None if keys is None else tuple(keys))
        _set(self, "state_id1", state_id1)
        _set(self, "state_id2", state_id2)

    @property
    def trusted_keys(self) -> tuple[Key, ...]:
        return self.keys or ()

    def find_key(self, key_id: bytes) -> Key:
        """The reference's GetKey (docs/format.md §6) exactly: a linear scan by exact KeyID bytes
        that stops with `UnknownKeyKindError` at the first key whose kind has no KeyID (anything but
        Ed25519), even if a later key would match; `KeyNotFoundError` when none matches."""
        for key in self.trusted_keys:
            if key.kind != KeyKind.ED25519:
                raise UnknownKeyKindError(f"unknown key kind: {key_kind_name(key.kind)}")
            if (key.public or b"") == key_id:
                return key
        raise KeyNotFoundError("key not found")

    def get_key(self, key_id: bytes) -> Key | None:
        """The key when GetKey succeeds, else None: the reference's `err == nil` checks."""
        try:
            return self.find_key(key_id)
        except (KeyNotFoundError, UnknownKeyKindError):
            return None

    def state_id(self) -> str:
        """The deny-list form `StateID1:StateID2` (docs/format.md §6)."""
        return f"{self.state_id1}:{self.state_id2}"

    def to_cbor(self) -> bytes:
        entries = [
            (1, cbor.enc_opt_bytes(self.last_aum_hash)),
            (
                2,
                cbor.NULL
                if self.disablement_values is None
                else cbor.enc_array(cbor.enc_bytes(v) for v in self.disablement_values),
            ),
            (
                3,
                cbor.NULL
                if self.keys is None
                else cbor.enc_array(k.to_cbor() for k in self.keys),
            ),
        ]
        if self.state_id1:
            entries.append((4, cbor.enc_uint(self.state_id1)))
        if self.state_id2:
            entries.append((5, cbor.enc_uint(self.state_id2)))
        return cbor.enc_struct(entries)

    @classmethod
    def from_cbor(cls, data: bytes) -> State:
        return cls.from_model(cbor.decode(data), "State")

    @classmethod
    def from_model(cls, value: cbor.CValue, what: str) -> State:
        fields = cbor.struct_fields(value, _STATE_FIELDS, what)
        if fields is None:
            return cls()
        dis = cbor.field_array(fields.get(2), f"{what}.DisablementValues")
        keys = cbor.field_array(fields.get(3), f"{what}.Keys")
        disablement: tuple[bytes, ...] | None = None
        if dis is not None:
            disablement = tuple(
                cbor.field_bytes(v, f"{what}.DisablementValues[{i}]") or b""
                for i, v in enumerate(dis)
            )
        return cls(
            last_aum_hash=cbor.field_fixed(fields.get(1), 32, f"{what}.LastAUMHash"),
            disablement_values=disablement,
            keys=(
                None
                if keys is None
                else tuple(Key.from_model(k, f"{what}.Keys[{i}]") for i, k in enumerate(keys))
            ),
            state_id1=cbor.field_uint(fields.get(4), 64, f"{what}.StateID1"),
            state_id2=cbor.field_uint(fields.get(5), 64, f"{what}.StateID2"),
        )
