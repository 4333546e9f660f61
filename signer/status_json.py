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
from collections.abc import Callable
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
    except RecursionError:  # "[[[[…": nested deeper than any status document
        raise DecodeError(f"{source} nests too deeply to be a `tailscale lock status --json` "
                          "document") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"{source} is not a `tailscale lock status --json` document")
    version = doc.get("SchemaVersion")
    if version != SCHEMA:
        raise DecodeError(f"{source}: SchemaVersion {json.dumps(version)[:20]} is not one this "
                          f"tka reads (\"{SCHEMA}\")")
    if doc.get("Enabled") is not True:
        raise DecodeError(f"{source}: tailnet lock is not enabled on that node")
    where = f"{source}: "
    head_bytes = _parsed(doc, "Head", parse_aum_hash, where)
    node_key = _parsed(doc, "NodeKey", parse_node_public, where)
    trusted = frozenset(
        _parsed(k, "Public", parse_nl_public, f"{where}TrustedKeys[{i}]: ")
        for i, k in enumerate(_field(doc, "TrustedKeys", list, where))
    )
    peers: list[StatusPeer] = []
    for group, visible in (("VisiblePeers", True), ("FilteredPeers", False)):
        entries = doc.get(group)
        if entries is None:  # tolerated: an empty list written as null
            entries = []
        if not isinstance(entries, list):
            raise DecodeError(f"{where}{group} is not a list")
        for i, entry in enumerate(entries):
            at = f"{where}{group}[{i}]: "
            if not isinstance(entry, dict):
                raise DecodeError(f"{at}not an object")
            key = _parsed(entry, "NodeKey", parse_node_public, at)
            signature = None
            if visible:
                signature = _signature(_field(entry, "NodeKeySignature", dict, at), at).to_cbor()
            name = entry.get("DNSName")
            peers.append(StatusPeer(str(name) if isinstance(name, str) else "", key, signature,
                                    visible))
    return NodeStatus(head_bytes, trusted, node_key, tuple(peers))


_JSON_TYPES: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}


def _field(doc: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(doc, dict):
        raise DecodeError(f"{where}not an object")
    value = doc.get(name)
    if not isinstance(value, kind):
        raise DecodeError(f"{where}{name} is missing or not {_JSON_TYPES[kind]}")
    return value


def _parsed(doc: Any, name: str, parse: Callable[[str], Any], where: str) -> bytes:
    """A string field in one of Tailscale's text forms, as bytes."""
    try:
        return bytes(parse(_field(doc, name, str, where)))
    except DecodeError as err:
        text = str(err)
        raise DecodeError(text if text.startswith(where) else f"{where}{name}: {text}") from None


def _tlpub_bytes(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("tlpub:"):
        raise DecodeError(f"{what} is not tlpub:<hex>")
    try:
        return bytes.fromhex(text[len("tlpub:"):])
    except ValueError:
        raise DecodeError(f"{what} is not tlpub:<hex>") from None


def _signature(doc: dict[str, Any], where: str, depth: int = 0) -> NodeKeySignature:
    if depth > 16:
        raise DecodeError(f"{where}NodeKeySignature nests more than 16 levels deep")
    kind = _KINDS.get(str(doc.get("SigKind")))
    if kind is None:
        raise DecodeError(f"{where}SigKind {json.dumps(doc.get('SigKind'))[:20]} is unknown")
    try:
        signature = base64.b64decode(_field(doc, "Signature", str, where), altchars=b"-_",
                                     validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where}Signature is not URL-safe base64") from None
    nested = doc.get("Nested")
    if nested is not None and not isinstance(nested, dict):
        raise DecodeError(f"{where}Nested is not an object")
    return NodeKeySignature(
        kind=kind,
        pubkey=_optional_tlpub(doc, "PublicKey", where),
        key_id=_optional_tlpub(doc, "KeyID", where),
        signature=signature,
        nested=None if nested is None else _signature(
            nested, where if depth else f"{where}Nested: ", depth + 1),
        wrapping_pubkey=_optional_tlpub(doc, "WrappingPublicKey", where),
    )


def _optional_tlpub(doc: dict[str, Any], name: str, where: str) -> bytes:
    """A `tlpub:<hex>` field Tailscale omits when empty (`omitzero`)."""
    value = doc.get(name)
    return b"" if value is None or value == "" else _tlpub_bytes(value, f"{where}{name}")
