"""Compaction (docs/format.md §8): which old AUMs a node may forget, and where its history now
starts.

The decision keeps, in this order of reasoning: AUMs committed recently ("young"); the active
chain from the head back at least `min_chain` AUMs and then on to the nearest checkpoint old
enough to start from ("active"); everything descending from what is kept ("leaf"); and every AUM
linking a kept AUM back to the start of history ("ancestor"). Everything else is purged
(storage keeps purged files for safety, docs/format.md §8).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from verifier.aum import AUM, MessageKind
from verifier.errors import StorageError
from verifier.storage.base import Storage

MIN_CHAIN = 24
MIN_AGE_SECONDS = 14 * 24 * 3600


@dataclass
class _Marks:
    young: set[bytes] = field(default_factory=set)
    active: set[bytes] = field(default_factory=set)
    leaf: set[bytes] = field(default_factory=set)
    ancestor: set[bytes] = field(default_factory=set)
    candidate: set[bytes] = field(default_factory=set)  # older active-chain AUMs, deletable

    def kept(self, h: bytes) -> bool:
        return h in self.young or h in self.active or h in self.leaf or h in self.ancestor


def _load(storage: Storage, h: bytes, why: str) -> AUM:
    aum = storage.aum(h)
    if aum is None:
        raise StorageError(f"compaction: {why}: AUM {h.hex()} is not stored")
    return aum


def _mark_active_chain(storage: Storage, marks: _Marks, head: bytes, min_chain: int) -> bytes:
    """Returns the candidate start of history."""
    cursor = _load(storage, head, "reading the head")
    for _ in range(min_chain):
        h = bytes(cursor.hash())
        marks.active.add(h)
        if cursor.parent is None:
            return h  # genesis: the chain is too short to truncate
        parent = storage.aum(cursor.parent)
        if parent is None:
            return h  # history already ends here
        cursor = parent
    # At least `min_chain` AUMs are kept; go on to a checkpoint that is old enough (or genesis).
    while True:
        h = bytes(cursor.hash())
        marks.active.add(h)
        if cursor.kind == MessageKind.CHECKPOINT:
            start = h
            if h not in marks.young or cursor.parent is None:
                break
        if cursor.parent is None:
            raise StorageError("compaction: reached genesis without finding a checkpoint")
        cursor = _load(storage, cursor.parent, "searching for a checkpoint to start from")
    while cursor.parent is not None:
        marks.candidate.add(cursor.parent)
        parent = storage.aum(cursor.parent)
        if parent is None:
            break
        cursor = parent
    return start


def _mark_descendants(storage: Storage, marks: _Marks, stored: list[bytes]) -> None:
    frontier = [h for h in stored if marks.kept(h)]
    while frontier:
        h = frontier.pop()
        if h in marks.leaf:
            continue
        marks.leaf.add(h)
        frontier.extend(bytes(c.hash()) for c in storage.child_aums(h))


def _mark_links_to_start(
    storage: Storage, marks: _Marks, stored: list[bytes], start: bytes
) -> bytes:
    """Every kept AUM must reach `start` through kept AUMs; when one joins the active chain
    below `start`, history has to begin earlier."""
    moved = False
    frontier = [h for h in stored if marks.kept(h) and h != start]
    while frontier:
        next_frontier: list[bytes] = []
        for h in frontier:
            if h in marks.ancestor:
                continue
            marks.ancestor.add(h)
            parent = _load(storage, h, "walking to the start of history").parent
            if parent is None:
                raise StorageError("compaction: a kept AUM does not lead back to the start")
            if marks.kept(parent):
                continue
            if parent in marks.candidate:
                start, moved = parent, True
                marks.ancestor.add(parent)
                _keep_active_chain_from(storage, marks, parent)
            next_frontier.append(parent)
        frontier = next_frontier
    if moved:
        cursor = _load(storage, start, "searching for a checkpoint to start from")
        while True:
            marks.active.add(bytes(cursor.hash()))
            if cursor.kind == MessageKind.CHECKPOINT:
                return bytes(cursor.hash())
            if cursor.parent is None:
                raise StorageError("compaction: reached genesis without finding a checkpoint")
            cursor = _load(storage, cursor.parent, "searching for a checkpoint")
    return start


def _keep_active_chain_from(storage: Storage, marks: _Marks, h: bytes) -> None:
    """Keep the candidate AUMs between a new, older start and the old one."""
    cursor = h
    while True:
        step = next(
            (
                bytes(c.hash())
                for c in storage.child_aums(cursor)
                if bytes(c.hash()) in marks.candidate and bytes(c.hash()) not in marks.active
            ),
            None,
        )
        if step is None:
            return
        marks.ancestor.add(step)
        cursor = step


def compact(
    storage: Storage,
    head: bytes,
    min_chain: int = MIN_CHAIN,
    min_age_seconds: float = MIN_AGE_SECONDS,
    now: float | None = None,
) -> bytes:
    """Purge what is no longer needed; returns (and persists) the new start of history."""
    if min_chain <= 0 or min_age_seconds <= 0:
        raise ValueError("compaction needs a positive min_chain and min_age")
    stored = [bytes(h) for h in storage.all_aums()]
    marks = _Marks()
    cutoff = (time.time() if now is None else now) - min_age_seconds
    for h in stored:
        committed = storage.commit_time(h)
        if committed is not None and committed > cutoff:
            marks.young.add(h)
    start = _mark_active_chain(storage, marks, bytes(head), min_chain)
    _mark_descendants(storage, marks, stored)
    start = _mark_links_to_start(storage, marks, stored, start)
    storage.set_last_active_ancestor(start)
    storage.purge_aums([h for h in stored if not marks.kept(h)])
    return start
