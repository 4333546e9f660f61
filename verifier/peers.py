"""Bulk peer verification (§7.3, §7.5): one verdict and reason per (node key, NKS bytes) pair.

`verify_peers` runs in C (`tka_verify_peers`: a bounded canonical NKS reader, BLAKE2s, one
ZIP-215 batch for direct and credential levels, the cofactorless check for rotation levels,
threads, the GIL released). Its verdicts and reasons are exactly those of
`verifier.nks.node_key_authorized`, which `verify_peers_reference` runs one peer at a time.

The C path judges only what it can judge exactly; the rest goes to the reference path:
NKS bytes that are not in canonical form (the full decoder's leniency and its error texts
stay in one place), node keys that are not 32 bytes, and states holding keys other than
32-byte Ed25519 ones. Real netmaps carry canonical signatures, so that path is for bad input.

Two ways in: `verify_peers` takes any iterable of pairs and returns a list; `PackedPeers` holds
the pairs in the three buffers C reads in place (node keys 32 bytes each, the NKS bytes
concatenated, n + 1 offsets), appended to by a parser without a list of per-peer objects, and
`verify_peers_packed` judges it without copying it, returning `PackedVerdicts`: the C results,
with the per-peer Python work (reasons, the reference path) done only for the peers that need it.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import accumulate, islice
from typing import Any, Protocol

from verifier._native import ffi, lib
from verifier.ed25519 import OFFSET_TYPECODE, native_failure
from verifier.errors import DecodeError, TKAError
from verifier.fields import Frozen
from verifier.key import KeyKind
from verifier.nks import NodeKeySignature, node_key_authorized, sig_kind_name
from verifier.state import State
from verifier.textforms import NODE_KEY_BINARY_LEN


class _HasState(Protocol):
    @property
    def state(self) -> State: ...


_set = object.__setattr__


class PeerVerdict(Frozen):
    """`authorized` is the verdict; `reason` is empty when authorized, else the rule that failed
    as `<ErrorClass>: <the reference's message>`."""

    __match_args__ = ("authorized", "reason")
    __slots__ = __match_args__
    authorized: bool
    reason: str

    def __init__(self, authorized: bool, reason: str) -> None:
        _set(self, "authorized", authorized)
        _set(self, "reason", reason)


AUTHORIZED = PeerVerdict(True, "")


# Peers `verify_peers` packs and judges at a time: 65,536 of them are about 12 MiB packed, and
# one native call of that many runs at full speed on every thread.
LIST_WINDOW = 1 << 16


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
    pairs = peers if isinstance(peers, list) else list(peers)
    if not pairs:
        return []
    if _native_trust(state) is None:
        return verify_peers_reference(state, pairs)
    if len(pairs) <= LIST_WINDOW:
        return verify_peers_packed(state, PackedPeers.from_pairs(pairs), threads=threads).to_list()
    # A window at a time: the packed copy C reads stays a few MiB (and in cache as it is
    # made), not a second copy of the whole input.
    verdicts = [AUTHORIZED] * len(pairs)
    for start in range(0, len(pairs), LIST_WINDOW):
        window = PackedPeers.from_pairs(pairs[start : start + LIST_WINDOW])
        for i, verdict in verify_peers_packed(state, window, threads=threads).unauthorized():
            verdicts[start + i] = verdict
    return verdicts


_NODE_KEY_PLACEHOLDER = bytes(32)


class PackedPeers:
    """(node key, NKS bytes) pairs in the buffers the C path reads in place: node keys of 32
    bytes each, one after the other; the NKS bytes concatenated; n + 1 offsets (peer i's NKS
    is nks[offsets[i]:offsets[i + 1]]). `append` adds one pair (what a parser does as it reads);
    nothing per peer is kept as a Python object. A node key that is not 32 bytes is kept aside
    (a placeholder takes its place in the buffer) and judged by the reference path."""

    __slots__ = ("_keys", "_nks", "_odd_keys", "_offsets")

    def __init__(self) -> None:
        self._keys: bytes | bytearray = bytearray()
        self._nks: bytes | bytearray = bytearray()
        self._offsets = array(OFFSET_TYPECODE, [0])
        self._odd_keys: dict[int, bytes] = {}

    @classmethod
    def from_pairs(cls, pairs: list[tuple[bytes, bytes]]) -> PackedPeers:
        """The same as appending every pair, with the buffers joined at C speed."""
        packed = cls()
        node_keys = [node_key for node_key, _ in pairs]
        blobs = [nks for _, nks in pairs]
        if set(map(len, node_keys)) != {32}:
            for i, node_key in enumerate(node_keys):
                if len(node_key) != 32:
                    packed._odd_keys[i] = bytes(node_key)
                    node_keys[i] = _NODE_KEY_PLACEHOLDER
        # Joined once, kept as they are (bytes): turned into bytearrays if appended to.
        packed._keys = b"".join(node_keys)
        packed._nks = b"".join(blobs)
        packed._offsets = array(OFFSET_TYPECODE, accumulate(map(len, blobs), initial=0))
        return packed

    def _growable(self) -> None:
        if isinstance(self._keys, bytes):
            self._keys = bytearray(self._keys)
        if isinstance(self._nks, bytes):
            self._nks = bytearray(self._nks)

    def extend(self, node_keys: list[bytes], blobs: list[bytes]) -> None:
        """Append node_keys[i] with blobs[i] for every i (what a parser does with a batch)."""
        if len(node_keys) != len(blobs):
            raise ValueError(f"{len(node_keys)} node keys for {len(blobs)} NKS")
        if set(map(len, node_keys)) - {32}:
            for node_key, nks in zip(node_keys, blobs, strict=True):
                self.append(node_key, nks)
            return
        self._growable()
        self._keys += b"".join(node_keys)
        base = len(self._nks)
        self._nks += b"".join(blobs)
        self._offsets.extend(islice(accumulate(map(len, blobs), initial=base), 1, None))

    def extend_buffers(self, node_keys: Any, blobs: Any, ends: Any) -> None:
        """Append k peers given as packed buffers: node_keys (32·k bytes), their NKS bytes
        concatenated, and `ends`, the k native size_t offsets at which each one's NKS ends in
        this object's whole NKS buffer (what a reader in C writes when told `nks_len()`); any
        objects with the buffer protocol."""
        new_ends = array(OFFSET_TYPECODE)
        new_ends.frombytes(ends)
        k = len(new_ends)
        base = len(self._nks)
        if len(node_keys) != 32 * k or (k and (
                new_ends[-1] != base + len(blobs) or new_ends[0] < base
                or sorted(listed := new_ends.tolist()) != listed)):
            raise ValueError("packed peer buffers that do not fit together")
        self._growable()
        self._keys += node_keys
        self._nks += blobs
        self._offsets.extend(new_ends)

    def node_key_bytes(self) -> bytes:
        """Every node key, 32 bytes each, concatenated (a node key that is not 32 bytes is
        32 zero bytes here: `node_key` has it)."""
        return bytes(self._keys)

    def nks_len(self) -> int:
        """The size of the NKS buffer (where the next peer's NKS starts)."""
        return len(self._nks)

    def append(self, node_key: bytes, nks: bytes) -> None:
        self._growable()
        if len(node_key) == 32:
            self._keys += node_key
        else:
            self._odd_keys[len(self._offsets) - 1] = bytes(node_key)
            self._keys += _NODE_KEY_PLACEHOLDER
        self._nks += nks
        self._offsets.append(len(self._nks))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def node_key(self, i: int) -> bytes:
        if not 0 <= i < len(self):
            raise IndexError(f"peer {i} of {len(self)}")
        odd = self._odd_keys.get(i)
        return odd if odd is not None else bytes(self._keys[32 * i : 32 * i + 32])

    def nks(self, i: int) -> bytes:
        if not 0 <= i < len(self):
            raise IndexError(f"peer {i} of {len(self)}")
        return bytes(self._nks[self._offsets[i] : self._offsets[i + 1]])

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        for i in range(len(self)):
            yield self.node_key(i), self.nks(i)

    @property
    def nbytes(self) -> int:
        """What the buffers hold (their allocations may be up to an eighth larger)."""
        return len(self._keys) + len(self._nks) + len(self._offsets) * self._offsets.itemsize


class PeerLineScanner:
    """Reads the usual lines of a peers file in C (tka_read_peer_lines: `nodekey:<64 hex>`,
    a hex or canonical base64 signature, an optional `# name`; blank and `#` lines skipped)
    from blocks of ASCII text with `\n` line ends only, appending the peers to caller-owned
    buffers. It stops at the first other line, which the caller reads with its general rule
    and then resumes after. Its scratch buffers (at most about 3·CAPACITY bytes) are reused
    from block to block; a longer block takes several scans."""

    CAPACITY = 1 << 18

    def __init__(self) -> None:
        self._capacity = -1  # bytes of text one scan can take whole
        self._out = ffi.new("tka_peer_lines *")
        self._buffers: tuple[Any, ...] = ()
        self.full = False  # the last scan stopped because its buffers were full

    def _reserve(self, n: int) -> None:
        n = min(max(n, 1 << 12), self.CAPACITY)
        if n <= self._capacity:
            return
        max_peers = n // 72 + 1  # the shortest peer line: a node key, a blank, 2 hex digits
        node_keys, sigs = ffi.new("uint8_t[]", 32 * max_peers), ffi.new("uint8_t[]", n)
        names, ends = ffi.new("uint8_t[]", n), ffi.new("size_t[]", 3 * max_peers)
        out = self._out
        out.node_keys, out.sigs, out.sigs_cap = node_keys, sigs, n
        out.names, out.names_cap, out.max_peers = names, n, max_peers
        out.sig_ends, out.name_ends, out.lines = ends, ends + max_peers, ends + 2 * max_peers
        self._buffers = (node_keys, sigs, names, ends)
        self._capacity = n

    def scan(self, block: bytes, at: int, line_base: int, peers: PackedPeers, names: bytearray,
             name_ends: array[int], lines: array[int]) -> tuple[int, int]:
        """Reads from block[at:]: appends each peer to `peers`, its name (UTF-8) to `names`
        and the end of it to `name_ends`, its line number (line_base + 1 for the first line
        read) to `lines`. Returns (where it stopped, how many lines it consumed)."""
        if not 0 <= at <= len(block):
            raise ValueError(f"offset {at} outside a block of {len(block)} bytes")
        if name_ends.itemsize != ffi.sizeof("size_t") or lines.itemsize != ffi.sizeof("size_t"):
            raise ValueError("name_ends and lines must be arrays of OFFSET_TYPECODE")
        self._reserve(len(block) - at)
        out = self._out
        out.sig_base, out.name_base, out.line_base = peers.nks_len(), len(names), line_base
        with memoryview(block) as view:
            used = int(lib.tka_read_peer_lines(ffi.from_buffer(view) + at, len(block) - at, out))
        k = int(out.n_peers)
        self.full = bool(out.full)
        if k:
            width = ffi.sizeof("size_t")
            peers.extend_buffers(ffi.buffer(out.node_keys, 32 * k),
                                 ffi.buffer(out.sigs, out.sigs_used),
                                 ffi.buffer(out.sig_ends, k * width))
            names += ffi.buffer(out.names, out.names_used)
            name_ends.frombytes(ffi.buffer(out.name_ends, k * width))
            lines.frombytes(ffi.buffer(out.lines, k * width))
        return at + used, int(out.n_lines)


def verify_peers_packed(
    authority_or_state: State | _HasState,
    peers: PackedPeers,
    *,
    threads: int = 0,
    describe: bool = False,
) -> PackedVerdicts:
    """`verify_peers` over packed peers, which C reads where they are (the buffers are locked
    against resizing for the call). `describe` also asks C what each NKS is (its outer kind and
    its shallowest forgeable wrapping key: `PackedVerdicts.outer_kind`, `.weak_wrapping_key`)."""
    if threads < 0:
        raise ValueError(f"threads must be 0 (every CPU) or a positive count, not {threads}")
    state = _state_of(authority_or_state)
    n = len(peers)
    trusted = _native_trust(state)
    # Zeroed: "not read", so each NKS is described by the Python decoder unless C reads it.
    info = ffi.new("tka_peer_info[]", n) if describe else ffi.NULL
    if n == 0 or trusted is None:
        return PackedVerdicts(state, peers, None, info if describe else None, 0)
    results = ffi.new("tka_peer_result[]", n)
    with memoryview(peers._keys) as keys, memoryview(peers._nks) as nks, \
            memoryview(peers._offsets) as offsets:
        rc: int = lib.tka_verify_peers_packed(
            ffi.from_buffer(keys), ffi.from_buffer(nks), ffi.from_buffer("size_t[]", offsets),
            n, trusted, len(trusted) // 32, threads, results, info,
        )
    if rc < 0:
        raise native_failure(rc)
    return PackedVerdicts(state, peers, results, info if describe else None, rc)


class WeakWrappingKey(Frozen):
    """A level of an NKS whose wrapping key is a small-order point (`all_zero`: the all-zero
    key), so that anyone can sign a rotation on top of it; `depth` 0 is the outermost level."""

    __match_args__ = ("depth", "kind", "all_zero")
    __slots__ = __match_args__
    depth: int
    kind: int
    all_zero: bool

    def __init__(self, depth: int, kind: int, all_zero: bool) -> None:
        _set(self, "depth", depth)
        _set(self, "kind", kind)
        _set(self, "all_zero", all_zero)


# Compiled on first use (re's cache), not when `tka status` imports this module.
_NOT_OK = rb"[^\x00]"
_WEAK = rb"[^\xff]"


class PackedVerdicts:
    """The verdicts of `verify_peers_packed`, one per peer in order, computed on access: a peer
    C authorized costs nothing, a reason is built (and cached) when asked for, and a peer C left
    to the reference path (non-canonical bytes, an odd node key) is judged there when first
    asked for."""

    def __init__(self, state: State, peers: PackedPeers, results: Any, info: Any,
                 authorized_by_c: int) -> None:
        self._state = state
        self._peers = peers
        self._results = results  # None: every peer goes to the reference path
        self._info = info
        self._n = len(peers)
        self._resolved: dict[int, PeerVerdict] = {}
        self._all_ok = results is not None and authorized_by_c == self._n and not peers._odd_keys

    def __len__(self) -> int:
        return self._n

    def _column(self, data: Any, offset: int, stride: int) -> bytes:
        with memoryview(ffi.buffer(data)) as raw:
            return bytes(raw[offset::stride])

    def __getitem__(self, i: int) -> PeerVerdict:
        if not 0 <= i < self._n:
            raise IndexError(f"peer {i} of {self._n}")
        if self._all_ok:
            return AUTHORIZED
        cached = self._resolved.get(i)
        if cached is not None:
            return cached
        if self._results is None or i in self._peers._odd_keys:
            verdict = self._reference(i)
        else:
            result = self._results[i]
            if result.code == lib.TKA_PEER_OK:
                return AUTHORIZED
            if result.code == lib.TKA_PEER_UNCHECKED:
                verdict = self._reference(i)
            else:
                verdict = _native_reason(result.code, result.depth, result.aux)
        self._resolved[i] = verdict
        return verdict

    def _reference(self, i: int) -> PeerVerdict:
        return _reference_verdict(self._state, self._peers.node_key(i), self._peers.nks(i))

    def __iter__(self) -> Iterator[PeerVerdict]:
        for i in range(self._n):
            yield self[i]

    def unauthorized(self) -> Iterator[tuple[int, PeerVerdict]]:
        """(index, verdict) of every peer that is not authorized, in order, without a Python
        step for the authorized ones C judged."""
        if self._all_ok:
            return
        if self._results is None:
            candidates: Iterable[int] = range(self._n)
        else:
            codes = self._column(self._results, 0, ffi.sizeof("tka_peer_result"))
            from_c = (m.start() for m in re.finditer(_NOT_OK, codes))
            candidates = sorted({*from_c, *self._peers._odd_keys})
        for i in candidates:
            verdict = self[i]
            if not verdict.authorized:
                yield i, verdict

    def to_list(self) -> list[PeerVerdict]:
        verdicts = [AUTHORIZED] * self._n
        for i, verdict in self.unauthorized():
            verdicts[i] = verdict
        return verdicts

    def read_by_c(self, i: int) -> bool:
        """Whether C read peer i's NKS (canonical bytes), so `outer_kind` and
        `weak_wrapping_key` answer from C; needs `describe`."""
        return bool(self._described(i).flags & lib.TKA_PEER_INFO_READ)

    def _described(self, i: int) -> Any:
        info = self._info_or_raise()
        if not 0 <= i < self._n:
            raise IndexError(f"peer {i} of {self._n}")
        return info[i]

    def outer_kind(self, i: int) -> int | None:
        """The SigKind of peer i's outermost signature, or None if its bytes do not decode."""
        info = self._described(i)
        if info.flags & lib.TKA_PEER_INFO_READ:
            return int(info.kind)
        decoded = _decoded(self._peers.nks(i))
        return None if decoded is None else int(decoded.kind)

    def weak_wrapping_key(self, i: int) -> WeakWrappingKey | None:
        """The shallowest level of peer i's NKS whose wrapping key is 32 bytes naming a
        small-order point, or None (also for bytes that do not decode)."""
        info = self._described(i)
        if info.flags & lib.TKA_PEER_INFO_READ:
            if info.weak_depth == lib.TKA_PEER_NO_WEAK:
                return None
            return WeakWrappingKey(int(info.weak_depth), int(info.weak_kind),
                                   bool(info.flags & lib.TKA_PEER_INFO_WEAK_ZERO))
        return weak_wrapping_key_of(_decoded(self._peers.nks(i)))

    def weak_candidates(self) -> list[int]:
        """Every peer `weak_wrapping_key` may answer for (the others have none), in order."""
        weak = self._column(self._info_or_raise(), 1, ffi.sizeof("tka_peer_info"))
        return sorted({*(m.start() for m in re.finditer(_WEAK, weak)), *self._unread()})

    def kind_candidates(self, kind: int) -> list[int]:
        """Every peer whose outer kind may be `kind`: C read it so, or C could not read it."""
        kinds = self._column(self._info_or_raise(), 0, ffi.sizeof("tka_peer_info"))
        unread = self._unread()
        same = (m.start() for m in re.finditer(re.escape(bytes([kind])), kinds))
        return sorted({*(i for i in same if i not in unread), *unread})

    def _info_or_raise(self) -> Any:
        if self._info is None:
            raise ValueError("verify_peers_packed(..., describe=True) describes the NKS")
        return self._info

    def _unread(self) -> set[int]:
        """The peers whose NKS C did not read (its flags are all clear)."""
        flags = self._column(self._info_or_raise(), 3, ffi.sizeof("tka_peer_info"))
        return {m.start() for m in re.finditer(b"\x00", flags)}


def _decoded(nks: bytes) -> NodeKeySignature | None:
    try:
        return NodeKeySignature.from_cbor(nks)
    except DecodeError:
        return None


def weak_wrapping_key_of(nks: NodeKeySignature | None) -> WeakWrappingKey | None:
    """What `PackedVerdicts.weak_wrapping_key` says, from a decoded NKS (the Python path)."""
    from verifier.ed25519 import public_key_class

    depth = 0
    level = nks
    while level is not None:
        key = level.wrapping_pubkey
        if len(key) == 32 and (key == bytes(32) or public_key_class(key) == "small_order"):
            return WeakWrappingKey(depth, int(level.kind), key == bytes(32))
        level = level.nested
        depth += 1
    return None


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
