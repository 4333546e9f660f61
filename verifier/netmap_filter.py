"""Which peers of a netmap a node keeps under tailnet lock: tailscaled's filter, rule for rule.

1. A peer without a signature is dropped ("missing signature").
2. A peer whose signature does not authorize its node key is dropped, with the reason
   (`verify_peers`, the native bulk path).
3. Key rotation: every node key an authorized rotation signature names in its nested levels
   (its previous keys) is obsolete and dropped. Among rotation chains whose first signature is
   a *direct* one, chains that share that direct signature's wrapping key belong to one node
   (or a clone of it): only the one with the most previous keys is kept; a tie drops all of
   them. Chains that begin with a credential (wrapped auth keys) are exempt: many nodes join
   with one reusable key.

Beyond the verdict, `forgeable` names signatures anyone can extend with a forged rotation: a
direct signature (or the direct start of a rotation chain) whose wrapping key is all-zero, what
`tailscale lock sign nodekey:…` without a rotation key stores, or any other small-order point.
The reference accepts them, so this is a warning, not a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from verifier.ed25519 import public_key_class
from verifier.errors import DecodeError
from verifier.fields import Frozen
from verifier.nks import NodeKeySignature, SigKind
from verifier.peers import PeerVerdict, verify_peers
from verifier.state import State

if TYPE_CHECKING:
    from verifier.authority import Authority

MISSING = "missing signature"
ROTATED = "key rotation: a newer rotation signature replaces this node key"
ROTATION_TIE = ("key rotation: another node has an equally long rotation chain from the same "
                "wrapping key, so neither is kept")


_set = object.__setattr__


class FilteredPeer(Frozen):
    __match_args__ = ("visible", "reason", "forgeable")
    __slots__ = __match_args__
    visible: bool
    reason: str  # empty when visible
    forgeable: str  # empty, or why anyone could forge a rotation on top of this signature

    def __init__(self, visible: bool, reason: str, forgeable: str) -> None:
        _set(self, "visible", visible)
        _set(self, "reason", reason)
        _set(self, "forgeable", forgeable)


def filter_netmap(
    state_or_authority: State | Authority,
    peers: Sequence[tuple[bytes, bytes | None]],
    verdicts_of_signed: Sequence[PeerVerdict] | None = None,
) -> list[FilteredPeer]:
    """One result per (node key, signature bytes or None) peer, in order.

    `verdicts_of_signed`, when given, is `verify_peers`' verdict for each signed peer in
    order, already computed by the caller (who must have used the same state), so the
    signatures are not checked twice."""
    signed = [(i, key, sig) for i, (key, sig) in enumerate(peers) if sig]
    verdicts: dict[int, PeerVerdict] = {}
    if signed:
        results = (
            verify_peers(state_or_authority, [(key, sig) for _, key, sig in signed])
            if verdicts_of_signed is None
            else verdicts_of_signed
        )
        verdicts = {i: v for (i, _, _), v in zip(signed, results, strict=True)}

    obsolete: set[bytes] = set()
    chains: dict[bytes, list[tuple[bytes, int]]] = {}
    decoded: dict[int, NodeKeySignature] = {}
    for i, (key, sig) in enumerate(peers):
        if not sig:
            continue
        try:
            nks = NodeKeySignature.from_cbor(sig)
        except DecodeError:
            continue  # unauthorized anyway: verify_peers said why
        decoded[i] = nks
        if not verdicts[i].authorized or nks.kind != SigKind.ROTATION:
            continue
        previous, initial = _rotation_details(nks)
        obsolete.update(previous)
        if initial is not None and initial.kind == SigKind.DIRECT:
            chains.setdefault(initial.wrapping_pubkey, []).append((key, len(previous)))
    tied: set[bytes] = set()
    for chain in chains.values():
        live = sorted((c for c in chain if c[0] not in obsolete), key=lambda c: -c[1])
        if len(live) >= 2 and live[0][1] == live[1][1]:
            tied.update(k for k, _ in live)
            obsolete.update(k for k, _ in live)  # as the reference, for the groups after it
        else:
            obsolete.update(k for k, _ in live[1:])

    out: list[FilteredPeer] = []
    for i, (key, sig) in enumerate(peers):
        warning = forgeable_reason(decoded[i]) if i in decoded else ""
        if not sig:
            out.append(FilteredPeer(False, MISSING, ""))
        elif not verdicts[i].authorized:
            out.append(FilteredPeer(False, verdicts[i].reason, warning))
        elif key in tied:
            out.append(FilteredPeer(False, ROTATION_TIE, warning))
        elif key in obsolete:
            out.append(FilteredPeer(False, ROTATED, warning))
        else:
            out.append(FilteredPeer(True, "", warning))
    return out


def _rotation_details(nks: NodeKeySignature) -> tuple[list[bytes], NodeKeySignature | None]:
    """The node keys a rotation chain replaced, newest first, and its first non-rotation
    signature (the reference's RotationDetails)."""
    level = nks.nested
    while level is not None and level.kind == SigKind.ROTATION:
        level = level.nested
    return nks.previous_node_keys(), level


def forgeable_reason(nks: NodeKeySignature) -> str:
    """Why anyone could sign a rotation on top of `nks` without a secret, or ""."""
    initial = nks
    if nks.kind == SigKind.ROTATION:
        _, first = _rotation_details(nks)
        if first is None or first.kind != SigKind.DIRECT:
            return ""
        initial = first
    if initial.kind != SigKind.DIRECT or len(initial.wrapping_pubkey) != 32:
        return ""
    where = "its" if initial is nks else "its chain's first signature's"
    if initial.wrapping_pubkey == bytes(32):
        return (f"{where} wrapping key is all-zero (signed without a rotation key): anyone can "
                "sign a rotation to any node key on top of it")
    if public_key_class(initial.wrapping_pubkey) == "small_order":
        return (f"{where} wrapping key is a small-order point: anyone can sign a rotation to "
                "any node key on top of it")
    return ""
