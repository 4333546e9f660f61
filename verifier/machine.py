"""The state machine (docs/format.md §6): verifying an AUM against the state at its parent, applying
a verified AUM, and the weight used by fork choice."""

from __future__ import annotations

from verifier import ed25519
from verifier.aum import AUM, MessageKind, message_kind_name
from verifier.errors import (
    KeyNotFoundError,
    NotTrustedError,
    SignatureError,
    UnknownKeyKindError,
    ValidationError,
)
from verifier.hashes import AUMHash
from verifier.key import Key, KeyKind, key_kind_name
from verifier.state import State
from verifier.textforms import format_aum_hash
from verifier.validate import static_validate


def _go_hex_text(h: bytes) -> str:
    return format_aum_hash(h[:32].ljust(32, b"\0")).encode().hex()


def verify_aum(state: State, aum: AUM, *, genesis: bool = False) -> None:
    """aumVerify (docs/format.md §6). `state` is the state at the AUM's parent; for a genesis AUM it
    is the AUM's own checkpoint state. Raises ValidationError or SignatureError."""
    try:
        static_validate(aum)
    except ValidationError as err:
        raise ValidationError(f"invalid: {err}") from None
    if not genesis:
        parent = aum.parent
        if parent is None:
            raise ValidationError("aum has no parent")
        if state.last_aum_hash is None:
            raise ValidationError(
                "cannot check update parent hash against a state with no previous AUM"
            )
        if state.last_aum_hash != parent:
            # The reference formats both hashes with %x, which hex-encodes their base32 text,
            # and names the state's hash first.
            raise ValidationError(
                f"aum with parent {_go_hex_text(state.last_aum_hash)} cannot be applied to a "
                f"state with parent {_go_hex_text(parent)}"
            )
    if not aum.signatures:
        raise SignatureError("unsigned AUM")
    digest = aum.sig_hash()
    for i, sig in enumerate(aum.signatures):
        try:
            key = state.find_key(sig.key_id or b"")
        except NotTrustedError as err:
            raise SignatureError(f"bad keyID on signature {i}: {err}") from None
        if not ed25519.verify(key.public or b"", digest, sig.signature or b"", "zip215"):
            raise SignatureError(f"signature {i}: invalid signature")
    if (
        aum.kind == MessageKind.REMOVE_KEY
        and len(state.trusted_keys) == 1
        and state.trusted_keys[0].kind == KeyKind.ED25519
        and (state.trusted_keys[0].public or b"") == aum.key_id
    ):
        raise ValidationError("cannot remove the last key in the state")


def apply_verified(state: State, aum: AUM) -> State:
    """applyVerifiedAUM (docs/format.md §6): the state after `aum`, which must already be
    verified."""
    if state.last_aum_hash is not None and state.last_aum_hash != aum.prev_aum_hash:
        raise ValidationError("parent AUMHash mismatch")
    new_hash = bytes(aum.hash())
    keys = list(state.trusted_keys)
    kind = aum.kind
    if kind == MessageKind.CHECKPOINT:
        cp = aum.state
        if cp is None:
            raise ValidationError("Checkpoint AUMs must specify the state")
        if cp.state_id1 != state.state_id1 or cp.state_id2 != state.state_id2:
            raise ValidationError("checkpointed state has an incorrect stateID")
        return cp.replace(last_aum_hash=new_hash)
    if kind == MessageKind.ADD_KEY:
        if aum.key is None:
            raise ValidationError("AddKey AUMs must contain a key")
        if state.get_key(aum.key.public or b"") is not None:
            raise ValidationError("key already exists")
        return state.replace(keys=(*keys, aum.key), last_aum_hash=new_hash)
    if kind == MessageKind.UPDATE_KEY:
        key_id = aum.key_id or b""
        key = _lookup(state, key_id)
        if aum.votes is not None:
            key = key.replace(votes=aum.votes)
        if aum.meta is not None:
            key = key.replace(meta=dict(aum.meta))
        try:
            key.validate()
        except ValidationError as err:
            raise ValidationError(f"updated key fails validation: {err}") from None
        # The reference rewrites every key with that ID, and fails at a key of unknown kind
        # anywhere in the list.
        for i, old in enumerate(keys):
            _require_key_id(old)
            if (old.public or b"") == key_id:
                keys[i] = key
        return state.replace(keys=tuple(keys), last_aum_hash=new_hash)
    if kind == MessageKind.REMOVE_KEY:
        del keys[keys.index(_lookup(state, aum.key_id or b""))]
        return state.replace(keys=tuple(keys), last_aum_hash=new_hash)
    # NoOp and unknown future kinds only move the head.
    return state.replace(last_aum_hash=new_hash)


def _lookup(state: State, key_id: bytes) -> Key:
    try:
        return state.find_key(key_id)
    except NotTrustedError as err:
        raise ValidationError(str(err)) from None


def _require_key_id(key: Key) -> None:
    if key.kind != KeyKind.ED25519:
        raise ValidationError(f"unknown key kind: {key_kind_name(key.kind)}")


def genesis_state(aum: AUM) -> State:
    """The state a parentless AUM starts from (docs/format.md §6)."""
    if aum.kind == MessageKind.CHECKPOINT and aum.state is not None:
        return aum.state.replace(last_aum_hash=bytes(aum.hash()))
    if aum.kind in (MessageKind.NO_OP, MessageKind.ADD_KEY):
        return apply_verified(State(), aum)
    raise ValidationError(f"invalid genesis update: {message_kind_name(aum.kind)}")


def weight(state: State, aum: AUM) -> int:
    """Sum of votes of the distinct trusted keys that signed `aum` (docs/format.md §6)."""
    seen: set[bytes] = set()
    total = 0
    for sig in aum.signatures:
        kid = sig.key_id or b""
        if kid in seen:
            continue
        seen.add(kid)
        try:
            total += state.find_key(kid).votes
        except KeyNotFoundError:
            continue  # signatures by unknown keys weigh nothing
        except UnknownKeyKindError as err:
            # The reference panics here; we refuse the chain instead.
            raise ValidationError(f"weighing an AUM: {err}") from None
    return total


def state_after(state: State, aum: AUM) -> State:
    """Verify then apply: the only way the authority advances."""
    verify_aum(state, aum)
    return apply_verified(state, aum)


__all__ = [
    "AUMHash",
    "apply_verified",
    "genesis_state",
    "state_after",
    "verify_aum",
    "weight",
]
