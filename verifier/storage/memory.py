"""In-memory storage (docs/format.md §8): the same semantics without persistence."""

from __future__ import annotations

import time
from collections.abc import Iterable

from verifier.aum import AUM
from verifier.hashes import AUMHash


class MemoryStorage:
    def __init__(self) -> None:
        self._aums: dict[bytes, AUM] = {}
        self._times: dict[bytes, float] = {}
        self._lastactive: AUMHash | None = None

    def aum(self, h: bytes) -> AUM | None:
        return self._aums.get(bytes(h))

    def child_aums(self, h: bytes) -> list[AUM]:
        return [a for a in self._aums.values() if a.parent == bytes(h)]

    def commit_verified_aums(self, aums: Iterable[AUM]) -> None:
        now = time.time()
        for aum in aums:
            h = bytes(aum.hash())
            self._aums[h] = aum
            self._times.setdefault(h, now)

    def heads(self) -> list[AUM]:
        parents = {a.parent for a in self._aums.values()}
        return [a for h, a in self._aums.items() if h not in parents]

    def last_active_ancestor(self) -> AUMHash | None:
        return self._lastactive

    def set_last_active_ancestor(self, h: bytes) -> None:
        self._lastactive = AUMHash(bytes(h))

    def all_aums(self) -> list[AUMHash]:
        return [AUMHash(h) for h in self._aums]

    def commit_time(self, h: bytes) -> float | None:
        return self._times.get(bytes(h))

    def purge_aums(self, hashes: Iterable[bytes]) -> None:
        for h in hashes:
            self._aums.pop(bytes(h), None)
            self._times.pop(bytes(h), None)

    def remove_all(self) -> None:
        self._aums.clear()
        self._times.clear()
        self._lastactive = None
