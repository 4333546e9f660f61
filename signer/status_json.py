"""Reading what a real node says it sees, in either of the two forms Tailscale prints it:

- `tailscale lock status --json` (and `--json=1`) of current clients: the versioned envelope,
  `"SchemaVersion": "1"` (tslockjsonv1.StatusResponse). Visible peers carry their node-key
  signature decoded into fields (SigKind as a name, PublicKey/KeyID/WrappingPublicKey as
  `tlpub:<hex>`, Signature in URL-safe base64, Nested); filtered peers carry no signature.
- ipnstate.TailnetLockStatus marshalled as it is, with no SchemaVersion: what tailscaled's
  LocalAPI answers at `/localapi/v0/tka/status`, and what `tailscale lock status --json`
  printed before the versioned envelope. Signatures are tka.NodeKeySignature's own fields
  (SigKind a number; Pubkey, KeyID, Signature, WrappingPubkey in standard base64), filtered
  peers included; Head is an array of 32 numbers.

Neither form carries a signature's bytes, only its decoded fields; the bytes are rebuilt as
their canonical CBOR encoding. That is the signature the node verified: tailscaled decodes a
signature and checks it over the re-encoding of the decoded fields, so the verdict depends on
those fields alone. The zero signature (SigKind "invalid"/0 and nothing else) is what the node
shows for a peer with no signature or one it could not decode: no signature here.
Anything else in the document (another schema, missing or mistyped fields) is a DecodeError
naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

from verifier.errors import DecodeError
from verifier.fields import Frozen
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import parse_aum_hash, parse_nl_public, parse_node_public

SCHEMA = "1"
FORM_V1 = "tailscale lock status --json (SchemaVersion 1)"
FORM_IPNSTATE = "ipnstate.TailnetLockStatus (LocalAPI tka/status, or an older --json)"
_KINDS = {"invalid": SigKind.INVALID, "direct": SigKind.DIRECT, "rotation": SigKind.ROTATION,
          "credential": SigKind.CREDENTIAL}
_OTHER_KIND = re.compile(r"Sig\?<([0-9]{1,3})>")  # Go's String() of a kind without a name
_MAX_DEPTH = 16
_ZERO = NodeKeySignature(kind=SigKind.INVALID)


_set = object.__setattr__


class StatusPeer(Frozen):
    __match_args__ = ("name", "node_key", "signature", "visible", "omitted")
    __slots__ = __match_args__
    name: str
    node_key: bytes
    signature: bytes | None  # canonical NKS bytes; None: no signature (see `omitted`)
    visible: bool  # what the node itself decided
    omitted: bool  # the form leaves this peer's signature out (filtered, SchemaVersion 1)

    def __init__(
        self,
        name: str,
        node_key: bytes,
        signature: bytes | None,
        visible: bool,
        omitted: bool = False,
    ) -> None:
        _set(self, "name", name)
        _set(self, "node_key", node_key)
        _set(self, "signature", signature)
        _set(self, "visible", visible)
        _set(self, "omitted", omitted)


class NodeStatus(Frozen):
    __match_args__ = ("head", "trusted_keys", "node_key", "peers", "form")
    __slots__ = __match_args__
    head: bytes
    trusted_keys: frozenset[bytes]
    node_key: bytes
    peers: tuple[StatusPeer, ...]
    form: str

    def __init__(
        self,
        head: bytes,
        trusted_keys: frozenset[bytes],
        node_key: bytes,
        peers: tuple[StatusPeer, ...],
        form: str = FORM_V1,
    ) -> None:
        _set(self, "head", head)
        _set(self, "trusted_keys", trusted_keys)
        _set(self, "node_key", node_key)
        _set(self, "peers", peers)
        _set(self, "form", form)


def parse_status(text: str, source: str) -> NodeStatus:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise DecodeError(f"{source} is not JSON ({err}); give it the output of "
                          "`tailscale lock status --json`") from None
    except RecursionError:  # "[[[[…": nested deeper than any status document
        raise DecodeError(f"{source} nests too deeply to be a `tailscale lock status --json` "
                          "document") from None
    if not isinstance(doc, dict) or not ("SchemaVersion" in doc or "Enabled" in doc):
        raise DecodeError(f"{source} is not a `tailscale lock status --json` document")
    if "SchemaVersion" not in doc:
        try:
            return _parse_ipnstate(doc, f"{source}: ")
        except DecodeError as err:
            raise DecodeError(f"{err} (a status without SchemaVersion is read as "
                              "ipnstate.TailnetLockStatus)") from None
    version = doc.get("SchemaVersion")
    if version != SCHEMA:
        raise DecodeError(f"{source}: SchemaVersion {json.dumps(version)[:20]} is not one this "
                          f"tka reads (\"{SCHEMA}\")")
    where = f"{source}: "
    _check_enabled(doc, where)
    head_bytes = _parsed(doc, "Head", parse_aum_hash, where)
    node_key = _parsed(doc, "NodeKey", parse_node_public, where)
    trusted = frozenset(
        _parsed(k, "Public", parse_nl_public, f"{where}TrustedKeys[{i}]: ")
        for i, k in enumerate(_field(doc, "TrustedKeys", list, where))
    )
    peers: list[StatusPeer] = []
    for group, visible in (("VisiblePeers", True), ("FilteredPeers", False)):
        for at, entry in _entries(doc, group, where):
            key = _parsed(entry, "NodeKey", parse_node_public, at)
            if visible:
                nks = _signature(_field(entry, "NodeKeySignature", dict, at), at, _V1)
                peer = StatusPeer(_name(entry, "DNSName"), key, _bytes_of(nks), True)
            else:
                peer = StatusPeer(_name(entry, "DNSName"), key, None, False, omitted=True)
            peers.append(peer)
    return NodeStatus(head_bytes, trusted, node_key, tuple(peers), FORM_V1)


def _parse_ipnstate(doc: dict[str, Any], where: str) -> NodeStatus:
    _check_enabled(doc, where)
    head = doc.get("Head")
    if (not isinstance(head, list) or len(head) != 32
            or not all(type(b) is int and 0 <= b <= 255 for b in head)):
        raise DecodeError(f"{where}Head is missing or not an array of 32 bytes")
    node_key = _parsed(doc, "NodeKey", parse_node_public, where)
    trusted_list = doc.get("TrustedKeys")
    if trusted_list is not None and not isinstance(trusted_list, list):
        raise DecodeError(f"{where}TrustedKeys is not a list")
    trusted = frozenset(
        _parsed(k, "Key", parse_nl_public, f"{where}TrustedKeys[{i}]: ")
        for i, k in enumerate(trusted_list or [])
    )
    peers: list[StatusPeer] = []
    for group, visible in (("VisiblePeers", True), ("FilteredPeers", False)):
        for at, entry in _entries(doc, group, where):
            key = _parsed(entry, "NodeKey", parse_node_public, at)
            nks = _signature(_field(entry, "NodeKeySignature", dict, at), at, _IPNSTATE)
            peers.append(StatusPeer(_name(entry, "Name"), key, _bytes_of(nks), visible))
    return NodeStatus(bytes(head), trusted, node_key, tuple(peers), FORM_IPNSTATE)


def _check_enabled(doc: dict[str, Any], where: str) -> None:
    enabled = doc.get("Enabled")
    if not isinstance(enabled, bool):
        raise DecodeError(f"{where}Enabled is missing or not true/false")
    if not enabled:
        raise DecodeError(f"{where}tailnet lock is not enabled on that node")


def _entries(doc: dict[str, Any], group: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    entries = doc.get(group)
    if entries is None:  # tolerated: an empty list written as null (or left out)
        entries = []
    if not isinstance(entries, list):
        raise DecodeError(f"{where}{group} is not a list")
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}{group}[{i}]: "
        if not isinstance(entry, dict):
            raise DecodeError(f"{at}not an object")
        out.append((at, entry))
    return out


def _name(entry: dict[str, Any], field: str) -> str:
    name = entry.get(field)
    return name if isinstance(name, str) else ""


def _bytes_of(nks: NodeKeySignature) -> bytes | None:
    """The canonical encoding, or None for the zero signature (the node had none it could
    decode)."""
    return None if nks == _ZERO else nks.to_cbor()


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


class _Form(Frozen):
    """How one form spells a node-key signature."""

    __match_args__ = ("pubkey", "wrapping", "kind", "key_bytes", "signature_bytes")
    __slots__ = __match_args__
    pubkey: str
    wrapping: str
    kind: Callable[[Any, str], int]
    key_bytes: Callable[[Any, str], bytes]  # PublicKey/KeyID/WrappingPublicKey
    signature_bytes: Callable[[Any, str], bytes]

    def __init__(
        self,
        pubkey: str,
        wrapping: str,
        kind: Callable[[Any, str], int],
        key_bytes: Callable[[Any, str], bytes],
        signature_bytes: Callable[[Any, str], bytes],
    ) -> None:
        _set(self, "pubkey", pubkey)
        _set(self, "wrapping", wrapping)
        _set(self, "kind", kind)
        _set(self, "key_bytes", key_bytes)
        _set(self, "signature_bytes", signature_bytes)


def _kind_name(value: Any, what: str) -> int:
    if isinstance(value, str):
        if value in _KINDS:
            return _KINDS[value]
        other = _OTHER_KIND.fullmatch(value)
        if other and int(other.group(1)) <= 255:
            return int(other.group(1))
    raise DecodeError(f"{what} {json.dumps(value)[:20]} is unknown")


def _kind_number(value: Any, what: str) -> int:
    if type(value) is int and 0 <= value <= 255:
        return value
    raise DecodeError(f"{what} {json.dumps(value)[:20]} is not a signature kind (0-255)")


def _tlpub_bytes(value: Any, what: str) -> bytes:
    """`tlpub:<hex>`, or b"" when left out (`omitzero`)."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str) or not value.startswith("tlpub:"):
        raise DecodeError(f"{what} is not tlpub:<hex>")
    try:
        return bytes.fromhex(value[len("tlpub:"):])
    except ValueError:
        raise DecodeError(f"{what} is not tlpub:<hex>") from None


def _urlsafe_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise DecodeError(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what} is not URL-safe base64") from None


def _std_b64(value: Any, what: str) -> bytes:
    """A Go []byte: standard base64, or null for nil."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise DecodeError(f"{what} is not null or a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what} is not standard base64") from None


_V1 = _Form("PublicKey", "WrappingPublicKey", _kind_name, _tlpub_bytes, _urlsafe_b64)
_IPNSTATE = _Form("Pubkey", "WrappingPubkey", _kind_number, _std_b64, _std_b64)


def _signature(doc: dict[str, Any], where: str, form: _Form, depth: int = 0) -> NodeKeySignature:
    if depth > _MAX_DEPTH:
        raise DecodeError(f"{where}NodeKeySignature nests more than {_MAX_DEPTH} levels deep")
    nested = doc.get("Nested")
    if nested is not None and not isinstance(nested, dict):
        raise DecodeError(f"{where}Nested is not an object")
    return NodeKeySignature(
        kind=form.kind(doc.get("SigKind"), f"{where}SigKind"),
        pubkey=form.key_bytes(doc.get(form.pubkey), f"{where}{form.pubkey}"),
        key_id=form.key_bytes(doc.get("KeyID"), f"{where}KeyID"),
        signature=form.signature_bytes(doc.get("Signature"), f"{where}Signature"),
        nested=None if nested is None else _signature(
            nested, where if depth else f"{where}Nested: ", form, depth + 1),
        wrapping_pubkey=form.key_bytes(doc.get(form.wrapping), f"{where}{form.wrapping}"),
    )
