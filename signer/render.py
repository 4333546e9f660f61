"""Human and JSON (schema v1) output of `tka status` and `tka log` (docs/format.md §7,
docs/cli.md).

The texts follow `tailscale lock` byte for byte, with two documented deviations (docs/cli.md):
the sign command shown to a locked-out node is `tka sign …` (the command that works here), and
`log` prints an update-key's vote count where Go prints a pointer address (docs/format.md §10,
item 2).

This module only formats: callers hand it decoded wire types and plain facts about peers.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from signer.echo import _INVISIBLE_CATEGORIES, safe_text
from verifier import AUM, Key, NodeKeySignature, State
from verifier.fields import Frozen
from verifier.nks import describe_nks

# Numeric kinds are fixed forever (docs/format.md §3).
_KEY_KINDS = {0: "invalid", 1: "25519"}
_AUM_KINDS = {
    0: "invalid",
    1: "add-key",
    2: "remove-key",
    3: "no-op",
    4: "update-key",
    5: "checkpoint",
}
_SIG_KINDS = {0: "invalid", 1: "direct", 2: "rotation", 3: "credential"}

SIGN_COMMAND = "tka sign"


def key_kind_name(kind: int) -> str:
    return _KEY_KINDS.get(kind, f"Key?{kind}")


def aum_kind_name(kind: int) -> str:
    return _AUM_KINDS.get(kind, f"AUM?{kind}")


def sig_kind_name(kind: int) -> str:
    return _SIG_KINDS.get(kind, f"Sig?{kind}")


def tlpub(raw: bytes) -> str:
    """`tlpub:` + lower-case hex of whatever bytes a KeyID holds (docs/format.md §1)."""
    return "tlpub:" + raw.hex()


def nodekey(raw: bytes) -> str:
    return "nodekey:" + raw.hex()


def aum_hash_text(digest: bytes) -> str:
    """Base32, standard alphabet, upper case, no padding (docs/format.md §1)."""
    return base64.b32encode(digest).decode().rstrip("=")


def _urlsafe_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def node_short(raw32: bytes) -> str:
    """Node-key debug form `[xxxxx]`; the all-zero key renders as empty (docs/format.md §1)."""
    if raw32 == bytes(32):
        return ""
    return "[" + base64.b64encode(raw32).decode()[:5] + "]"


def _pad32(raw: bytes) -> bytes:
    return (raw + bytes(32))[:32]


# -- NKS ------------------------------------------------------------------------------------


def render_nks(sig: NodeKeySignature) -> str:
    """The recursive human rendering of docs/format.md §7 (owned by the verifier)."""
    return describe_nks(sig)


def nks_json(sig: NodeKeySignature | None) -> dict[str, Any]:
    """The NKS object of status JSON v1 (docs/cli.md), field order as Go emits it."""
    if sig is None:
        return {"SigKind": "invalid", "Signature": ""}
    doc: dict[str, Any] = {"SigKind": sig_kind_name(sig.kind)}
    if sig.pubkey:
        doc["PublicKey"] = tlpub(sig.pubkey)  # raw 34 bytes: starts 6e70 (quirk)
    if sig.key_id:
        doc["KeyID"] = tlpub(sig.key_id)
    doc["Signature"] = _urlsafe_b64(sig.signature or b"")
    if sig.nested is not None:
        doc["Nested"] = nks_json(sig.nested)
    if sig.wrapping_pubkey:
        doc["WrappingPublicKey"] = tlpub(sig.wrapping_pubkey)
    return doc


# -- Go-compatible JSON -------------------------------------------------------------------------


def go_json(doc: Any, indent: str = "  ") -> str:
    """Like Go's json.Encoder with SetIndent("", indent): HTML-safe escapes, trailing newline."""
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return re.sub(_NOT_PLAIN, _json_escape, text) + "\n"


# json.dumps leaves DEL, C1 controls, bidi and other format characters raw inside strings,
# where a terminal would act on them (the only raw controls it emits itself are the
# indentation's newlines and tabs). Escaped, the document decodes to the same strings. (Compiled
# on first use, by re's cache: the human output needs none of it.)
_NOT_PLAIN = "[^\x20-\x7e\n\t]"


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES:
        return ch
    data = ch.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(data[i:i + 2], 'big'):04x}" for i in range(0, len(data), 2))


def key_json(key: Key) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    name = key_kind_name(key.kind)
    if name:
        doc["Kind"] = name
    doc["Votes"] = key.votes
    doc["Public"] = tlpub(key.public or b"")
    if key.meta:
        doc["Meta"] = dict(sorted(key.meta.items()))  # Go sorts map keys
    return doc


# -- status ---------------------------------------------------------------------------------------


_set = object.__setattr__


class PeerView(Frozen):
    """A peer as the status output shows it."""

    __match_args__ = ("stable_id", "dns_name", "tailscale_ips", "node_key", "signature", "lock_key")
    __slots__ = __match_args__
    stable_id: str
    dns_name: str
    tailscale_ips: tuple[str, ...]
    node_key: bytes
    signature: NodeKeySignature | None
    lock_key: bytes | None  # the peer's tailnet-lock key, when control reports it

    def __init__(
        self,
        stable_id: str,
        dns_name: str,
        tailscale_ips: tuple[str, ...],
        node_key: bytes,
        signature: NodeKeySignature | None = None,
        lock_key: bytes | None = None,
    ) -> None:
        _set(self, "stable_id", stable_id)
        _set(self, "dns_name", dns_name)
        _set(self, "tailscale_ips", tailscale_ips)
        _set(self, "node_key", node_key)
        _set(self, "signature", signature)
        _set(self, "lock_key", lock_key)


class LockStatus(Frozen):
    """What `tka status` reports (docs/cli.md)."""

    __match_args__ = (
        "enabled", "public_key", "node_key", "head", "node_key_signed", "node_key_signature",
        "trusted_keys", "visible_peers", "filtered_peers", "state_id",
    )
    __slots__ = __match_args__
    enabled: bool
    public_key: bytes | None
    node_key: bytes | None
    head: bytes | None
    node_key_signed: bool
    node_key_signature: NodeKeySignature | None
    trusted_keys: tuple[Key, ...]
    visible_peers: tuple[PeerView, ...]
    filtered_peers: tuple[PeerView, ...]
    state_id: int

    def __init__(
        self,
        enabled: bool,
        public_key: bytes | None,
        node_key: bytes | None,
        head: bytes | None = None,
        node_key_signed: bool = False,
        node_key_signature: NodeKeySignature | None = None,
        trusted_keys: tuple[Key, ...] = (),
        visible_peers: tuple[PeerView, ...] = (),
        filtered_peers: tuple[PeerView, ...] = (),
        state_id: int = 0,
    ) -> None:
        _set(self, "enabled", enabled)
        _set(self, "public_key", public_key)
        _set(self, "node_key", node_key)
        _set(self, "head", head)
        _set(self, "node_key_signed", node_key_signed)
        _set(self, "node_key_signature", node_key_signature)
        _set(self, "trusted_keys", trusted_keys)
        _set(self, "visible_peers", visible_peers)
        _set(self, "filtered_peers", filtered_peers)
        _set(self, "state_id", state_id)


def status_human(st: LockStatus) -> str:
    out: list[str] = []
    out.append("Tailnet Lock is ENABLED." if st.enabled else "Tailnet Lock is NOT enabled.")
    out.append("")
    if st.enabled and st.node_key is not None and st.public_key:
        if st.node_key_signed and st.node_key_signature is not None:
            out.append("This node is accessible under Tailnet Lock. Node signature:")
            out.append(render_nks(st.node_key_signature))
        else:
            out.append(
                "This node is LOCKED OUT by Tailnet Lock, and action is required to establish "
                "connectivity."
            )
            out.append("Run the following command on a node with a trusted key:")
            out.append(f"\t{SIGN_COMMAND} {nodekey(st.node_key)} {tlpub(st.public_key)}")
        out.append("")
    if st.public_key:
        out.append(f"This node's tailnet-lock key: {tlpub(st.public_key)}")
        out.append("")
    if st.enabled and st.trusted_keys:
        out.append("Trusted signing keys:")
        for key in st.trusted_keys:
            line = f"\t{tlpub(key.public or b'')}\t{key.votes}\t"
            if st.public_key and key.public == st.public_key:
                line += "(self)"
            meta = key.meta or {}
            if meta.get("purpose") == "pre-auth key":
                stable = safe_text(meta.get("authkey_stableid", ""))
                line += f"(pre-auth key {stable})" if stable else "(pre-auth key)"
            out.append(line)
    if st.enabled and st.filtered_peers:
        out.append("")
        out.append(
            "The following nodes are locked out by tailnet lock and cannot connect to other nodes:"
        )
        for peer in st.filtered_peers:
            # Names, addresses and IDs are whatever the service (or a node) chose.
            ips = safe_text(",".join(peer.tailscale_ips))
            name, stable = safe_text(peer.dns_name), safe_text(peer.stable_id)
            out.append(f"\t{name}\t{ips}\t{stable}\t{nodekey(peer.node_key)}")
        # Beyond the reference: the command that lets each of them in (docs/cli.md).
        out.append("")
        out.append("To sign them, run on a node with a trusted key:")
        for peer in st.filtered_peers:
            rotation = f" {tlpub(peer.lock_key)}" if peer.lock_key else ""
            out.append(f"\t{SIGN_COMMAND} {nodekey(peer.node_key)}{rotation}")
    return "\n".join(out) + "\n"


def _peer_json(peer: PeerView, with_sig: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ID": peer.stable_id,
        "DNSName": peer.dns_name,
        "TailscaleIPs": list(peer.tailscale_ips) if peer.tailscale_ips else None,
        "NodeKey": nodekey(peer.node_key),
    }
    if with_sig:
        doc["NodeKeySignature"] = nks_json(peer.signature)
    return doc


def status_json(st: LockStatus) -> str:
    doc: dict[str, Any] = {"SchemaVersion": "1", "Enabled": st.enabled}
    if st.public_key:
        doc["PublicKey"] = tlpub(st.public_key)
    if st.node_key is not None:
        doc["NodeKey"] = nodekey(st.node_key)
    if st.enabled:
        if st.head:
            doc["Head"] = aum_hash_text(st.head)
        doc["NodeKeySigned"] = st.node_key_signed
        if st.node_key_signature is not None:
            doc["NodeKeySignature"] = nks_json(st.node_key_signature)
        doc["TrustedKeys"] = [key_json(k) for k in st.trusted_keys]
        doc["VisiblePeers"] = [_peer_json(p, True) for p in st.visible_peers]
        doc["FilteredPeers"] = [_peer_json(p, False) for p in st.filtered_peers]
        if st.state_id:
            doc["State"] = st.state_id
    return go_json(doc)


# -- log ---------------------------------------------------------------------------------------


def _go_map(meta: Mapping[str, str]) -> str:
    """Go's `%+v` of a map[string]string: `map[k1:v1 k2:v2]`, keys sorted."""
    # Keys and values are whoever signed the AUM's choice.
    return "map[" + " ".join(f"{safe_text(k)}:{safe_text(meta[k])}" for k in sorted(meta)) + "]"


def _key_stanza(key: Key, prefix: str, out: list[str]) -> None:
    out.append(f"{prefix}Type: {key_kind_name(key.kind)}")
    if key.kind == 1:
        out.append(f"{prefix}KeyID: {tlpub(key.public or b'')}")
    else:
        out.append(f"{prefix}KeyID: <Error: unsupported key kind: {key.kind}>")
    if key.meta:  # absent and empty are the same on the wire (omitempty)
        out.append(f"{prefix}Metadata: {_go_map(key.meta)}")


def _b64_or_null(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _go_key_struct(key: Key) -> dict[str, Any]:
    return {
        "Kind": key.kind,
        "Votes": key.votes,
        "Public": _b64_or_null(key.public),
        "Meta": dict(sorted(key.meta.items())) if key.meta else None,
    }


def _go_aum_struct(aum: AUM) -> dict[str, Any]:
    """The Go JSON encoding of the AUM struct (fallback stanza for no-op and unknown kinds)."""
    state: dict[str, Any] | None = None
    if aum.state is not None:
        s = aum.state
        state = {
            "LastAUMHash": None if s.last_aum_hash is None else aum_hash_text(s.last_aum_hash),
            "DisablementSecrets": None
            if s.disablement_values is None
            else [base64.b64encode(v).decode() for v in s.disablement_values],
            "Keys": None if s.keys is None else [_go_key_struct(k) for k in s.keys],
            "StateID1": s.state_id1,
            "StateID2": s.state_id2,
        }
    return {
        "MessageKind": aum.kind,
        "PrevAUMHash": _b64_or_null(aum.prev_aum_hash),
        "Key": None if aum.key is None else _go_key_struct(aum.key),
        "KeyID": _b64_or_null(aum.key_id) if aum.key_id else None,
        "State": state,
        "Votes": aum.votes,
        "Meta": dict(sorted(aum.meta.items())) if aum.meta else None,
        "Signatures": [
            {"KeyID": _b64_or_null(sig.key_id), "Signature": _b64_or_null(sig.signature)}
            for sig in aum.signatures
        ]
        if aum.signatures
        else None,
    }


def log_stanza(digest: bytes, aum: AUM, color: bool = False) -> str:
    """One `tka log` entry (docs/cli.md), ending with the blank line that separates stanzas."""
    yellow, clear = ("\x1b[33m", "\x1b[0m") if color else ("", "")
    kind = aum_kind_name(aum.kind)
    out = [f"{yellow}update {aum_hash_text(digest)} ({kind}){clear}"]
    if kind == "add-key" and aum.key is not None:
        _key_stanza(aum.key, "", out)
    elif kind == "remove-key":
        out.append(f"KeyID: {tlpub(aum.key_id or b'')}")
    elif kind == "update-key":
        out.append(f"KeyID: {tlpub(aum.key_id or b'')}")
        if aum.votes is not None:
            out.append(f"Votes: {aum.votes}")  # Go prints a pointer (docs/format.md §10 item 2)
        if aum.meta is not None:
            out.append(f"Metadata: {_go_map(aum.meta)}")
    elif kind == "checkpoint" and aum.state is not None:
        out.append("Disablement values:")
        for value in aum.state.disablement_values or ():
            out.append(f" - {value.hex()}")
        out.append("Keys:")
        for key in aum.state.keys or ():
            _key_stanza(key, "  ", out)
    else:
        return f"{out[0]}\n" + go_json(_go_aum_struct(aum), indent="\t") + "\n\n"
    return "\n".join(out) + "\n\n"


def log_human(entries: Sequence[tuple[bytes, AUM]], color: bool = False) -> str:
    return "".join(log_stanza(digest, aum, color) for digest, aum in entries)


def _state_json(state: State) -> dict[str, Any]:
    return {
        **(
            {"LastAUMHash": aum_hash_text(state.last_aum_hash)}
            if state.last_aum_hash
            else {}
        ),
        "DisablementValues": None
        if state.disablement_values is None
        else [v.hex() for v in state.disablement_values],
        "Keys": None if state.keys is None else [key_json(k) for k in state.keys],
        "StateID1": state.state_id1,
        "StateID2": state.state_id2,
    }


def aum_json(aum: AUM) -> dict[str, Any]:
    doc: dict[str, Any] = {"MessageKind": aum_kind_name(aum.kind)}
    if aum.prev_aum_hash:
        doc["PrevAUMHash"] = aum_hash_text(aum.prev_aum_hash)
    if aum.key is not None:
        doc["Key"] = key_json(aum.key)
    if aum.key_id:
        doc["KeyID"] = tlpub(aum.key_id)
    if aum.state is not None:
        doc["State"] = _state_json(aum.state)
    if aum.votes:
        doc["Votes"] = aum.votes
    if aum.meta is not None:
        doc["Meta"] = dict(sorted(aum.meta.items()))
    if aum.signatures:
        doc["Signatures"] = [
            {"KeyID": tlpub(s.key_id or b""), "Signature": _urlsafe_b64(s.signature or b"")}
            for s in aum.signatures
        ]
    return doc


def log_json(entries: Sequence[tuple[bytes, AUM]]) -> str:
    """`tka log --json` (schema v1, docs/cli.md). Raw is re-hashed by the caller's AUM type."""
    messages = []
    for digest, aum in entries:
        raw = aum.to_cbor()
        if aum.hash() != digest:
            raise ValueError("log entry hash does not match its AUM")  # storage corruption
        messages.append(
            {"Hash": aum_hash_text(digest), "AUM": aum_json(aum), "Raw": _urlsafe_b64(raw)}
        )
    return go_json({"SchemaVersion": "1", "Messages": messages})
