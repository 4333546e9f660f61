"""Reading what a real node says it sees: the output of `tailscale lock status --json`
(SchemaVersion "1").

Visible peers carry their node-key signature, decoded into fields (SigKind, PublicKey, KeyID,
Signature in URL-safe base64, Nested, WrappingPublicKey); the bytes the node verified are its
canonical CBOR encoding, which is rebuilt from those fields (tailscaled accepts only what its
CBOR decoder produced, and re-encoding a decoded signature gives the same bytes). Filtered
peers carry no signature at all. Anything else in the document (another schema, missing or
mistyped fields) is a DecodeError naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from verifier.errors import DecodeError
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import parse_aum_hash, parse_nl_public, parse_node_public

SCHEMA = "1"
_KINDS = {"direct": SigKind.DIRECT, "rotation": SigKind.ROTATION,
          "credential": SigKind.CREDENTIAL}


@dataclass(frozen=True)
class StatusPeer:
    name: str
    node_key: bytes
    signature: bytes | None  # canonical NKS bytes; None for a filtered peer
    visible: bool  # what the node itself decided


@dataclass(frozen=True)
class NodeStatus:
    head: bytes
    trusted_keys: frozenset[bytes]
    node_key: bytes
    peers: tuple[StatusPeer, ...]


def parse_status(text: str, source: str) -> NodeStatus:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise DecodeError(f"{source} is not JSON ({err}); give it the output of "
                          "`tailscale lock status --json`") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"{source} is not a `tailscale lock status --json` document")
    version = doc.get("SchemaVersion")
    if version != SCHEMA:
        raise DecodeError(f"{source}: SchemaVersion {json.dumps(version)[:20]} is not one this "
                          f"tka reads (\"{SCHEMA}\")")
    if doc.get("Enabled") is not True:
        raise DecodeError(f"{source}: tailnet lock is not enabled on that node")
    where = f"{source}: "
    head = _field(doc, "Head", str, where)
    try:
        head_bytes = bytes(parse_aum_hash(head))
        node_key = parse_node_public(_field(doc, "NodeKey", str, where))
        trusted = frozenset(
            parse_nl_public(_field(k, "Public", str, f"{where}TrustedKeys[]: "))
            for k in _field(doc, "TrustedKeys", list, where)
        )
    except DecodeError as err:
        raise DecodeError(f"{where}{err}") from None
    peers: list[StatusPeer] = []
    for group, visible in (("VisiblePeers", True), ("FilteredPeers", False)):
        entries = doc.get(group)
        if entries is None:  # Go writes null for an empty list
            entries = []
        if not isinstance(entries, list):
            raise DecodeError(f"{where}{group} is not a list")
        for i, entry in enumerate(entries):
            at = f"{where}{group}[{i}]: "
            if not isinstance(entry, dict):
                raise DecodeError(f"{at}not an object")
            try:
                key = parse_node_public(_field(entry, "NodeKey", str, at))
                signature = None
                if visible:
                    sig = _signature(_field(entry, "NodeKeySignature", dict, at), at)
                    signature = sig.to_cbor()
            except DecodeError as err:
                raise DecodeError(err if str(err).startswith(at) else f"{at}{err}") from None
            name = entry.get("DNSName")
            peers.append(StatusPeer(str(name) if isinstance(name, str) else "", key, signature,
                                    visible))
    return NodeStatus(head_bytes, trusted, node_key, tuple(peers))


def _field(doc: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise DecodeError(f"{where}{name} is missing or not a {kind.__name__}")
    return value


def _tlpub_bytes(text: str, what: str) -> bytes:
    if not text.startswith("tlpub:"):
        raise DecodeError(f"{what} is not tlpub:<hex>")
    try:
        return bytes.fromhex(text[len("tlpub:"):])
    except ValueError:
        raise DecodeError(f"{what} is not tlpub:<hex>") from None


def _signature(doc: dict[str, Any], where: str, depth: int = 0) -> NodeKeySignature:
    if depth > 16:
        raise DecodeError(f"{where}NodeKeySignature nests too deeply")
    kind = _KINDS.get(str(doc.get("SigKind")))
    if kind is None:
        raise DecodeError(f"{where}SigKind {json.dumps(doc.get('SigKind'))[:20]} is unknown")
    try:
        signature = base64.urlsafe_b64decode(_field(doc, "Signature", str, where))
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where}Signature is not URL-safe base64") from None
    nested = doc.get("Nested")
    return NodeKeySignature(
        kind=kind,
        pubkey=_tlpub_bytes(doc["PublicKey"], "PublicKey") if doc.get("PublicKey") else b"",
        key_id=_tlpub_bytes(doc["KeyID"], "KeyID") if doc.get("KeyID") else b"",
        signature=signature,
        nested=_signature(nested, where, depth + 1) if isinstance(nested, dict) else None,
        wrapping_pubkey=(_tlpub_bytes(doc["WrappingPublicKey"], "WrappingPublicKey")
                         if doc.get("WrappingPublicKey") else b""),
    )
