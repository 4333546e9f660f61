"""Auditing node-key signatures against an authority, offline: which peers of a netmap (or of
any list an auditor collected) a tailnet-lock authority really authorizes, and why not.

The authority comes from a directory in Tailscale's filesystem layout (a copy of a real node's
`tka` directory, or a node state directory of ours), opened read-only. The peers come from a
text file, one per line: `nodekey:<hex> <signature>`, the signature as in a netmap's
KeySignature field (standard base64) or as hex; blank lines and `#` comments are skipped.
All of them are checked in one `verify_peers` call (the native bulk path).
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from dataclasses import dataclass
from pathlib import Path

from signer.render import clip_input
from verifier.authority import Authority
from verifier.errors import DecodeError, StorageError
from verifier.peers import PeerVerdict, verify_peers
from verifier.storage.filesystem import FilesystemStorage
from verifier.textforms import format_aum_hash, format_node_public, parse_node_public

_HEX = set(string.hexdigits)


@dataclass(frozen=True)
class AuditedPeer:
    line: int
    node_key: bytes
    verdict: PeerVerdict


@dataclass(frozen=True)
class AuditReport:
    head: bytes
    trusted_keys: int
    peers: tuple[AuditedPeer, ...]

    @property
    def unauthorized(self) -> tuple[AuditedPeer, ...]:
        return tuple(p for p in self.peers if not p.verdict.authorized)


def open_authority_readonly(directory: Path) -> Authority:
    """Opens an authority directory without creating or changing anything in it."""
    if not directory.is_dir():
        raise StorageError(f"no authority directory at {clip_input(directory)}")
    return Authority.open(FilesystemStorage(directory))


def _signature_bytes(text: str) -> bytes:
    if len(text) % 2 == 0 and set(text) <= _HEX:
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("the signature is neither hex nor standard base64") from None


def parse_peer_lines(text: str, source: str) -> list[tuple[int, bytes, bytes]]:
    """(line number, node key, NKS bytes) per peer line; a bad line is a DecodeError naming
    `source:line`."""
    peers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        try:
            if len(words) != 2:
                raise DecodeError("expected `nodekey:<hex> <signature>`")
            peers.append((number, parse_node_public(words[0]), _signature_bytes(words[1])))
        except DecodeError as err:
            raise DecodeError(f"{source}:{number}: {err}") from None
    return peers


def audit(authority: Authority, peers: list[tuple[int, bytes, bytes]]) -> AuditReport:
    verdicts = verify_peers(authority, [(node_key, nks) for _, node_key, nks in peers])
    return AuditReport(
        head=bytes(authority.head),
        trusted_keys=len(authority.state.trusted_keys),
        peers=tuple(
            AuditedPeer(line, node_key, verdict)
            for (line, node_key, _), verdict in zip(peers, verdicts, strict=True)
        ),
    )


def report_human(report: AuditReport) -> str:
    bad = report.unauthorized
    lines = [
        f"authority head: {format_aum_hash(report.head)} ({report.trusted_keys} trusted keys)",
        f"{len(report.peers)} peers: {len(report.peers) - len(bad)} authorized, "
        f"{len(bad)} not authorized",
    ]
    lines += [
        f"line {p.line}: {format_node_public(p.node_key)}: {p.verdict.reason}" for p in bad
    ]
    return "\n".join(lines) + "\n"


def report_json(report: AuditReport) -> str:
    doc = {
        "Head": format_aum_hash(report.head),
        "TrustedKeys": report.trusted_keys,
        "Peers": [
            {
                "Line": p.line,
                "NodeKey": format_node_public(p.node_key),
                "Authorized": p.verdict.authorized,
                "Reason": p.verdict.reason,
            }
            for p in report.peers
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
