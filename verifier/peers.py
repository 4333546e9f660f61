"""Bulk peer verification (§7.3, §7.5): one verdict and reason per (node key, NKS bytes) pair.

This is the pure-Python path over `verifier.nks.node_key_authorized`; the C bulk path of
issue 3 item 4 is not written yet, so verdicts here are exactly the single-peer rule's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from verifier.errors import TKAError
from verifier.nks import node_key_authorized
from verifier.state import State


class _HasState(Protocol):
    @property
    def state(self) -> State: ...


@dataclass(frozen=True)
class PeerVerdict:
    """`authorized` is the verdict; `reason` is empty when authorized, else the rule that failed."""

    authorized: bool
    reason: str


def verify_peers(
    authority_or_state: State | _HasState, peers: Iterable[tuple[bytes, bytes]]
) -> list[PeerVerdict]:
    if isinstance(authority_or_state, State):
        state = authority_or_state
    else:
        state = authority_or_state.state
    verdicts = []
    for node_key, nks_bytes in peers:
        try:
            node_key_authorized(state, node_key, nks_bytes)
        except TKAError as err:
            verdicts.append(PeerVerdict(False, f"{type(err).__name__}: {err}"))
        else:
            verdicts.append(PeerVerdict(True, ""))
    return verdicts
