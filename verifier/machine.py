"""The state machine (spec §6): verifying an AUM against the state at its parent, applying a
verified AUM, and the weight used by fork choice."""

from __future__ import annotations

import dataclasses

from verifier import ed25519
from verifier.aum import AUM, MessageKind, message_kind_name
from verifier.errors import SignatureError, ValidationError
from verifier.hashes import AUMHash
from verifier.key import Key
from verifier.state import State
from verifier.textforms import format_aum_hash
from verifier.validate import static_validate


def _text(h: bytes | None) -> str:
    return format_aum_hash(h) if h is not None and len(h) == 32 else repr(h)


def verify_aum(state: State, aum: AUM, *, genesis: bool = False) -> None:
    """aumVerify (§6.3). `state` is the state at the AUM's parent; for a genesis AUM it is the
    AUM's own checkpoint state. Raises ValidationError or SignatureError."""
    try:
        static_validate(aum)
    except ValidationError as err:
        raise ValidationError(f"invalid: {err}") from None
    if not genesis:
        if aum.prev_aum_hash is None:
            raise ValidationError("aum has no parent")
        if state.last_aum_hash is None:
            raise ValidationError(
                "cannot check update parent hash against a state with no previous AUM"
            )
        if state.last_aum_hash != aum.prev_aum_hash:
            raise ValidationError(
                f"aum with parent {_text(aum.prev_aum_hash)} cannot be applied to a state "
                f"with parent {_text(state.last_aum_hash)}"
            )
    if not aum.signatures:
        raise SignatureError("unsigned AUM")
    digest = aum.sig_hash()
    for i, sig in enumerate(aum.signatures):
        key = state.get_key(sig.key_id or b"")
        if key is None:
            raise SignatureError(f"bad keyID on signature {i}: key not found")
        if not ed25519.verify(key.public or b"", digest, sig.signature or b"", "zip215"):
            raise SignatureError(f"signature {i}: invalid signature")
    if (
        aum.kind == MessageKind.REMOVE_KEY
        and len(state.trusted_keys) == 1
        and state.trusted_keys[0].public == aum.key_id
    ):
        raise ValidationError("cannot remove the last key in the state")


def apply_verified(state: State, aum: AUM) -> State:
    """applyVerifiedAUM (§6.1, §6.2): the state after `aum`, which must already be verified."""
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
        return dataclasses.replace(cp, last_aum_hash=new_hash)
    if kind == MessageKind.ADD_KEY:
        if aum.key is None:
            raise ValidationError("AddKey AUMs must contain a key")
        if state.get_key(aum.key.public or b"") is not None:
            raise ValidationError("key already exists")
        return dataclasses.replace(state, keys=(*keys, aum.key), last_aum_hash=new_hash)
    if kind == MessageKind.UPDATE_KEY:
        index = _key_index(keys, aum.key_id)
        key = keys[index]
        if aum.votes is not None:
            key = dataclasses.replace(key, votes=aum.votes)
        if aum.meta is not None:
            key = dataclasses.replace(key, meta=dict(aum.meta))
        try:
            key.validate()
        except ValidationError as err:
            raise ValidationError(f"updated key fails validation: {err}") from None
        keys[index] = key
        return dataclasses.replace(state, keys=tuple(keys), last_aum_hash=new_hash)
    if kind == MessageKind.REMOVE_KEY:
        del keys[_key_index(keys, aum.key_id)]
        return dataclasses.replace(state, keys=tuple(keys), last_aum_hash=new_hash)
    # NoOp and unknown future kinds only move the head.
    return dataclasses.replace(state, last_aum_hash=new_hash)


def _key_index(keys: list[Key], key_id: bytes | None) -> int:
    for i, key in enumerate(keys):
        if key.public is not None and key.public == key_id:
            return i
    raise ValidationError("key not found")


def genesis_state(aum: AUM) -> State:
    """The state a parentless AUM starts from (§6.7)."""
    if aum.kind == MessageKind.CHECKPOINT and aum.state is not None:
        return dataclasses.replace(aum.state, last_aum_hash=bytes(aum.hash()))
    if aum.kind in (MessageKind.NO_OP, MessageKind.ADD_KEY):
        return apply_verified(State(), aum)
    raise ValidationError(f"invalid genesis update: {message_kind_name(aum.kind)}")


def weight(state: State, aum: AUM) -> int:
    """Sum of votes of the distinct trusted keys that signed `aum` (§6.4)."""
    seen: set[bytes] = set()
    total = 0
    for sig in aum.signatures:
        kid = sig.key_id or b""
        if kid in seen:
            continue
        seen.add(kid)
        key = state.get_key(kid)
        if key is not None:
            total += key.votes
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
