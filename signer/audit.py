"""Auditing node-key signatures against an authority, offline: which peers a node keeps under
tailnet lock, why it drops the others, and which signatures anyone could extend with a forged
rotation.

The authority is a directory in Tailscale's filesystem layout (a copy of a real node's
`tka-profiles/<id>`, or a node state directory's `tka` of ours), opened read-only. The peers
come from either
- a peers file, one per line: `nodekey:<hex> <signature>`, the signature as in a netmap's
  KeySignature (standard base64) or hex, an optional `# name` after it; blank lines and `#`
  comment lines are skipped (`tka peers export` writes one); or
- what a real node printed with `tailscale lock status --json`, or its LocalAPI's
  ipnstate.TailnetLockStatus (signer.status_json; a peers file that turns out to be one is read
  as one): then the node's own visible/filtered split is compared with ours, and any
  difference is reported.
Verdicts are tailscaled's netmap filter (verifier.netmap_filter): the signature check of every
peer in one native call, then the key-rotation rule.

Memory stays proportional to what the report needs, not to the input: a peers file is read as
a stream of blocks (`read_peer_lines`; the usual lines in C, any other line by the rule below
with its error messages) into a `PeerTable`, whose current window of packed peers is judged by
one `verifier.peers.verify_peers_packed` call every 16,384 peers and then dropped, keeping each
peer's node key, line and name, the failures, the warnings (C names the forgeable wrapping
keys) and the authorized rotation signatures, which the key-rotation rule needs once the whole
netmap is known. The reports are then written to a stream a batch of peers at a time
(`write_human`, `write_json`, `write_html`): the peers that are authorized without a warning
(nearly all) are filled into one %-format of the whole batch, with no Python step each. A
status document is one JSON value and is parsed whole (the standard library has no streaming
JSON reader), then judged the same way.
"""

from __future__ import annotations

import binascii
import string
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import accumulate, chain, islice, pairwise
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from signer.authority_dir import open_authority_dir
from signer.echo import clip_input
from verifier.authority import Authority
from verifier.ed25519 import OFFSET_TYPECODE
from verifier.errors import DecodeError, StorageError
from verifier.fields import Frozen
from verifier.netmap_filter import MISSING, ROTATED, ROTATION_TIE, filter_netmap
from verifier.nks import NodeKeySignature, SigKind, sig_kind_name
from verifier.peers import (
    AUTHORIZED,
    PackedPeers,
    PeerLineScanner,
    WeakWrappingKey,
    verify_peers_packed,
    weak_wrapping_key_of,
)
from verifier.state import State
from verifier.textforms import format_aum_hash, format_tlpub, parse_node_public

try:  # what json.encoder itself uses, without loading the json package at start-up
    from _json import encode_basestring_ascii as _json_str
except ImportError:  # pragma: no cover (an interpreter without the accelerator)
    from json.encoder import encode_basestring_ascii as _json_str

if TYPE_CHECKING:
    from signer.status_json import NodeStatus

_HEX_CHARS = string.hexdigits
_HEX_BYTES = _HEX_CHARS.encode()
# 1: Head, TrustedKeys, Peers[Line, NodeKey, Authorized, Reason]; 2 added Name, Forgeable,
# NodeVerdict and the counts. Within a version fields are only ever added (Input, Visible,
# Exempt and Filtered were, within 2), never renamed or removed.
SCHEMA_VERSION = "2"
INPUT_PEERS = "peers file"
CHUNK = 1 << 18  # bytes read at a time
MAX_LINE = 1 << 20  # a peers line longer than this is refused (a valid one is a few kB)
MAX_STATUS = 64 << 20  # a status document is parsed whole

# Per peer of a status: what the node itself decided.
_NODE_UNKNOWN, _NODE_FILTERED, _NODE_VISIBLE, _NODE_OMITTED = 0, 1, 2, 4


def open_authority_readonly(directory: Path) -> Authority:
    """The authority in `directory`, read into memory: nothing there is created or changed
    (signer.authority_dir; kept for `tka appliance`)."""
    return open_authority_dir(directory)


class PeerTable:
    """The peers of one audit as they are read, judged a window at a time.

    The readers append to `peers`, the current window (node keys and signature bytes, an empty
    signature meaning none), and to the line numbers and names (UTF-8, concatenated) kept for
    the report; for a status, what the node decided is one byte per peer. Every WINDOW peers
    (`judge_if_full`, and `finish` for the rest) the window is judged in one native call and
    dropped: what is kept of it is each peer's node key, the reason of each signature that does
    not authorize its key, each forgeable-signature warning, and the bytes of the authorized
    rotation signatures (which the key-rotation rule needs at the end). Memory is then about
    70 bytes per peer besides its name, and one window."""

    WINDOW = 1 << 14  # two native threads of 8,192 peers: batches near full speed

    def __init__(self, state: State, node_verdicts: bool = False, threads: int = 0) -> None:
        self._state = state
        self._threads = threads
        self.peers = PackedPeers()
        self._window_start = 0
        self._keys = bytearray()
        self.lines = array(OFFSET_TYPECODE)
        self._names = bytearray()
        self._name_ends = array(OFFSET_TYPECODE, [0])
        self._node = bytearray() if node_verdicts else None
        self.unsigned: list[int] = []
        self.reasons: dict[int, str] = {}  # the signature's verdict, for signed peers
        self.forgeable: dict[int, str] = {}
        self.rotations: list[tuple[int, bytes]] = []  # authorized rotation signatures

    def add(self, line: int, name: str, node_key: bytes, signature: bytes | None,
            node_visible: bool | None = None, omitted: bool = False) -> None:
        if not signature:
            self.unsigned.append(len(self.lines))
        self.lines.append(line)
        if name:
            self._names += name.encode("utf-8", "surrogatepass")
        self._name_ends.append(len(self._names))
        self.peers.append(node_key, signature or b"")
        if self._node is not None:
            flags = _NODE_UNKNOWN if node_visible is None else (
                _NODE_VISIBLE if node_visible else _NODE_FILTERED)
            self._node.append(flags | (_NODE_OMITTED if omitted else 0))

    def extend(self, lines: list[int], names: list[bytes], node_keys: list[bytes],
               signatures: list[bytes]) -> None:
        """A batch of a peers file (no node verdicts): names UTF-8 encoded, every signature
        present (an empty one counts as none; the caller lists those in `unsigned`)."""
        self.lines.extend(lines)
        base = len(self._names)
        self._names += b"".join(names)
        self._name_ends.extend(islice(accumulate(map(len, names), initial=base), 1, None))
        self.peers.extend(node_keys, signatures)

    def judge_if_full(self) -> None:
        if len(self.peers) >= self.WINDOW:
            self._judge()

    def finish(self) -> None:
        """Judges what is left; the table is complete after it."""
        if len(self.peers):
            self._judge()

    def _judge(self) -> None:
        window, base = self.peers, self._window_start
        if len(self.lines) != base + len(window):
            raise RuntimeError("peer table out of step with its window")
        verdicts = verify_peers_packed(self._state, window, threads=self._threads,
                                       describe=True)
        unsigned = set(self.unsigned[bisect_left(self.unsigned, base):])
        for i, verdict in verdicts.unauthorized():
            if base + i not in unsigned:
                self.reasons[base + i] = verdict.reason
        for i in verdicts.weak_candidates():
            weak = None if base + i in unsigned else verdicts.weak_wrapping_key(i)
            if weak is not None:
                self.forgeable[base + i] = _forgeable_text(weak)
        for i in verdicts.kind_candidates(SigKind.ROTATION):
            if (base + i not in self.reasons and base + i not in unsigned
                    and verdicts.outer_kind(i) == SigKind.ROTATION):
                self.rotations.append((base + i, window.nks(i)))
        self._keys += window.node_key_bytes()
        self.peers = PackedPeers()
        self._window_start = len(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def node_key(self, i: int) -> bytes:
        if i >= len(self._keys) // 32:
            return self.peers.node_key(i - self._window_start)  # not judged yet
        return bytes(self._keys[32 * i : 32 * i + 32])

    def find_node_keys(self, wanted: set[bytes]) -> list[int]:
        """The judged peers whose node key is in `wanted`, in order."""
        keys = self._keys
        if len(wanted) <= 64:  # a few keys: search the buffer for each
            found = []
            for key in wanted:
                at = keys.find(key)
                while at != -1:
                    if at % 32 == 0:
                        found.append(at // 32)
                    at = keys.find(key, at + 1)
            return sorted(set(found))
        return [i for i in range(len(keys) // 32) if bytes(keys[32 * i : 32 * i + 32]) in wanted]

    def name(self, i: int) -> str:
        start, end = self._name_ends[i], self._name_ends[i + 1]
        return self._names[start:end].decode("utf-8", "surrogatepass") if end > start else ""

    def names(self, start: int, stop: int) -> list[str]:
        """`name(i)` for i in [start, stop): the report writers take peers a batch at a time,
        and one decode of a batch's names (when they are ASCII, as host names are) costs far
        less than one per peer."""
        ends = self._name_ends
        block = self._names[ends[start] : ends[stop]]
        if not block.isascii():
            return [self.name(i) for i in range(start, stop)]
        text, base = block.decode("ascii"), ends[start]
        return [text[a - base : b - base] for a, b in pairwise(ends[start : stop + 1])]

    def name_bytes(self, start: int, stop: int) -> bytes:
        """The names of the peers in [start, stop), UTF-8, concatenated."""
        return bytes(self._names[self._name_ends[start] : self._name_ends[stop]])

    def node_key_hexes(self, start: int, stop: int) -> list[str]:
        """The hex digits of the node key of each peer in [start, stop), in one call."""
        if start >= stop:
            return []
        if stop > len(self._keys) // 32:
            return [self.node_key(i).hex() for i in range(start, stop)]
        return self._keys[32 * start : 32 * stop].hex(" ", 32).split(" ")

    def node_flags(self, start: int, stop: int) -> bytes | None:
        """What the node decided of each peer in [start, stop) (one byte each, see
        `node_visible`), or None without node verdicts."""
        return None if self._node is None else bytes(self._node[start:stop])

    def node_visible(self, i: int) -> bool | None:
        if self._node is None or not self._node[i] & (_NODE_VISIBLE | _NODE_FILTERED):
            return None
        return bool(self._node[i] & _NODE_VISIBLE)

    def omitted(self, i: int) -> bool:
        return self._node is not None and bool(self._node[i] & _NODE_OMITTED)

    @property
    def has_node_verdicts(self) -> bool:
        return self._node is not None


def byte_chunks(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """`stream` a chunk at a time; a read error is one error naming it."""
    while True:
        try:
            data = stream.read(CHUNK)
        except OSError as exc:
            raise StorageError(f"cannot read {name}: {exc.strerror}") from None
        if not data:
            return
        yield data


def decode_text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{name} is not UTF-8 text") from None


def _blocks(chunks: Iterable[bytes], source: str) -> Iterator[bytes]:
    """The stream cut after its last line break in each chunk (after a `\\n`, or after a `\\r`
    that no `\\n` follows), so that no line, and no UTF-8 character, spans two blocks."""
    carry = b""
    for data in chunks:
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            cut = data.rfind(b"\r", 0, len(data) - 1) + 1
        carry = data[cut:]
        if len(carry) > MAX_LINE:
            raise DecodeError(f"{source}: a line longer than {MAX_LINE >> 20} MiB: not a peers "
                              "file")
        if cut:
            yield data[:cut]
    if carry:
        yield carry


# Characters after which str.splitlines breaks a line, or that str.split takes as whitespace,
# but bytes.splitlines and bytes.split do not: an ASCII block without them splits the same as
# bytes as it does as text.
_TEXT_ONLY_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")


def _signature_bytes(text: str) -> bytes:
    if len(text) % 2 == 0 and not text.strip(_HEX_CHARS):
        return bytes.fromhex(text)
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise DecodeError("the signature is neither hex nor standard base64") from None


def read_peer_lines(chunks: Iterable[bytes], source: str, table: PeerTable) -> PeerTable:
    """A peers file (UTF-8), read a block at a time into `table`, judged as it goes; a bad
    line is a DecodeError naming `source:line`. Lines are those of `str.splitlines`."""
    scanner = PeerLineScanner()
    number = 0
    for block in _blocks(chunks, source):
        if block.isascii() and not any(c in block for c in _TEXT_ONLY_BREAKS):
            if b"\r" in block:
                number = _read_ascii_block(block, number, source, table)
            else:
                number = _read_native_block(block, number, source, table, scanner)
        else:
            number = _read_text_block(decode_text(block, source), number, source, table)
        table.judge_if_full()
    table.finish()
    return table


def _read_native_block(block: bytes, number: int, source: str, table: PeerTable,
                       scanner: PeerLineScanner) -> int:
    """The lines of an ASCII block with `\n` line ends only: the usual ones read in C
    (verifier.peers.PeerLineScanner), straight into the table's buffers; each other line
    through `_peer_line`, the rule itself with its error messages."""
    at, n = 0, len(block)
    while at < n:
        at, lines = scanner.scan(block, at, number, table.peers, table._names,
                                 table._name_ends, table.lines)
        number += lines
        if at < n and not scanner.full:  # stopped at a line it leaves to the rule
            end = block.find(b"\n", at) + 1 or n
            number += 1
            parsed = _peer_line(block[at:end].decode("ascii"), number, source)
            if parsed is not None:
                table.add(number, *parsed)
            at = end
    return number


def _read_ascii_block(block: bytes, number: int, source: str, table: PeerTable) -> int:
    """The lines of an ASCII block; returns the number of the last one. The usual line,
    `nodekey:<64 hex> <signature>[ # name]`, is read at full speed: when neither word holds a
    `#`, the words before the first `#` are these two exactly. Anything else goes through
    `_peer_line`, the rule itself with its error messages."""
    a2b_hex, a2b_base64 = binascii.a2b_hex, binascii.a2b_base64
    numbers: list[int] = []
    names: list[bytes] = []
    node_keys: list[bytes] = []
    signatures: list[bytes] = []
    for raw in block.splitlines(keepends=True):
        number += 1
        words = raw.split(None, 2)
        try:
            if len(words) < 2 or (len(words) == 3 and words[2][0] != 0x23):  # "#"
                raise ValueError
            key_text, sig_text = words[0], words[1]
            if len(key_text) != 72 or not key_text.startswith(b"nodekey:") or b"#" in sig_text:
                raise ValueError
            node_key = a2b_hex(key_text[8:])
            if len(sig_text) % 2 == 0 and not sig_text.strip(_HEX_BYTES):
                signature = a2b_hex(sig_text)
            else:
                signature = a2b_base64(sig_text, strict_mode=True)
            name = words[2][1:].strip() if len(words) == 3 else b""
        except ValueError:  # binascii.Error is one
            parsed = _peer_line(raw.decode("ascii"), number, source)
            if parsed is None:
                continue
            name, node_key, signature = parsed[0].encode("ascii"), parsed[1], parsed[2]
        if not signature:
            table.unsigned.append(len(table.lines) + len(numbers))
        numbers.append(number)
        names.append(name)
        node_keys.append(node_key)
        signatures.append(signature)
    table.extend(numbers, names, node_keys, signatures)
    return number


def _read_text_block(text: str, number: int, source: str, table: PeerTable) -> int:
    numbers: list[int] = []
    names: list[bytes] = []
    node_keys: list[bytes] = []
    signatures: list[bytes] = []
    for raw in text.splitlines():
        number += 1
        parsed = _peer_line(raw, number, source)
        if parsed is None:
            continue
        name, node_key, signature = parsed
        if not signature:
            table.unsigned.append(len(table.lines) + len(numbers))
        numbers.append(number)
        names.append(name.encode("utf-8", "surrogatepass"))
        node_keys.append(node_key)
        signatures.append(signature)
    table.extend(numbers, names, node_keys, signatures)
    return number


def _peer_line(raw: str, number: int, source: str) -> tuple[str, bytes, bytes] | None:
    """One line of a peers file: (name, node key, signature), None for a blank or comment
    line, or a DecodeError naming `source:number`."""
    line, _, comment = raw.partition("#")
    words = line.split()
    if not words:
        return None
    try:
        if len(words) != 2:
            raise DecodeError("expected `nodekey:<hex> <signature>`")
        return comment.strip(), parse_node_public(words[0]), _signature_bytes(words[1])
    except DecodeError as err:
        raise DecodeError(f"{source}:{number}: {err}") from None


def parse_peer_lines(text: str, source: str, state: State) -> PeerTable:
    """`read_peer_lines` of a whole text."""
    return read_peer_lines([text.encode("utf-8", "surrogatepass")], source, PeerTable(state))


def peers_from_status(status: NodeStatus, authority: Authority, source: str) -> PeerTable:
    """The peers of a node's status document, after checking it describes this authority."""
    if status.head != bytes(authority.head):
        raise StorageError(
            f"{source} is at head {format_aum_hash(status.head)} but the authority directory at "
            f"{format_aum_hash(authority.head)}: copy the node's tka-profiles directory again "
            "together with its status (or they belong to different tailnets)"
        )
    ours = {k.public for k in authority.keys()}
    if status.trusted_keys != ours:
        raise StorageError(f"{source} lists other trusted keys than the authority directory: "
                           "they belong to different tailnets")
    table = PeerTable(authority.state, node_verdicts=True)
    for p in status.peers:
        table.add(0, p.name, p.node_key, p.signature, p.visible, p.omitted)
        table.judge_if_full()
    table.finish()
    return table


# A filtered peer in a node's status carries no signature (Tailscale's schema leaves it out).
FILTERED_UNSIGNED = ("filtered by the node, whose status leaves out a filtered peer's signature; "
                     "audit the coordination server's netmap (tka peers export) for the reason")
# The zero signature in a status: the peer had no signature, or one the node could not decode.
NO_SIGNATURE = ("missing signature (or one the node could not decode: its status shows the "
                "empty signature for both)")
# A peer a node shows without a signature: the only way tailscaled keeps one is the coordination
# server's UnsignedPeerAPIOnly mark (no network access, only this node's peer API).
EXEMPT = ("not subject to tailnet lock: the node shows it without a signature, which tailscaled "
          "does only for a peer the coordination server marks UnsignedPeerAPIOnly (peer API "
          "only, no network access)")


_set = object.__setattr__


class AuditReport(Frozen):
    """The outcome for every peer of a table: `reasons` has every peer the netmap filter does
    not authorize (exempt ones included, with EXEMPT), `forgeable` every warning."""

    __match_args__ = ("head", "trusted_keys", "table", "reasons", "exempt", "forgeable", "source")
    __slots__ = __match_args__
    head: bytes
    trusted_keys: int
    table: PeerTable
    reasons: dict[int, str]
    exempt: frozenset[int]
    forgeable: dict[int, str]
    source: str

    def __init__(
        self,
        head: bytes,
        trusted_keys: int,
        table: PeerTable,
        reasons: dict[int, str],
        exempt: frozenset[int],
        forgeable: dict[int, str],
        source: str = INPUT_PEERS,
    ) -> None:
        _set(self, "head", head)
        _set(self, "trusted_keys", trusted_keys)
        _set(self, "table", table)
        _set(self, "reasons", reasons)
        _set(self, "exempt", exempt)
        _set(self, "forgeable", forgeable)
        _set(self, "source", source)

    def __len__(self) -> int:
        return len(self.table)

    def authorized(self, i: int) -> bool:
        return i not in self.reasons

    def visible(self, i: int) -> bool:
        """Whether the node keeps it: authorized, or exempt."""
        return i not in self.reasons or i in self.exempt

    def disagrees(self, i: int) -> bool:
        node = self.table.node_visible(i)
        return node is not None and node != self.visible(i)

    @property
    def unauthorized(self) -> list[int]:
        """The peers the node drops (exempt ones are kept), in order."""
        return sorted(i for i in self.reasons if i not in self.exempt)

    @property
    def disagreements(self) -> list[int]:
        if not self.table.has_node_verdicts:
            return []
        return [i for i in range(len(self.table)) if self.disagrees(i)]


def audit(authority: Authority, table: PeerTable, source: str = INPUT_PEERS) -> AuditReport:
    """The report of a table its reader finished: the signature verdicts, the key-rotation
    rule, then what a status says of the peers it shows without a signature."""
    table.finish()
    reasons = dict(table.reasons)
    reasons.update(_rotation_rule(authority, table, reasons))
    exempt = set()
    for i in table.unsigned:
        node = table.node_visible(i)
        if node is None:
            reasons[i] = MISSING
        elif table.omitted(i):
            reasons[i] = FILTERED_UNSIGNED
        elif node:
            reasons[i] = EXEMPT
            exempt.add(i)
        else:
            reasons[i] = NO_SIGNATURE
    return AuditReport(
        head=bytes(authority.head),
        trusted_keys=len(authority.state.trusted_keys),
        table=table,
        reasons=dict(sorted(reasons.items())),
        exempt=frozenset(exempt),
        forgeable=dict(sorted(table.forgeable.items())),
        source=source,
    )


def _rotation_rule(authority: Authority, table: PeerTable,
                   reasons: dict[int, str]) -> dict[int, str]:
    """The peers the key-rotation rule drops, with its reason.

    The rule depends only on the authorized rotation signatures, in netmap order, so
    verifier.netmap_filter runs on those peers alone (the same verdicts for them as on the
    whole netmap, and no work at all without rotations). It drops other peers by node key
    only: a key a dropped peer of a tie carries (ROTATION_TIE), or one that is obsolete, which
    is a previous key of some rotation chain or the key of a rotation peer it drops as
    obsolete (ROTATED)."""
    if not table.rotations:
        return {}
    # They are authorized already (table.rotations holds only those): not verified again.
    results = filter_netmap(authority, [(table.node_key(i), nks) for i, nks in table.rotations],
                            [AUTHORIZED] * len(table.rotations))
    dropped: dict[int, str] = {}
    tied: set[bytes] = set()
    obsolete: set[bytes] = set()
    for (i, nks), result in zip(table.rotations, results, strict=True):
        obsolete.update(NodeKeySignature.from_cbor(nks).previous_node_keys())
        if not result.visible:
            dropped[i] = result.reason
            (tied if result.reason == ROTATION_TIE else obsolete).add(table.node_key(i))
    unsigned = set(table.unsigned)
    for i in table.find_node_keys(tied | obsolete):
        if i in dropped or i in reasons or i in unsigned:
            continue
        dropped[i] = ROTATION_TIE if table.node_key(i) in tied else ROTATED
    return dropped


@lru_cache(maxsize=64)
def _forgeable_text(weak: WeakWrappingKey) -> str:
    what = ("all-zero (signed without a rotation key)" if weak.all_zero
            else "a small-order point")
    where = ("its wrapping key" if weak.depth == 0 else
             f"the wrapping key of level {weak.depth} of its rotation chain (a "
             f"{sig_kind_name(weak.kind)} signature)")
    return f"{where} is {what}: anyone can sign a rotation to any node key on top of it"


def forgeable_warning(signature: bytes) -> str:
    """Why anyone could sign a rotation on top of some level of `signature` without any
    secret, or "": a wrapping key that is all-zero (what `tailscale lock sign nodekey:…`
    without a rotation key stores) or another small-order point, non-canonical encodings
    included, at the signature itself or anywhere down its rotation chain (a rotation signed on
    top of an earlier level is as valid as the node's own). A warning only: tailscaled accepts
    these signatures. (`audit` gets the same from C for canonical bytes.)"""
    try:
        nks = NodeKeySignature.from_cbor(signature)
    except DecodeError:
        return ""
    weak = weak_wrapping_key_of(nks)
    return _forgeable_text(weak) if weak is not None else ""


# -- reports, written a batch of peers at a time ------------------------------------------------

_BATCH = 2048  # peers per write


def _node_key_text(report: AuditReport, i: int) -> str:
    return "nodekey:" + report.table.node_key(i).hex()


def _who(report: AuditReport, i: int) -> str:
    line = report.table.lines[i]
    name = report.table.name(i)
    where = f"line {line}: " if line else ""
    named = f"{clip_input(name)} " if name else ""
    return f"{where}{named}{_node_key_text(report, i)}"


def _write_lines(out: TextIO, lines: Iterable[str]) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= _BATCH:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")


def write_human(report: AuditReport, out: TextIO) -> None:
    bad, exempt = report.unauthorized, sorted(report.exempt)
    disagreements = report.disagreements
    n = len(report)
    head = [
        f"authority head: {format_aum_hash(report.head)} ({report.trusted_keys} trusted keys)",
        f"peers from: {report.source}",
        f"{n} peers: {n - len(bad) - len(exempt)} authorized, "
        f"{len(bad)} not authorized" + (f", {len(exempt)} exempt" if exempt else ""),
    ]
    _write_lines(out, head)
    _write_lines(out, (f"{_who(report, i)}: {report.reasons[i]}" for i in bad))
    if exempt:
        _write_lines(out, [f"NOTE: {len(exempt)} peer(s) the node keeps without a signature, "
                           "not subject to tailnet lock (the coordination server's "
                           "UnsignedPeerAPIOnly: peer API only, no network access):"])
        _write_lines(out, (f"  {_who(report, i)}" for i in exempt))
    if report.forgeable:
        _write_lines(out, [f"WARNING: {len(report.forgeable)} signature(s) anyone can extend "
                           "with a forged rotation (re-sign these nodes with a rotation key: "
                           "tka sign nodekey:… tlpub:…):"])
        _write_lines(out, (f"  {_who(report, i)}: {text}"
                           for i, text in report.forgeable.items()))
    if disagreements:
        _write_lines(out, [f"DISAGREEMENT: {len(disagreements)} peer(s) where the node's own "
                           "verdict differs from this audit's (a bug in tka or in tailscaled: "
                           "please report it):"])
        _write_lines(out, (f"  {_who(report, i)}: the node "
                           f"{'shows' if report.table.node_visible(i) else 'filters'} it"
                           for i in disagreements))


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


_NONE = _json_str("")
# A batch of names made of _JSON_KEPT bytes only (what encode_basestring_ascii leaves as it
# is: printable ASCII but `"` and `\`), or for a page without any of _HTML_ESCAPED (what
# html.escape changes), is written as it is, without a call for each name.
_JSON_KEPT = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
_HTML_ESCAPED = tuple(bytes([c]) for c in b"&<>\"'")
# One peer of write_json up to its node key (the name quoted or not), then what follows it.
_JSON_HEAD = '    {\n      "Line": %d,\n      "Name": %s,\n      "NodeKey": "nodekey:%s"%s'
_JSON_HEAD_PLAIN = '    {\n      "Line": %d,\n      "Name": "%s",\n      "NodeKey": "nodekey:%s"%s'
_HTML_ROW = "<tr class=%s><td>%s</td><td><code>nodekey:%s</code></td>%s"


def _node_visible_of_flags(flags: int) -> bool | None:
    """`PeerTable.node_visible` of a peer with these flags."""
    return None if not flags & (_NODE_VISIBLE | _NODE_FILTERED) else bool(flags & _NODE_VISIBLE)


def _special(report: AuditReport) -> list[int]:
    """The peers that are not authorized or carry a warning, in order: the others are written
    from one text each per node verdict."""
    return sorted(report.reasons.keys() | report.forgeable.keys())


def _formatted(template: str, separator: str, columns: Iterable[Iterable[object]],
               count: int) -> str:
    """`template` filled in with one row of `columns` for each of `count` rows, joined with
    `separator`: one %-formatting of the whole batch, with no Python step per row."""
    return separator.join([template] * count) % tuple(chain.from_iterable(zip(*columns,
                                                                              strict=True)))


def write_json(report: AuditReport, out: TextIO) -> None:
    """The document `json.dumps(..., indent=2)` makes of the report, written a batch of peers
    at a time."""
    n = len(report)
    out.write(
        "{\n"
        f'  "SchemaVersion": {_json_str(SCHEMA_VERSION)},\n'
        f'  "Input": {_json_str(report.source)},\n'
        f'  "Head": {_json_str(format_aum_hash(report.head))},\n'
        f'  "TrustedKeys": {report.trusted_keys},\n'
    )
    if n == 0:
        out.write('  "Peers": [],\n')
    else:
        out.write('  "Peers": [\n')
        table, reasons, forgeable, exempt = report.table, report.reasons, report.forgeable, \
            report.exempt
        verdict_of = {None: "null", True: '"visible"', False: '"filtered"'}
        # What follows the node key of an authorized peer without a warning (nearly all of
        # them), for each node verdict: made once.
        plain = {
            verdict: ',\n      "Authorized": true,\n      "Reason": "",\n      "Forgeable": "",\n'
            f'      "NodeVerdict": {text},\n      "Visible": true,\n      "Exempt": false\n    }}'
            for verdict, text in verdict_of.items()
        }
        plain_of_flags = [plain[_node_visible_of_flags(f)] for f in range(256)]
        special = _special(report)
        for start in range(0, n, _BATCH):
            stop = min(n, start + _BATCH)
            flags = table.node_flags(start, stop)
            tails = ([plain[None]] * (stop - start) if flags is None
                     else list(map(plain_of_flags.__getitem__, flags)))
            for i in special[bisect_left(special, start) : bisect_left(special, stop)]:
                authorized = i not in reasons
                tails[i - start] = (
                    ",\n"
                    f'      "Authorized": {_json_bool(authorized)},\n'
                    f'      "Reason": {_json_str(reasons[i]) if not authorized else _NONE},\n'
                    f'      "Forgeable": {_json_str(forgeable[i]) if i in forgeable else _NONE},\n'
                    f'      "NodeVerdict": {verdict_of[table.node_visible(i)]},\n'
                    f'      "Visible": {_json_bool(authorized or i in exempt)},\n'
                    f'      "Exempt": {_json_bool(i in exempt)}\n'
                    "    }"
                )
            names = table.names(start, stop)
            if table.name_bytes(start, stop).translate(None, _JSON_KEPT):
                template, names = _JSON_HEAD, list(map(_json_str, names))
            else:
                template = _JSON_HEAD_PLAIN
            out.write(_formatted(template, ",\n", (table.lines[start:stop], names,
                                                    table.node_key_hexes(start, stop), tails),
                                 stop - start) + ("\n" if stop == n else ",\n"))
        out.write("  ],\n")
    visible = n - len(report.reasons) + len(report.exempt)
    out.write(
        f'  "Visible": {visible},\n'
        f'  "Filtered": {len(report.reasons) - len(report.exempt)},\n'
        f'  "Forgeable": {len(report.forgeable)},\n'
        f'  "Disagreements": {len(report.disagreements)}\n'
        "}\n"
    )


def _html_tail(verdict: str, reason: str, node: str, warning: str) -> str:
    """A peer's row of write_html after its node key."""
    from html import escape as e

    return f"<td>{verdict}</td><td>{e(reason)}</td><td>{node}</td><td>{e(warning)}</td></tr>"


def _html_node(node_visible: bool | None) -> str:
    return "" if node_visible is None else "shows it" if node_visible else "filters it"


def write_html(report: AuditReport, authority: Authority, out: TextIO) -> None:
    """One self-contained page (inline CSS, no scripts); every name is escaped, since peers'
    names come from the network."""
    from html import escape as e  # loaded only for a page

    table = report.table
    disagreements = report.disagreements
    keys = "".join(f"<li><code>{e(format_tlpub(k.public or b''))}</code> ({k.votes} votes)</li>"
                   for k in authority.keys())
    out.write(
        "<!doctype html><html><head><meta charset=utf-8><title>tka audit</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:.2em .6em;border-bottom:1px solid"
        " #ddd;text-align:left}tr.bad{background:#fee}tr.odd{background:#fc6}"
        "code{font-size:.85em}</style></head><body>"
        f"<h1>Tailnet-lock audit</h1><p>Authority head <code>{format_aum_hash(report.head)}"
        f"</code>; peers from {e(report.source)}; {len(report)} peers, "
        f"{len(report.unauthorized)} dropped, {len(report.exempt)} exempt, "
        f"{len(report.forgeable)} forgeable, {len(disagreements)} disagreements with the "
        f"node.</p><h2>Trusted keys</h2><ul>{keys}</ul><h2>Peers</h2><table><tr><th>name</th>"
        "<th>node key</th><th>verdict</th><th>reason</th><th>the node</th><th>warning</th></tr>"
    )
    # An authorized peer without a warning (nearly all of them) is kept: its row's class and
    # what follows its node key depend only on the node's verdict.
    state_of_flags, tail_of_flags = [], []
    for f in range(256):
        node_visible = _node_visible_of_flags(f)
        state_of_flags.append("odd" if node_visible is False else "ok")
        tail_of_flags.append(_html_tail("authorized", "", _html_node(node_visible), ""))
    special = _special(report)
    n = len(report)
    for start in range(0, n, _BATCH):
        stop = min(n, start + _BATCH)
        flags = table.node_flags(start, stop)
        if flags is None:
            states, tails = ["ok"] * (stop - start), [tail_of_flags[0]] * (stop - start)
        else:
            states = list(map(state_of_flags.__getitem__, flags))
            tails = list(map(tail_of_flags.__getitem__, flags))
        for i in special[bisect_left(special, start) : bisect_left(special, stop)]:
            visible = report.visible(i)
            node_visible = table.node_visible(i)
            states[i - start] = ("odd" if node_visible is not None and node_visible != visible
                                 else "ok" if visible else "bad")
            verdict = ("authorized" if report.authorized(i)
                       else "exempt" if i in report.exempt else "dropped")
            tails[i - start] = _html_tail(verdict, report.reasons.get(i, ""),
                                          _html_node(node_visible), report.forgeable.get(i, ""))
        names = table.names(start, stop)
        block = table.name_bytes(start, stop)
        if any(c in block for c in _HTML_ESCAPED):
            names = list(map(e, names))
        # A node key's text is `nodekey:` and hex digits: nothing to escape.
        out.write(_formatted(_HTML_ROW, "", (states, names, table.node_key_hexes(start, stop),
                                             tails), stop - start))
    out.write("</table>")
    if disagreements:
        items = "".join(f"<li>{e(table.name(i))} <code>{e(_node_key_text(report, i))}"
                        f"</code>: the node {'shows' if table.node_visible(i) else 'filters'} it"
                        "</li>" for i in disagreements)
        out.write("<h2>Disagreements with the node</h2><p>The node's own verdict differs "
                  f"from this audit's: a bug in tka or in tailscaled.</p><ul>{items}</ul>")
    if report.forgeable:
        items = "".join(f"<li>{e(table.name(i))} <code>{e(_node_key_text(report, i))}"
                        f"</code>: {e(text)}</li>" for i, text in report.forgeable.items())
        out.write("<h2>Forgeable signatures</h2><p>Anyone can extend these with a forged "
                  f"rotation; re-sign the nodes with a rotation key.</p><ul>{items}</ul>")
    out.write("</body></html>\n")
