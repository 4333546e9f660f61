"""Bulk peer verification (§7.3, §7.5): one verdict and reason per (node key, NKS bytes) pair.

`verify_peers` runs in C (`tka_verify_peers`: a bounded canonical NKS reader, BLAKE2s, one
ZIP-215 batch for direct and credential levels, the cofactorless check for rotation levels,
threads, the GIL released). Its verdicts and reasons are exactly those of
`verifier.nks.node_key_authorized`, which `verify_peers_reference` runs one peer at a time.

The C path judges only what it can judge exactly; the rest goes to the reference path:
NKS bytes that are not in canonical form (the full decoder's leniency and its error texts
stay in one place), node keys that are not 32 bytes, and states holding keys other than
32-byte Ed25519 ones. Real netmaps carry canonical signatures, so that path is for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Protocol

from verifier._native import ffi, lib
from verifier.ed25519 import native_failure
from verifier.errors import TKAError
from verifier.key import KeyKind
from verifier.nks import node_key_authorized, sig_kind_name
from verifier.state import State
from verifier.textforms import NODE_KEY_BINARY_LEN


class _HasState(Protocol):
    @property
    def state(self) -> State: ...


@dataclass(frozen=True)
class PeerVerdict:
    """`authorized` is the verdict; `reason` is empty when authorized, else the rule that failed
    as `<ErrorClass>: <the reference's message>`."""

    authorized: bool
    reason: str


AUTHORIZED = PeerVerdict(True, "")


def verify_peers(
    authority_or_state: State | _HasState,
    peers: Iterable[tuple[bytes, bytes]],
    *,
    threads: int = 0,
) -> list[PeerVerdict]:
    """One verdict per (node key, NKS bytes) pair, in order. `threads` = 0 uses every CPU."""
    if threads < 0:
        raise ValueError(f"threads must be 0 (every CPU) or a positive count, not {threads}")
    state = _state_of(authority_or_state)
    pairs = list(peers)
    if not pairs:
        return []
    trusted = _native_trust(state)
    if trusted is None:
        return verify_peers_reference(state, pairs)
    node_keys = [node_key for node_key, _ in pairs]
    blobs = [nks for _, nks in pairs]
    wrong_length: set[int] = set()
    if set(map(len, node_keys)) != {32}:
        wrong_length = {i for i, node_key in enumerate(node_keys) if len(node_key) != 32}
    for i in wrong_length:
        node_keys[i] = bytes(32)  # placeholder; judged by the reference path below
    n = len(pairs)
    offsets = ffi.new("size_t[]", list(accumulate(map(len, blobs), initial=0)))
    results = ffi.new("tka_peer_result[]", n)
    rc: int = lib.tka_verify_peers(
        b"".join(node_keys), b"".join(blobs), offsets, n, trusted, len(trusted) // 32,
        threads, results,
    )
    if rc < 0:
        raise native_failure(rc)
    if rc == n and not wrong_length:
        return [AUTHORIZED] * n  # the usual netmap: no per-peer work left
    verdicts: list[PeerVerdict] = []
    for i in range(n):
        result = results[i]
        if result.code == lib.TKA_PEER_OK and i not in wrong_length:
            verdicts.append(AUTHORIZED)
        elif result.code == lib.TKA_PEER_UNCHECKED or i in wrong_length:
            verdicts.append(_reference_verdict(state, pairs[i][0], blobs[i]))
        else:
            verdicts.append(_native_reason(result.code, result.depth, result.aux))
    return verdicts


def verify_peers_reference(
    authority_or_state: State | _HasState, peers: Iterable[tuple[bytes, bytes]]
) -> list[PeerVerdict]:
    """The same verdicts, one `node_key_authorized` call per peer (the oracle for the C path)."""
    state = _state_of(authority_or_state)
    return [_reference_verdict(state, node_key, nks) for node_key, nks in peers]


def _state_of(authority_or_state: State | _HasState) -> State:
    if isinstance(authority_or_state, State):
        return authority_or_state
    return authority_or_state.state


def _reference_verdict(state: State, node_key: bytes, nks_bytes: bytes) -> PeerVerdict:
    try:
        node_key_authorized(state, node_key, nks_bytes)
    except TKAError as err:
        return PeerVerdict(False, f"{type(err).__name__}: {err}")
    return AUTHORIZED


def _native_trust(state: State) -> bytes | None:
    """The trusted keys as the C path takes them, or None if it could not judge exactly.

    The reference's key lookup stops with an error at the first key that is not Ed25519
    (`State.find_key`), and a key of another length fails differently from a missing one;
    the C path knows neither rule, so such states (only ever read from unverified storage)
    go the slow way."""
    publics = [key.public for key in state.trusted_keys if key.public is not None]
    if any(
        key.public is not None and (key.kind != KeyKind.ED25519 or len(key.public) != 32)
        for key in state.trusted_keys
    ):
        return None
    return b"".join(publics)


@lru_cache(maxsize=256)
def _native_reason(code: int, depth: int, aux: int) -> PeerVerdict:
    """The reference's error for a C outcome code (verifier/nks.py raises the same texts)."""
    top_level = {
        lib.TKA_PEER_CREDENTIAL_ALONE: (
            "SignatureError: credential signatures cannot authorize nodes on their own"
        ),
        lib.TKA_PEER_NO_KEY_ID: "SignatureError: invalid signature: no keyID present",
        lib.TKA_PEER_ROTATION_NO_NESTED: (
            "SignatureError: invalid signature: rotation signature missing nested signature"
        ),
        lib.TKA_PEER_UNHANDLED_KIND: (
            f"SignatureError: unhandled signature type: {sig_kind_name(aux)}"
        ),
        lib.TKA_PEER_KEY_NOT_FOUND: "NotTrustedError: key: key not found",
    }
    if code in top_level:
        return PeerVerdict(False, top_level[code])
    per_level = {
        lib.TKA_PEER_WRONG_NODE_KEY: "signature does not authorize nodeKey",
        lib.TKA_PEER_MISSING_ROTATION_KEY: "missing rotation key",
        lib.TKA_PEER_BAD_ROTATION_KEY_LENGTH: f"bad rotation key length: {aux}",
        lib.TKA_PEER_BAD_SIGNATURE: "invalid signature",
        lib.TKA_PEER_NESTED_PUBKEY_PREFIX: "nested pubkey: missing/incorrect type prefix np",
        lib.TKA_PEER_NESTED_PUBKEY_LENGTH: (
            f"nested pubkey: incorrect len for NodePublic ({aux} != {NODE_KEY_BINARY_LEN})"
        ),
        lib.TKA_PEER_CANNOT_NEST: (
            "invalid signature: signatures of type "
            f"{sig_kind_name(aux)} cannot nest another signature"
        ),
    }
    if code not in per_level:
        raise RuntimeError(f"native peer verification returned unknown outcome {code}")
    return PeerVerdict(False, "SignatureError: " + "nested: " * depth + per_level[code])
