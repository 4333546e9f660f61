"""The whole-input `tka audit` that signer/audit.py replaced, kept unchanged as the oracle
of tests/signer/test_audit_stream.py (reports compared byte for byte). What it was:

Auditing node-key signatures against an authority, offline: which peers a node keeps under
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
peer in one native `verify_peers` call, then the key-rotation rule.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import string
from dataclasses import dataclass
from pathlib import Path

from signer.authority_dir import open_authority_dir
from signer.echo import clip_input
from signer.status_json import NodeStatus
from verifier.authority import Authority
from verifier.ed25519 import public_key_class
from verifier.errors import DecodeError, StorageError
from verifier.netmap_filter import filter_netmap
from verifier.nks import NodeKeySignature, sig_kind_name
from verifier.textforms import format_aum_hash, format_node_public, format_tlpub, parse_node_public

_HEX = set(string.hexdigits)
# 1: Head, TrustedKeys, Peers[Line, NodeKey, Authorized, Reason]; 2 added Name, Forgeable,
# NodeVerdict and the counts. Within a version fields are only ever added (Input, Visible,
# Exempt and Filtered were, within 2), never renamed or removed.
SCHEMA_VERSION = "2"
INPUT_PEERS = "peers file"


@dataclass(frozen=True)
class PeerInput:
    line: int  # 0 when the peer came from a status document
    name: str
    node_key: bytes
    signature: bytes | None
    node_visible: bool | None = None  # what the node itself decided, when known
    signature_omitted: bool = False  # the status form leaves this peer's signature out


@dataclass(frozen=True)
class AuditedPeer:
    peer: PeerInput
    authorized: bool  # its signature authorizes its node key and the rotation rule keeps it
    reason: str
    forgeable: str
    exempt: bool = False  # kept without a signature: not subject to tailnet lock

    @property
    def visible(self) -> bool:
        """Whether the node keeps it: authorized, or exempt."""
        return self.authorized or self.exempt

    @property
    def disagrees(self) -> bool:
        return self.peer.node_visible is not None and self.peer.node_visible != self.visible


@dataclass(frozen=True)
class AuditReport:
    head: bytes
    trusted_keys: int
    peers: tuple[AuditedPeer, ...]
    source: str = INPUT_PEERS  # what the peers were read from

    @property
    def unauthorized(self) -> tuple[AuditedPeer, ...]:
        """The peers the node drops (exempt ones are kept)."""
        return tuple(p for p in self.peers if not p.visible)

    @property
    def exempt(self) -> tuple[AuditedPeer, ...]:
        return tuple(p for p in self.peers if p.exempt)

    @property
    def forgeable(self) -> tuple[AuditedPeer, ...]:
        return tuple(p for p in self.peers if p.forgeable)

    @property
    def disagreements(self) -> tuple[AuditedPeer, ...]:
        return tuple(p for p in self.peers if p.disagrees)


def open_authority_readonly(directory: Path) -> Authority:
    """The authority in `directory`, read into memory: nothing there is created or changed
    (signer.authority_dir; kept for `tka appliance`)."""
    return open_authority_dir(directory)


def _signature_bytes(text: str) -> bytes:
    if len(text) % 2 == 0 and set(text) <= _HEX:
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("the signature is neither hex nor standard base64") from None


def parse_peer_lines(text: str, source: str) -> list[PeerInput]:
    """A peers file; a bad line is a DecodeError naming `source:line`."""
    peers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        words = line.split()
        try:
            if len(words) != 2:
                raise DecodeError("expected `nodekey:<hex> <signature>`")
            peers.append(PeerInput(number, comment.strip(), parse_node_public(words[0]),
                                   _signature_bytes(words[1])))
        except DecodeError as err:
            raise DecodeError(f"{source}:{number}: {err}") from None
    return peers


def peers_from_status(status: NodeStatus, authority: Authority, source: str) -> list[PeerInput]:
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
    return [PeerInput(0, p.name, p.node_key, p.signature, p.visible, p.omitted)
            for p in status.peers]


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


def audit(authority: Authority, peers: list[PeerInput], source: str = INPUT_PEERS) -> AuditReport:
    results = filter_netmap(authority, [(p.node_key, p.signature) for p in peers])
    audited = []
    for p, r in zip(peers, results, strict=True):
        reason = r.reason
        exempt = False
        if p.signature is None and p.node_visible is not None:
            if p.signature_omitted:
                reason = FILTERED_UNSIGNED
            elif p.node_visible:
                reason, exempt = EXEMPT, True
            else:
                reason = NO_SIGNATURE
        warning = forgeable_warning(p.signature) if p.signature else ""
        audited.append(AuditedPeer(p, r.visible, reason, warning or r.forgeable, exempt))
    return AuditReport(
        head=bytes(authority.head),
        trusted_keys=len(authority.state.trusted_keys),
        peers=tuple(audited),
        source=source,
    )


def forgeable_warning(signature: bytes) -> str:
    """Why anyone could sign a rotation on top of some level of `signature` without any
    secret, or "": a wrapping key that is all-zero (what `tailscale lock sign nodekey:…`
    without a rotation key stores) or another small-order point, non-canonical encodings
    included, at the signature itself or anywhere down its rotation chain (a rotation signed on
    top of an earlier level is as valid as the node's own). A warning only: tailscaled accepts
    these signatures."""
    try:
        level: NodeKeySignature | None = NodeKeySignature.from_cbor(signature)
    except DecodeError:
        return ""
    depth = 0
    while level is not None:
        key = level.wrapping_pubkey
        if len(key) == 32 and (key == bytes(32) or public_key_class(key) == "small_order"):
            what = ("all-zero (signed without a rotation key)" if key == bytes(32)
                    else "a small-order point")
            where = ("its wrapping key" if depth == 0 else
                     f"the wrapping key of level {depth} of its rotation chain (a "
                     f"{sig_kind_name(level.kind)} signature)")
            return (f"{where} is {what}: anyone can sign a rotation to any node key on top "
                    "of it")
        level = level.nested
        depth += 1
    return ""


def _who(p: AuditedPeer) -> str:
    where = f"line {p.peer.line}: " if p.peer.line else ""
    name = f"{clip_input(p.peer.name)} " if p.peer.name else ""
    return f"{where}{name}{format_node_public(p.peer.node_key)}"


def report_human(report: AuditReport) -> str:
    bad, exempt = report.unauthorized, report.exempt
    lines = [
        f"authority head: {format_aum_hash(report.head)} ({report.trusted_keys} trusted keys)",
        f"peers from: {report.source}",
        f"{len(report.peers)} peers: {len(report.peers) - len(bad) - len(exempt)} authorized, "
        f"{len(bad)} not authorized" + (f", {len(exempt)} exempt" if exempt else ""),
    ]
    lines += [f"{_who(p)}: {p.reason}" for p in bad]
    if exempt:
        lines.append(f"NOTE: {len(exempt)} peer(s) the node keeps without a signature, not "
                     "subject to tailnet lock (the coordination server's UnsignedPeerAPIOnly: "
                     "peer API only, no network access):")
        lines += [f"  {_who(p)}" for p in exempt]
    if report.forgeable:
        lines.append(f"WARNING: {len(report.forgeable)} signature(s) anyone can extend with a "
                     "forged rotation (re-sign these nodes with a rotation key: tka sign "
                     "nodekey:… tlpub:…):")
        lines += [f"  {_who(p)}: {p.forgeable}" for p in report.forgeable]
    if report.disagreements:
        lines.append(f"DISAGREEMENT: {len(report.disagreements)} peer(s) where the node's own "
                     "verdict differs from this audit's (a bug in tka or in tailscaled: please "
                     "report it):")
        lines += [f"  {_who(p)}: the node {'shows' if p.peer.node_visible else 'filters'} it"
                  for p in report.disagreements]
    return "\n".join(lines) + "\n"


def report_json(report: AuditReport) -> str:
    doc = {
        "SchemaVersion": SCHEMA_VERSION,
        "Input": report.source,
        "Head": format_aum_hash(report.head),
        "TrustedKeys": report.trusted_keys,
        "Peers": [
            {
                "Line": p.peer.line,
                "Name": p.peer.name,
                "NodeKey": format_node_public(p.peer.node_key),
                "Authorized": p.authorized,
                "Reason": p.reason,
                "Forgeable": p.forgeable,
                "NodeVerdict": None if p.peer.node_visible is None
                else ("visible" if p.peer.node_visible else "filtered"),
                "Visible": p.visible,
                "Exempt": p.exempt,
            }
            for p in report.peers
        ],
        "Visible": sum(p.visible for p in report.peers),
        "Filtered": len(report.unauthorized),
        "Forgeable": len(report.forgeable),
        "Disagreements": len(report.disagreements),
    }
    return json.dumps(doc, indent=2) + "\n"


def report_html(report: AuditReport, authority: Authority) -> str:
    """One self-contained page (inline CSS, no scripts); every name is escaped, since peers'
    names come from the network."""
    e = html.escape
    rows = []
    for p in report.peers:
        state = "odd" if p.disagrees else ("ok" if p.visible else "bad")
        node = ("" if p.peer.node_visible is None
                else "shows it" if p.peer.node_visible else "filters it")
        rows.append(
            f"<tr class={state}><td>{e(p.peer.name)}</td><td><code>"
            f"{e(format_node_public(p.peer.node_key))}</code></td><td>"
            f"{'authorized' if p.authorized else 'exempt' if p.exempt else 'dropped'}</td><td>"
            f"{e(p.reason)}</td><td>{e(node)}</td><td>{e(p.forgeable)}</td></tr>"
        )
    keys = "".join(f"<li><code>{e(format_tlpub(k.public or b''))}</code> ({k.votes} votes)</li>"
                   for k in authority.keys())
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>tka audit</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:.2em .6em;border-bottom:1px solid"
        " #ddd;text-align:left}tr.bad{background:#fee}tr.odd{background:#fc6}"
        "code{font-size:.85em}</style></head><body>"
        f"<h1>Tailnet-lock audit</h1><p>Authority head <code>{format_aum_hash(report.head)}"
        f"</code>; peers from {e(report.source)}; {len(report.peers)} peers, "
        f"{len(report.unauthorized)} dropped, {len(report.exempt)} exempt, "
        f"{len(report.forgeable)} forgeable, {len(report.disagreements)} disagreements with the "
        f"node.</p><h2>Trusted keys</h2><ul>{keys}</ul><h2>Peers</h2><table><tr><th>name</th>"
        "<th>node key</th><th>verdict</th><th>reason</th><th>the node</th><th>warning</th></tr>"
        + "".join(rows) + "</table>" + _html_warnings(report) + "</body></html>\n"
    )


def _html_warnings(report: AuditReport) -> str:
    e = html.escape
    parts = []
    if report.disagreements:
        items = "".join(f"<li>{e(p.peer.name)} <code>{e(format_node_public(p.peer.node_key))}"
                        f"</code>: the node {'shows' if p.peer.node_visible else 'filters'} it"
                        "</li>" for p in report.disagreements)
        parts.append("<h2>Disagreements with the node</h2><p>The node's own verdict differs "
                     f"from this audit's: a bug in tka or in tailscaled.</p><ul>{items}</ul>")
    if report.forgeable:
        items = "".join(f"<li>{e(p.peer.name)} <code>{e(format_node_public(p.peer.node_key))}"
                        f"</code>: {e(p.forgeable)}</li>" for p in report.forgeable)
        parts.append("<h2>Forgeable signatures</h2><p>Anyone can extend these with a forged "
                     "rotation; re-sign the nodes with a rotation key.</p>"
                     f"<ul>{items}</ul>")
    return "".join(parts)
