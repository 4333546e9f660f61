"""Retroactive key revocation (docs/format.md §9): where to fork, the recovery checkpoint, cosigning
and the upper-case hex blobs passed between operators."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.errors import DecodeError, TKAError, ValidationError
from verifier.hashes import AUMHash
from verifier.key import Signature
from verifier.machine import verify_aum, weight
from verifier.storage import MemoryStorage
from verifier.validate import static_validate


def fork_point(authority: Authority, revoke: list[bytes], our_key_id: bytes) -> AUMHash:
    """docs/format.md §9: the newest AUM at which none of `revoke` is trusted and we are."""
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
    """docs/format.md §9: the unsigned checkpoint of the head state without the revoked keys."""
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
    """docs/format.md §9: refuse a second signature by the same key; existing ones are not
    checked."""
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


@dataclass(frozen=True)
class RecoveryTally:
    """What finishing a recovery would do to an authority, worked out on a copy of it."""

    parent: AUMHash
    votes: int  # of the distinct keys that signed it, counted where it forks
    signers: tuple[bytes, ...]  # their key IDs, in signature order, each once
    competitor: AUM | None  # the active chain's AUM after the fork point, if any
    competitor_votes: int
    discarded: tuple[AUM, ...]  # what the active chain loses if the recovery wins
    wins: bool  # fork choice would make the recovery part of the active chain
    revoked: tuple[bytes, ...]  # keys trusted now that the recovery no longer trusts


def recovery_tally(authority: Authority, aum: AUM) -> RecoveryTally:
    """The votes a recovery AUM carries, what it discards, and whether it wins fork choice
    against the current head: the recovery is informed into an in-memory copy of the authority,
    exactly as a node informed of it would, and the copy's new head is looked at."""
    if aum.kind != MessageKind.CHECKPOINT or aum.state is None or aum.parent is None:
        raise ValidationError(f"not a recovery AUM: a {aum.kind_name} message")
    parent = aum.parent
    if authority.storage.aum(parent) is None:
        raise ValidationError(
            f"the recovery forks from {parent}, which this authority does not hold: it was made "
            "for another tailnet's authority, or for AUMs compacted away here"
        )
    at_parent = authority.state_at(parent)
    try:
        verify_aum(at_parent, aum)
    except TKAError as err:
        raise ValidationError(f"recovery AUM does not verify: {err}") from None
    signers: list[bytes] = []
    for sig in aum.signatures:
        if sig.key_id and sig.key_id not in signers and at_parent.get_key(sig.key_id):
            signers.append(sig.key_id)
    active = _active_after(authority, parent)
    competitor = active[0] if active else None
    copy = _memory_copy(authority)
    if copy.storage.aum(aum.hash()) is None:
        copy.inform([aum])
    wins = copy.storage.aum(aum.hash()) is not None and _descends(copy, aum.hash())
    kept = {k.public for k in aum.state.trusted_keys}
    return RecoveryTally(
        parent=parent,
        votes=weight(at_parent, aum),
        signers=tuple(signers),
        competitor=competitor,
        competitor_votes=weight(at_parent, competitor) if competitor is not None else 0,
        discarded=tuple(active) if wins else (),
        wins=wins,
        revoked=tuple(k.public or b"" for k in authority.keys() if k.public not in kept),
    )


def _active_after(authority: Authority, parent: bytes) -> list[AUM]:
    """The active chain's AUMs after `parent`, oldest first ([] if `parent` is the head or not
    on the active chain)."""
    chain: list[AUM] = []
    cursor: AUM | None = authority.head_aum
    while cursor is not None and bytes(cursor.hash()) != bytes(parent):
        chain.append(cursor)
        cursor = authority.storage.aum(cursor.parent) if cursor.parent is not None else None
    return list(reversed(chain)) if cursor is not None else []


def _descends(authority: Authority, h: bytes) -> bool:
    cursor: AUM | None = authority.head_aum
    while cursor is not None:
        if bytes(cursor.hash()) == bytes(h):
            return True
        cursor = authority.storage.aum(cursor.parent) if cursor.parent is not None else None
    return False


def _memory_copy(authority: Authority) -> Authority:
    storage = MemoryStorage()
    storage.commit_verified_aums(
        aum for h in authority.storage.all_aums() if (aum := authority.storage.aum(h)) is not None
    )
    hint = authority.storage.last_active_ancestor()
    if hint is not None:
        storage.set_last_active_ancestor(hint)
    return Authority.open(storage)
