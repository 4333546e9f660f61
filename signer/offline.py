"""Signing from an air-gapped workstation: requests and responses carried as files.

Online, `make_request` packs what to sign (a node key and optional rotation key) with the
authority it refers to: the active chain from the oldest stored ancestor to the head. Offline,
`open_request` rebuilds that authority from scratch, verifying every AUM (so a tampered bundle
fails), and checks that the offline key is trusted at the head before anything is signed; the
person at the offline machine sees what they sign and which authority it is for. Online again,
`check_response` verifies the returned signature against the current authority before it is
submitted.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from verifier.aum import AUM
from verifier.authority import Authority
from verifier.errors import DecodeError, NotTrustedError, SignatureError, StorageError, TKAError
from verifier.nks import NodeKeySignature
from verifier.storage import MemoryStorage
from verifier.textforms import (
    decode_base64_field,
    format_node_public,
    format_tlpub,
    parse_nl_public,
    parse_node_public,
)

REQUEST_KIND = "tka-offline-sign-request"
RESPONSE_KIND = "tka-offline-sign-response"
VERSION = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _load(text: str, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise DecodeError(f"not a {kind} file: {err}") from None
    if not isinstance(doc, dict) or doc.get("Kind") != kind:
        raise DecodeError(f"not a {kind} file")
    if doc.get("Version") != VERSION:
        version = doc.get("Version")
        raise DecodeError(f"{kind} version {version!r} is not supported (want {VERSION})")
    return doc


@dataclass(frozen=True)
class SigningRequest:
    node_key: bytes
    rotation_key: bytes  # b"" when none
    chain: tuple[AUM, ...]  # oldest stored ancestor first, head last

    def to_json(self) -> str:
        doc = {
            "Kind": REQUEST_KIND,
            "Version": VERSION,
            "NodeKey": format_node_public(self.node_key),
            "RotationKey": format_tlpub(self.rotation_key) if self.rotation_key else None,
            "Authority": [_b64(a.to_cbor()) for a in self.chain],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SigningRequest:
        doc = _load(text, REQUEST_KIND)
        chain = doc.get("Authority")
        if not isinstance(chain, list) or not chain:
            raise DecodeError("request: Authority must list the AUMs of the authority")
        rotation = doc.get("RotationKey")
        return cls(
            node_key=parse_node_public(str(doc.get("NodeKey"))),
            rotation_key=parse_nl_public(str(rotation)) if rotation else b"",
            chain=tuple(
                AUM.from_cbor(decode_base64_field(v, f"request: Authority[{i}]"))
                for i, v in enumerate(chain)
            ),
        )


def make_request(authority: Authority, node_key: bytes, rotation_key: bytes) -> SigningRequest:
    chain: list[AUM] = []
    cursor: AUM | None = authority.head_aum
    oldest = authority.oldest_ancestor.hash()
    while cursor is not None:
        chain.append(cursor)
        if cursor.hash() == oldest or cursor.prev_aum_hash is None:
            break
        cursor = authority.storage.aum(cursor.prev_aum_hash)
    if chain[-1].hash() != oldest:
        raise StorageError("the local authority's chain is broken; run `tka status` to resync")
    return SigningRequest(node_key, rotation_key, tuple(reversed(chain)))


def open_request(request: SigningRequest, signer_public: bytes) -> tuple[Authority, list[str]]:
    """Rebuild and verify the request's authority; refuse unless our key is trusted at its
    head. Returns the authority and the lines to show before signing."""
    storage = MemoryStorage()
    try:
        authority = Authority.bootstrap(storage, request.chain[0])
        if len(request.chain) > 1:
            authority.inform(list(request.chain[1:]))
    except TKAError as err:
        raise SignatureError(f"the request's authority does not verify: {err}") from None
    if authority.head != request.chain[-1].hash():
        raise SignatureError("the request's authority does not end at its last AUM")
    if not authority.key_trusted(signer_public):
        raise NotTrustedError(
            f"{format_tlpub(signer_public)} is not trusted by the request's authority"
        )
    lines = [
        f"authority {authority.state.state_id()} at head {authority.head}",
        f"will sign node key {format_node_public(request.node_key)}",
        f"with lock key {format_tlpub(signer_public)}",
    ]
    if request.rotation_key:
        lines.append(f"rotation key {format_tlpub(request.rotation_key)}")
    return authority, lines


@dataclass(frozen=True)
class SigningResponse:
    node_key_signature: bytes

    def to_json(self) -> str:
        doc = {"Kind": RESPONSE_KIND, "Version": VERSION,
               "NodeKeySignature": _b64(self.node_key_signature)}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SigningResponse:
        doc = _load(text, RESPONSE_KIND)
        return cls(decode_base64_field(doc.get("NodeKeySignature"), "response: NodeKeySignature"))


def check_response(authority: Authority, response: SigningResponse) -> NodeKeySignature:
    """The signature must authorize its node key under the current authority."""
    nks = NodeKeySignature.from_cbor(response.node_key_signature)
    authority.node_key_authorized(nks.node_key(), response.node_key_signature)
    return nks
