"""Synchronisation between two holders of an authority (docs/format.md §8): offers, their
intersection, and the AUMs the other side is missing."""

from __future__ import annotations

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.chain import fast_forward, state_at
from verifier.errors import DecodeError, StorageError, SyncError
from verifier.fields import Frozen
from verifier.hashes import AUMHash

MAX_HEAD_INTERSECTION_ITER = 1000
MAX_SYNC_ITER = 2000
LEGACY_OFFER_LIMIT = 400


_set = object.__setattr__


class SyncOffer(Frozen):
    __match_args__ = ("head", "ancestors")
    __slots__ = __match_args__
    head: AUMHash
    ancestors: tuple[AUMHash, ...]

    def __init__(self, head: AUMHash, ancestors: tuple[AUMHash, ...]) -> None:
        _set(self, "head", head)
        _set(self, "ancestors", ancestors)

    def to_text(self) -> tuple[str, list[str]]:
        return str(self.head), [str(a) for a in self.ancestors]

    @classmethod
    def from_text(cls, head: str, ancestors: list[str]) -> SyncOffer:
        try:
            h = AUMHash.from_text(head)
        except DecodeError as err:
            raise DecodeError(f"head.UnmarshalText: {err}") from None
        parsed = []
        for i, text in enumerate(ancestors):
            try:
                parsed.append(AUMHash.from_text(text))
            except DecodeError as err:
                raise DecodeError(f"ancestor[{i}].UnmarshalText: {err}") from None
        return cls(h, tuple(parsed))


def sync_offer(authority: Authority) -> SyncOffer:
    """The current offer: checkpoints in the last 1000 AUMs, newest first, then the oldest
    ancestor."""
    oldest = authority.oldest_ancestor.hash()
    ancestors: list[AUMHash] = []
    cursor: AUM | None = authority.head_aum
    for _ in range(MAX_HEAD_INTERSECTION_ITER):
        if cursor is None:
            break
        h = cursor.hash()
        if h == oldest:
            break
        if cursor.kind == MessageKind.CHECKPOINT:
            ancestors.append(h)
        if cursor.parent is None:
            break
        cursor = authority.storage.aum(cursor.parent)
    ancestors.append(oldest)
    return SyncOffer(authority.head, tuple(ancestors))


def legacy_sync_offer(authority: Authority) -> SyncOffer:
    """What peers before 2026-04-17 sent: ancestors 4, 16, 64, 256 hops back, then the oldest."""
    oldest = authority.oldest_ancestor.hash()
    ancestors: list[AUMHash] = []
    cursor = authority.head
    skip = 4
    for i in range(LEGACY_OFFER_LIMIT):
        if i > 0 and i % skip == 0:
            ancestors.append(cursor)
            skip *= 4
        aum = authority.storage.aum(cursor)
        if aum is None or cursor == oldest or aum.parent is None:
            break
        cursor = aum.parent
    ancestors.append(oldest)
    return SyncOffer(authority.head, tuple(ancestors))


def _intersection(authority: Authority, remote: SyncOffer) -> AUMHash | None:
    """None when up to date; otherwise the hash after which the remote lacks our AUMs."""
    local_head = authority.head
    if remote.head == local_head:
        return None
    storage = authority.storage
    if storage.aum(remote.head) is not None:
        cursor: bytes | None = bytes(local_head)
        for _ in range(MAX_HEAD_INTERSECTION_ITER):
            if cursor is None:
                break
            if cursor == bytes(remote.head):
                return remote.head
            aum = storage.aum(cursor)
            if aum is None:
                break
            cursor = aum.parent
    for ancestor in remote.ancestors:
        if storage.aum(ancestor) is None:
            continue
        state = state_at(storage, ancestor)
        end, _ = fast_forward(
            storage, state, done=lambda aum, _s: aum.hash() == local_head, limit=MAX_SYNC_ITER
        )
        if end.hash() == local_head:
            return ancestor
    raise SyncError("no intersection")


def missing_aums(authority: Authority, remote: SyncOffer) -> list[AUM]:
    """AUMs after the intersection along our preferred branch, oldest first."""
    start = _intersection(authority, remote)
    if start is None:
        return []
    storage = authority.storage
    out: list[AUM] = []

    def collect(aum: AUM, _state: object) -> bool:
        if aum.hash() != start:
            out.append(aum)
        return False

    try:
        fast_forward(storage, state_at(storage, start), done=collect, limit=MAX_SYNC_ITER)
    except StorageError as err:
        raise SyncError(f"computing missing AUMs: {err}") from None
    return out
