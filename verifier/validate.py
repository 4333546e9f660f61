"""Static validation (docs/format.md §5): checks an AUM needs no state for, in the reference's order
and with its wording, so that our rejections read like `tailscale lock`'s."""

from __future__ import annotations

from collections.abc import Sequence

from verifier.aum import AUM, MessageKind
from verifier.errors import ValidationError
from verifier.key import Key
from verifier.state import State

MAX_DISABLEMENT_VALUES = 32
DISABLEMENT_LEN = 32
MAX_KEYS = 512


def validate_key(key: Key) -> None:
    """Key validity (docs/format.md §5)."""
    key.validate()


def validate_checkpoint_state(state: State) -> None:
    """Checkpoint state validation (docs/format.md §5)."""
    if state.last_aum_hash is not None:
        raise ValidationError("cannot specify a parent AUM")
    values = state.disablement_values or ()
    if not values:
        raise ValidationError("at least one disablement secret required")
    if len(values) > MAX_DISABLEMENT_VALUES:
        raise ValidationError(
            f"too many disablement values ({len(values)}, max {MAX_DISABLEMENT_VALUES})"
        )
    # The reference's order: each value's length, then its first duplicate anywhere in the
    # list (so "disablement[0]: duplicates disablement[4]"); every key's validity, then
    # duplicates the same way.
    positions = _positions(values)
    for i, value in enumerate(values):
        if len(value) != DISABLEMENT_LEN:
            raise ValidationError(
                f"disablement[{i}]: invalid length (got {len(value)}, want {DISABLEMENT_LEN})"
            )
        j = _first_other(positions[value], i)
        if j is not None:
            raise ValidationError(f"disablement[{i}]: duplicates disablement[{j}]")
    keys = state.trusted_keys
    if not keys:
        raise ValidationError("at least one key is required")
    if len(keys) > MAX_KEYS:
        raise ValidationError(f"too many keys ({len(keys)}, max {MAX_KEYS})")
    for i, key in enumerate(keys):
        try:
            key.validate()
        except ValidationError as err:
            raise ValidationError(f"key[{i}]: {err}") from None
    ids = [key.public or b"" for key in keys]
    positions = _positions(ids)
    for i, key_id in enumerate(ids):
        j = _first_other(positions[key_id], i)
        if j is not None:
            raise ValidationError(f"key[{i}]: duplicates key[{j}]")


def _positions(items: Sequence[bytes]) -> dict[bytes, list[int]]:
    out: dict[bytes, list[int]] = {}
    for i, item in enumerate(items):
        out.setdefault(item, []).append(i)
    return out


def _first_other(positions: list[int], i: int) -> int | None:
    """The first index other than i holding the same value: the j of the reference's
    all-pairs scan, without its quadratic cost."""
    for j in positions:
        if j != i:
            return j
    return None


def static_validate(aum: AUM) -> None:
    """AUM static validation (docs/format.md §5)."""
    if aum.key is not None:
        aum.key.validate()
    if aum.prev_aum_hash is not None and len(aum.prev_aum_hash) == 0:
        raise ValidationError("absent parent must be represented by a nil slice")
    for i, sig in enumerate(aum.signatures):
        if len(sig.key_id or b"") != 32 or len(sig.signature or b"") != 64:
            raise ValidationError(f"signature {i} has missing keyID or malformed signature")
    if aum.state is not None:
        try:
            validate_checkpoint_state(aum.state)
        except ValidationError as err:
            raise ValidationError(f"checkpoint state: {err}") from None
    kind = aum.kind
    if kind == MessageKind.ADD_KEY:
        if aum.key is None:
            raise ValidationError("AddKey AUMs must contain a key")
        if aum.key_id is not None or aum.state is not None or aum.votes is not None or (
            aum.meta is not None
        ):
            raise ValidationError("AddKey AUMs may only specify a Key")
    elif kind == MessageKind.REMOVE_KEY:
        if not aum.key_id:
            raise ValidationError("RemoveKey AUMs must specify a key ID")
        if aum.key is not None or aum.state is not None or aum.votes is not None or (
            aum.meta is not None
        ):
            raise ValidationError("RemoveKey AUMs may only specify a KeyID")
    elif kind == MessageKind.UPDATE_KEY:
        if not aum.key_id:
            raise ValidationError("UpdateKey AUMs must specify a key ID")
        if aum.meta is None and aum.votes is None:
            raise ValidationError("UpdateKey AUMs must contain an update to votes or key metadata")
        if aum.key is not None or aum.state is not None:
            raise ValidationError("UpdateKey AUMs may only specify KeyID, Votes, and Meta")
    elif kind == MessageKind.CHECKPOINT:
        if aum.state is None:
            raise ValidationError("Checkpoint AUMs must specify the state")
        if aum.key_id is not None or aum.key is not None or aum.votes is not None or (
            aum.meta is not None
        ):
            raise ValidationError("Checkpoint AUMs may only specify State")
