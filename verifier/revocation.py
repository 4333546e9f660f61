"""Retroactive key revocation (spec §10): where to fork, the recovery checkpoint, cosigning and
the upper-case hex blobs passed between operators."""

from __future__ import annotations

import binascii

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.errors import DecodeError, ValidationError
from verifier.hashes import AUMHash
from verifier.key import Signature
from verifier.validate import static_validate


def fork_point(authority: Authority, revoke: list[bytes], our_key_id: bytes) -> AUMHash:
    """§10.1: the newest AUM at which none of `revoke` is trusted and we are."""
    if not any(authority.key_trusted(k) for k in revoke):
        raise ValidationError("no provided key is currently trusted")
    oldest = authority.oldest_ancestor.hash()
    cursor = authority.head_aum
    while True:
        h = cursor.hash()
        if h == oldest:
            return h
        state = authority.state_at(h)
        if not any(state.get_key(k) for k in revoke) and state.get_key(our_key_id):
            return h
        if cursor.parent is None:
            return h
        parent = authority.storage.aum(cursor.parent)
        if parent is None:
            return h
        cursor = parent


def recovery_aum(authority: Authority, revoke: list[bytes], parent: bytes) -> AUM:
    """§10.2: the unsigned checkpoint of the head state without the revoked keys."""
    keys = list(authority.state.trusted_keys)
    for key_id in revoke:
        for i, key in enumerate(keys):
            if key.public == key_id:
                del keys[i]
                break
    if not keys:
        raise ValidationError("cannot revoke all trusted keys")
    state = authority.state.replace(keys=tuple(keys), last_aum_hash=None)
    aum = AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=bytes(parent), state=state)
    static_validate(aum)
    return aum


def add_cosignature(aum: AUM, signature: Signature) -> AUM:
    """§10.3: refuse a second signature by the same key; existing ones are not checked."""
    if any(s.key_id == signature.key_id for s in aum.signatures):
        raise ValidationError("this node has already signed this recovery AUM")
    return aum.add_signature(signature)


def to_blob(aum: AUM) -> str:
    return aum.to_cbor().hex().upper()


def from_blob(text: str) -> AUM:
    try:
        raw = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError) as err:
        raise DecodeError(f"parsing hex: {err}") from None
    try:
        return AUM.from_cbor(raw)
    except DecodeError as err:
        raise DecodeError(f"decoding recovery AUM: {err}") from None
