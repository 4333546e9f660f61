"""Walking the AUM graph (docs/format.md §8): fork choice among siblings, fast-forward from a
state to the preferred head, and the state at any stored hash."""

from __future__ import annotations

import functools
from collections.abc import Callable

from verifier.aum import AUM, MessageKind
from verifier.errors import StorageError, ValidationError
from verifier.machine import apply_verified, genesis_state, weight
from verifier.state import State
from verifier.storage.base import Storage
from verifier.textforms import format_aum_hash

MAX_SCAN_ITERATIONS = 2000


def _compare(state: State, a: AUM, b: AUM) -> int:
    wa, wb = weight(state, a), weight(state, b)
    if wa != wb:
        return -1 if wa > wb else 1
    if a.kind != b.kind:
        if a.kind == MessageKind.REMOVE_KEY:
            return -1
        if b.kind == MessageKind.REMOVE_KEY:
            return 1
    ha, hb = bytes(a.hash()), bytes(b.hash())
    return -1 if ha < hb else (1 if ha > hb else 0)


def pick_next(state: State, candidates: list[AUM]) -> AUM:
    """Fork resolution (docs/format.md §8): highest weight at the parent, RemoveKey precedence,
    lowest hash."""
    if not candidates:
        raise ValueError("pick_next needs at least one candidate")

    def order(a: AUM, b: AUM) -> int:
        return _compare(state, a, b)

    return sorted(candidates, key=functools.cmp_to_key(order))[0]


def fast_forward(
    storage: Storage,
    state: State,
    done: Callable[[AUM, State], bool] | None = None,
    limit: int = MAX_SCAN_ITERATIONS,
) -> tuple[AUM, State]:
    """Follow fork resolution from the AUM at `state.last_aum_hash` to the head (docs/format.md
    §8)."""
    if state.last_aum_hash is None:
        raise ValidationError("invalid initial state")
    current = storage.aum(state.last_aum_hash)
    if current is None:
        raise StorageError(
            f"fast-forward: AUM {format_aum_hash(state.last_aum_hash)} is not stored"
        )
    for _ in range(limit):
        if done is not None and done(current, state):
            return current, state
        children = storage.child_aums(current.hash())
        if not children:
            return current, state
        current = pick_next(state, children)
        state = apply_verified(state, current)
    raise StorageError(f"iteration limit exceeded ({limit})")


def state_at(storage: Storage, h: bytes, limit: int = MAX_SCAN_ITERATIONS) -> State:
    """The state after the stored AUM `h` (docs/format.md §8): back to a checkpoint or genesis, then
    forward along the recorded path."""
    aum = storage.aum(h)
    if aum is None:
        raise StorageError(f"AUM {format_aum_hash(h)} is not stored")
    path: list[AUM] = []
    cursor = aum
    for _ in range(limit + 1):
        if cursor.kind == MessageKind.CHECKPOINT and cursor.state is not None:
            state = genesis_state(cursor)
            break
        parent_hash = cursor.parent
        if parent_hash is None:
            state = genesis_state(cursor)
            break
        path.append(cursor)
        parent = storage.aum(parent_hash)
        if parent is None:
            raise StorageError(
                f"chain is broken: parent {parent_hash} of {cursor.hash()} is not stored"
            )
        cursor = parent
    else:
        raise StorageError(f"iteration limit exceeded ({limit})")
    for step in reversed(path):
        state = apply_verified(state, step)
    return state


def oldest_ancestor(
    storage: Storage, head: AUM, hint: bytes | None, limit: int = MAX_SCAN_ITERATIONS
) -> tuple[AUM, bool]:
    """Walk back through stored parents from a head (docs/format.md §8 step 2); report whether the
    walk passed through the last-active-ancestor hint."""
    cursor = head
    through_active = False
    for _ in range(limit):
        parent_hash = cursor.parent
        if parent_hash is None:
            return cursor, through_active
        if hint is not None and parent_hash == bytes(hint):
            through_active = True
        parent = storage.aum(parent_hash)
        if parent is None:
            return cursor, through_active
        cursor = parent
    raise StorageError(f"iteration limit exceeded ({limit})")
