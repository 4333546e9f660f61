"""Node-key signatures (docs/format.md §3, §4, docs/format.md §7): the statement that a WireGuard
node key is authorized, directly by a trusted key or through a chain of rotations."""

from __future__ import annotations

from enum import IntEnum

from verifier import cbor, ed25519
from verifier.errors import DecodeError, NotTrustedError, SignatureError, TKAError
from verifier.fields import Frozen
from verifier.hashes import blake2s256
from verifier.key import Key, KeyKind
from verifier.state import State
from verifier.textforms import format_tlpub, node_key_binary, node_key_short, parse_node_key_binary

_NKS_FIELDS = {
    1: "SigKind",
    2: "Pubkey",
    3: "KeyID",
    4: "Signature",
    5: "Nested",
    6: "WrappingPubkey",
}

MAX_ROTATION_KEYS = 15


class SigKind(IntEnum):
    INVALID = 0
    DIRECT = 1
    ROTATION = 2
    CREDENTIAL = 3


def sig_kind_name(kind: int) -> str:
    names = {0: "invalid", 1: "direct", 2: "rotation", 3: "credential"}
    return names.get(kind, f"Sig?<{kind}>")


_set = object.__setattr__


class NodeKeySignature(Frozen):
    """All byte fields are omitempty on the wire, so empty and absent are the same here."""

    __match_args__ = ("kind", "pubkey", "key_id", "signature", "nested", "wrapping_pubkey")
    __slots__ = __match_args__
    kind: int
    pubkey: bytes
    key_id: bytes
    signature: bytes
    nested: NodeKeySignature | None
    wrapping_pubkey: bytes

    def __init__(
        self,
        kind: int,
        pubkey: bytes = b"",
        key_id: bytes = b"",
        signature: bytes = b"",
        nested: NodeKeySignature | None = None,
        wrapping_pubkey: bytes = b"",
    ) -> None:
        _set(self, "kind", kind)
        _set(self, "pubkey", pubkey)
        _set(self, "key_id", key_id)
        _set(self, "signature", signature)
        _set(self, "nested", nested)
        _set(self, "wrapping_pubkey", wrapping_pubkey)

    def _encode(self, with_signature: bool) -> bytes:
        entries = [(1, cbor.enc_uint(self.kind))]
        if self.pubkey:
            entries.append((2, cbor.enc_bytes(self.pubkey)))
        if self.key_id:
            entries.append((3, cbor.enc_bytes(self.key_id)))
        if with_signature and self.signature:
            entries.append((4, cbor.enc_bytes(self.signature)))
        if self.nested is not None:
            entries.append((5, self.nested.to_cbor()))
        if self.wrapping_pubkey:
            entries.append((6, cbor.enc_bytes(self.wrapping_pubkey)))
        return cbor.enc_struct(entries)

    def to_cbor(self) -> bytes:
        return self._encode(with_signature=True)

    def sig_hash(self) -> bytes:
        """BLAKE2s-256 of the encoding without this level's Signature (docs/format.md §4)."""
        return blake2s256(self._encode(with_signature=False))

    @classmethod
    def from_cbor(cls, data: bytes) -> NodeKeySignature:
        return cls.from_model(cbor.decode(data), "NodeKeySignature")

    @classmethod
    def from_model(cls, value: cbor.CValue, what: str) -> NodeKeySignature:
        fields = cbor.struct_fields(value, _NKS_FIELDS, what)
        if fields is None:
            return cls(kind=0)
        nested_value = fields.get(5)
        return cls(
            kind=cbor.field_uint(fields.get(1), 8, f"{what}.SigKind"),
            pubkey=cbor.field_bytes(fields.get(2), f"{what}.Pubkey") or b"",
            key_id=cbor.field_bytes(fields.get(3), f"{what}.KeyID") or b"",
            signature=cbor.field_bytes(fields.get(4), f"{what}.Signature") or b"",
            nested=(
                None
                if nested_value is None or cbor.is_nil(nested_value)
                else cls.from_model(nested_value, f"{what}.Nested")
            ),
            wrapping_pubkey=cbor.field_bytes(fields.get(6), f"{what}.WrappingPubkey") or b"",
        )

    # --- unverified accessors (docs/format.md §7)
    # --------------------------------------------------------

    def authorizing_key_id(self) -> bytes:
        if self.kind in (SigKind.DIRECT, SigKind.CREDENTIAL):
            if not self.key_id:
                raise SignatureError("invalid signature: no keyID present")
            return self.key_id
        if self.kind == SigKind.ROTATION:
            if self.nested is None:
                raise SignatureError(
                    "invalid signature: rotation signature missing nested signature"
                )
            return self.nested.authorizing_key_id()
        raise SignatureError(f"unhandled signature type: {sig_kind_name(self.kind)}")

    def wrapping_public(self) -> bytes | None:
        if self.wrapping_pubkey:
            return self.wrapping_pubkey
        if self.kind == SigKind.ROTATION and self.nested is not None:
            return self.nested.wrapping_public()
        return None

    def node_key(self) -> bytes:
        """The 32-byte node key this level names (from the 34-byte `np` binary form)."""
        return parse_node_key_binary(self.pubkey)

    def previous_node_keys(self) -> list[bytes]:
        """Rotation chains only: earlier node keys, newest first (docs/format.md §7 step 5)."""
        keys: list[bytes] = []
        if self.kind != SigKind.ROTATION:
            return keys
        level = self.nested
        while level is not None:
            if level.pubkey:
                keys.append(level.node_key())
            if level.kind != SigKind.ROTATION:
                break
            level = level.nested
        return keys

    def initial_signature(self) -> NodeKeySignature:
        level = self
        while level.kind == SigKind.ROTATION and level.nested is not None:
            level = level.nested
        return level


def verify_nks(nks: NodeKeySignature, node_key: bytes, trusted_key: Key) -> None:
    """verify(s, nodeKey, trustedKey) (docs/format.md §7). Raises SignatureError naming the failing
    step."""
    if nks.kind != SigKind.CREDENTIAL and node_key_binary(node_key) != nks.pubkey:
        raise SignatureError("signature does not authorize nodeKey")
    digest = nks.sig_hash()
    if nks.kind == SigKind.ROTATION:
        if nks.nested is None:
            raise SignatureError("nested signatures must nest a signature")
        rotation_key = nks.nested.wrapping_public()
        if rotation_key is None:
            raise SignatureError("missing rotation key")
        if len(rotation_key) != 32:
            raise SignatureError(f"bad rotation key length: {len(rotation_key)}")
        if not ed25519.verify(rotation_key, digest, nks.signature, "cofactorless"):
            raise SignatureError("invalid signature")
        nested = nks.nested
        if nested.kind != SigKind.CREDENTIAL:
            try:
                inner_key = nested.node_key()
            except DecodeError as err:
                raise SignatureError(f"nested pubkey: {err}") from None
        else:
            inner_key = bytes(32)
        try:
            verify_nks(nested, inner_key, trusted_key)
        except SignatureError as err:
            raise SignatureError(f"nested: {err}") from None
        return
    if nks.kind in (SigKind.DIRECT, SigKind.CREDENTIAL):
        if nks.nested is not None:
            raise SignatureError(
                "invalid signature: signatures of type "
                f"{sig_kind_name(nks.kind)} cannot nest another signature"
            )
        if trusted_key.kind != KeyKind.ED25519:
            raise SignatureError("unhandled key type")
        public = trusted_key.public or b""
        if len(public) != 32:
            raise SignatureError(f"ed25519 key has wrong length: {len(public)}")
        if not ed25519.verify(public, digest, nks.signature, "zip215"):
            raise SignatureError("invalid signature")
        return
    raise SignatureError(f"unhandled signature type: {sig_kind_name(nks.kind)}")


def node_key_authorized(state: State, node_key: bytes, nks_bytes: bytes) -> NodeKeySignature:
    """NodeKeyAuthorized (docs/format.md §7) against a head state; returns the decoded signature.

    Raises DecodeError (unserialize), NotTrustedError (signing key not trusted) or
    SignatureError, each with the reference's reason text."""
    try:
        nks = NodeKeySignature.from_cbor(nks_bytes)
    except DecodeError as err:
        raise DecodeError(f"unserialize: {err}") from None
    if nks.kind == SigKind.CREDENTIAL:
        raise SignatureError("credential signatures cannot authorize nodes on their own")
    key_id = nks.authorizing_key_id()
    try:
        key = state.find_key(key_id)
    except NotTrustedError as err:
        raise NotTrustedError(f"key: {err}") from None
    verify_nks(nks, node_key, key)
    _check_rotation_details(nks)
    return nks


def _check_rotation_details(nks: NodeKeySignature) -> None:
    """The reference also collects a rotation's previous node keys (docs/format.md §7 step 5),
    parsing every nested Pubkey down to the first non-rotation level, so a credential that carries a
    malformed Pubkey fails here although verify() never looks at it."""
    if nks.kind != SigKind.ROTATION:
        return
    level = nks.nested
    while level is not None:
        if level.pubkey:
            try:
                level.node_key()
            except DecodeError as err:
                raise SignatureError(f"nested pubkey: {err}") from None
        if level.kind != SigKind.ROTATION:
            return
        level = level.nested


def is_authorized(state: State, node_key: bytes, nks_bytes: bytes) -> bool:
    try:
        node_key_authorized(state, node_key, nks_bytes)
    except TKAError:
        return False
    return True


def describe_nks(nks: NodeKeySignature, depth: int = 0) -> str:
    """Human-readable rendering used by `lock status` (docs/format.md §7)."""
    pad = "  " * depth
    lines = [f"{pad}SigKind: {sig_kind_name(nks.kind)}"]
    if nks.pubkey:
        try:
            lines.append(f"{pad}Pubkey: {node_key_short(nks.node_key())}")
        except DecodeError as err:
            lines.append(f"{pad}Pubkey: <error: {err}>")
    if nks.key_id:
        lines.append(f"{pad}KeyID: {format_tlpub(nks.key_id[:32].ljust(32, bytes(1)))}")
    if nks.wrapping_pubkey:
        wrap = nks.wrapping_pubkey[:32].ljust(32, bytes(1))
        lines.append(f"{pad}WrappingPubkey: {format_tlpub(wrap)}")
    if nks.nested is not None:
        lines.append(f"{pad}Nested:")
        lines.append(describe_nks(nks.nested, depth + 1))
    text = "\n".join(lines)
    return text.strip() if depth == 0 else text
