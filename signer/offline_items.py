"""Version-2 air-gapped requests and responses: many items signed in one pass (signer/offline.py
has the pin and the version-1 single node key, which is still read).

A request lists items, each of one type, under the authority chain of the online node:

- `node-key`: a direct node-key signature (optional rotation key);
- `add` / `remove`: a key to trust (with votes) or to stop trusting; all of them become one chain
  of AUMs built on the request's head, in the order given;
- `cosign`: a recovery AUM (`tka revoke-keys` blob) to co-sign;
- `auth-key`: a plain `tskey-auth-…` key to wrap in direct mode (the hardware key signs a
  credential for a fresh wrapping key). The request then carries that auth key and the response
  the wrapping key's private half: both files are written 0600.

The offline side checks the chain against its pin (`check_against_pin`), checks every item
against the authority at the request's head, shows one numbered plan, signs everything with one
backend and checks every result before writing one response. The pin advances to the request's
head only: the AUMs it built are not applied online yet, so the next request's chain carries
them once they are submitted. The online side (`verify_response`) checks every item against its
current authority before it submits anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signer.backends.base import KeyBackend
from signer.bulk import check_rotation_key
from signer.nks_signing import sign_direct_nks_many
from signer.offline import (
    REQUEST_KIND,
    RESPONSE_KIND,
    PinCheck,
    SigningRequest,
    _b64,
    _chain_field,
    _copy_to_memory,
    _load,
)
from signer.signing import aum_signer, sign_rotation, wrap_auth_key
from verifier import authkey, revocation
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.builder import UpdateBuilder
from verifier.errors import (
    DecodeError,
    NotTrustedError,
    SignatureError,
    TKAError,
    ValidationError,
)
from verifier.hashes import AUMHash
from verifier.key import Key, ed25519_key
from verifier.nks import NodeKeySignature
from verifier.textforms import (
    decode_base64_field,
    format_aum_hash,
    format_node_public,
    format_tlpub,
    parse_aum_hash,
    parse_nl_public,
    parse_node_public,
)

VERSION = 2
DIRECT = "direct"


@dataclass(frozen=True)
class NodeKeyItem:
    node_key: bytes
    rotation_key: bytes  # b"" when none


@dataclass(frozen=True)
class AddItem:
    key: Key


@dataclass(frozen=True)
class RemoveItem:
    key_id: bytes


@dataclass(frozen=True)
class CosignItem:
    recovery: AUM


@dataclass(frozen=True)
class AuthKeyItem:
    auth_key: str  # plain tskey-auth-…: a secret


Item = NodeKeyItem | AddItem | RemoveItem | CosignItem | AuthKeyItem


def _auth_key_label(auth_key: str) -> str:
    """An auth key as shown on screen: its stable ID, never the secret part."""
    stable = authkey.authkey_stable_id(auth_key)
    return f"{authkey.AUTHKEY_PREFIX}{stable}-…" if stable else f"{authkey.AUTHKEY_PREFIX}…"


def check_auth_key(auth_key: str) -> None:
    if authkey.SEPARATOR in auth_key:
        raise ValidationError("the auth key is already wrapped; pass the plain tskey-auth-… key")
    if not auth_key.startswith(authkey.AUTHKEY_PREFIX) or any(c.isspace() for c in auth_key):
        raise DecodeError(f"an auth key is one word starting {authkey.AUTHKEY_PREFIX}")


def _item_to_json(item: Item) -> dict[str, Any]:
    if isinstance(item, NodeKeyItem):
        return {"Type": "node-key", "NodeKey": format_node_public(item.node_key),
                "RotationKey": format_tlpub(item.rotation_key) if item.rotation_key else None}
    if isinstance(item, AddItem):
        return {"Type": "add", "Key": format_tlpub(item.key.public or b""),
                "Votes": item.key.votes}
    if isinstance(item, RemoveItem):
        return {"Type": "remove", "Key": format_tlpub(item.key_id)}
    if isinstance(item, CosignItem):
        return {"Type": "cosign", "Recovery": revocation.to_blob(item.recovery)}
    return {"Type": "auth-key", "Mode": DIRECT, "AuthKey": item.auth_key}


def _str(entry: dict[str, Any], field: str, what: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str):
        raise DecodeError(f"{what}: {field} must be a string")
    return value


def _item_from_json(entry: Any, i: int) -> Item:
    what = f"request: Items[{i}]"
    if not isinstance(entry, dict):
        raise DecodeError(f"{what} must be an object")
    kind = entry.get("Type")
    if kind == "node-key":
        rotation = entry.get("RotationKey")
        if rotation is not None and not isinstance(rotation, str):
            raise DecodeError(f"{what}: RotationKey must be a string or null")
        return NodeKeyItem(parse_node_public(_str(entry, "NodeKey", what)),
                           parse_nl_public(rotation) if rotation else b"")
    if kind == "add":
        votes = entry.get("Votes")
        if type(votes) is not int or not 0 <= votes < 1 << 64:
            raise DecodeError(f"{what}: Votes must be a whole number")
        return AddItem(ed25519_key(parse_nl_public(_str(entry, "Key", what)), votes=votes))
    if kind == "remove":
        return RemoveItem(parse_nl_public(_str(entry, "Key", what)))
    if kind == "cosign":
        return CosignItem(revocation.from_blob(_str(entry, "Recovery", what)))
    if kind == "auth-key":
        if entry.get("Mode") != DIRECT:
            raise DecodeError(f"{what}: only Mode \"direct\" is supported")
        auth_key = _str(entry, "AuthKey", what)
        check_auth_key(auth_key)
        return AuthKeyItem(auth_key)
    raise DecodeError(f"{what}: unknown Type {str(kind)[:40]!r}")


@dataclass(frozen=True)
class ItemsRequest:
    items: tuple[Item, ...]
    chain: tuple[AUM, ...]  # oldest stored ancestor first, head last
    version: int = VERSION  # 1 for a file written by an older `tka offline request`

    @property
    def secret(self) -> bool:
        """The request or its response carries a secret (write them 0600)."""
        return any(isinstance(item, AuthKeyItem) for item in self.items)

    def to_json(self) -> str:
        """A single node key is written as version 1, which older offline machines read."""
        if len(self.items) == 1 and isinstance(self.items[0], NodeKeyItem):
            only = self.items[0]
            return SigningRequest(only.node_key, only.rotation_key, self.chain).to_json()
        doc = {
            "Kind": REQUEST_KIND,
            "Version": VERSION,
            "Items": [_item_to_json(item) for item in self.items],
            "Authority": [_b64(a.to_cbor()) for a in self.chain],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ItemsRequest:
        doc = _load(text, (REQUEST_KIND,), (1, VERSION))
        chain = _chain_field(doc, "request")
        if doc["Version"] == 1:
            rotation = doc.get("RotationKey")
            item = NodeKeyItem(parse_node_public(str(doc.get("NodeKey"))),
                               parse_nl_public(str(rotation)) if rotation else b"")
            return cls((item,), chain, 1)
        entries = doc.get("Items")
        if not isinstance(entries, list) or not entries:
            raise DecodeError("request: Items must list what to sign")
        return cls(tuple(_item_from_json(e, i) for i, e in enumerate(entries)), chain)


# -- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedNodeKey:
    signature: bytes  # serialized NKS


@dataclass(frozen=True)
class SignedUpdates:
    aums: tuple[AUM, ...]  # one chain, built on the response's head


@dataclass(frozen=True)
class Cosigned:
    recovery: AUM


@dataclass(frozen=True)
class WrappedKey:
    text: str  # the wrapped auth key: a secret


Result = SignedNodeKey | SignedUpdates | Cosigned | WrappedKey


@dataclass(frozen=True)
class ItemsResponse:
    head: AUMHash | None  # the request's head, where the updates start (None in version 1)
    results: tuple[Result, ...]

    @property
    def secret(self) -> bool:
        return any(isinstance(r, WrappedKey) for r in self.results)

    def to_json(self, version: int = VERSION) -> str:
        if version == 1:
            (only,) = self.results
            assert isinstance(only, SignedNodeKey)
            doc: dict[str, Any] = {"Kind": RESPONSE_KIND, "Version": 1,
                                   "NodeKeySignature": _b64(only.signature)}
            return json.dumps(doc, indent=2) + "\n"
        items: list[dict[str, Any]] = []
        for r in self.results:
            if isinstance(r, SignedNodeKey):
                items.append({"Type": "node-key", "NodeKeySignature": _b64(r.signature)})
            elif isinstance(r, SignedUpdates):
                items.append({"Type": "updates", "AUMs": [_b64(a.to_cbor()) for a in r.aums]})
            elif isinstance(r, Cosigned):
                items.append({"Type": "cosign", "Recovery": revocation.to_blob(r.recovery)})
            else:
                items.append({"Type": "auth-key", "WrappedAuthKey": r.text})
        doc = {"Kind": RESPONSE_KIND, "Version": VERSION,
               "Head": format_aum_hash(self.head) if self.head is not None else None,
               "Items": items}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ItemsResponse:
        doc = _load(text, (RESPONSE_KIND,), (1, VERSION))
        if doc["Version"] == 1:
            raw = decode_base64_field(doc.get("NodeKeySignature"), "response: NodeKeySignature")
            return cls(None, (SignedNodeKey(raw),))
        entries = doc.get("Items")
        if not isinstance(entries, list) or not entries:
            raise DecodeError("response: Items must list what was signed")
        head_text = doc.get("Head")
        if not isinstance(head_text, str):
            raise DecodeError("response: Head must be an AUM hash")
        results: list[Result] = []
        for i, e in enumerate(entries):
            what = f"response: Items[{i}]"
            if not isinstance(e, dict):
                raise DecodeError(f"{what} must be an object")
            kind = e.get("Type")
            if kind == "node-key":
                results.append(SignedNodeKey(
                    decode_base64_field(e.get("NodeKeySignature"), f"{what}: NodeKeySignature")))
            elif kind == "updates":
                aums = e.get("AUMs")
                if not isinstance(aums, list) or not aums:
                    raise DecodeError(f"{what}: AUMs must list the updates")
                results.append(SignedUpdates(tuple(
                    AUM.from_cbor(decode_base64_field(a, f"{what}: AUMs[{j}]"))
                    for j, a in enumerate(aums))))
            elif kind == "cosign":
                results.append(Cosigned(revocation.from_blob(_str(e, "Recovery", what))))
            elif kind == "auth-key":
                results.append(WrappedKey(_str(e, "WrappedAuthKey", what)))
            else:
                raise DecodeError(f"{what}: unknown Type {str(kind)[:40]!r}")
        if sum(isinstance(r, SignedUpdates) for r in results) > 1:
            raise DecodeError("response: more than one chain of updates")
        return cls(AUMHash(parse_aum_hash(head_text)), tuple(results))


# -- the offline side ----------------------------------------------------------------------------


def _check_cosigner(authority: Authority, recovery: AUM, key_id: bytes) -> list[str]:
    """Refuse a recovery our co-signature would not help (as `tka revoke-keys --cosign` does);
    its tally lines."""
    from signer.cli.authority_handlers import tally_lines
    from signer.cli.lock_handlers import _check_cosigners

    try:
        tally = revocation.recovery_tally(authority, recovery)
    except TKAError as err:
        raise ValidationError(f"the recovery to co-sign: {err}") from None
    _check_cosigners(authority, recovery, [key_id])
    return tally_lines(tally, authority)


def items_plan(check: PinCheck, request: ItemsRequest, signer_public: bytes) -> list[str]:
    """Refuse unless every item can be signed at the request's head by our key; the numbered
    plan to show before signing."""
    authority = check.authority
    if not authority.key_trusted(signer_public):
        raise NotTrustedError(
            f"{format_tlpub(signer_public)} is not trusted at head {authority.head}"
        )
    added = len(check.added)
    lines = [
        f"authority {authority.state.state_id()} at head {authority.head}",
        f"the request adds {added} AUM{'' if added == 1 else 's'} after the pinned head "
        f"{check.pinned_head}" if added else "the request is at the pinned head",
        f"with lock key {format_tlpub(signer_public)}, {len(request.items)} "
        f"item{'' if len(request.items) == 1 else 's'}:",
    ]
    node_keys: set[bytes] = set()
    adds: set[bytes] = set()
    removes: set[bytes] = set()
    for n, item in enumerate(request.items, start=1):
        if isinstance(item, NodeKeyItem):
            check_rotation_key(item.rotation_key or None)
            if item.node_key in node_keys:
                raise ValidationError(f"item {n}: {format_node_public(item.node_key)} is listed "
                                      "twice")
            node_keys.add(item.node_key)
            line = f"{n}. will sign node key {format_node_public(item.node_key)}"
            if item.rotation_key:
                line += f" (rotation key {format_tlpub(item.rotation_key)})"
            lines.append(line)
        elif isinstance(item, AddItem):
            public = item.key.public or b""
            if authority.key_trusted(public) or public in adds:
                raise ValidationError(f"item {n}: {format_tlpub(public)} is already trusted")
            adds.add(public)
            lines.append(f"{n}. will trust {format_tlpub(public)} ({item.key.votes} votes)")
        elif isinstance(item, RemoveItem):
            if not (authority.key_trusted(item.key_id) or item.key_id in adds) \
                    or item.key_id in removes:
                raise ValidationError(f"item {n}: {format_tlpub(item.key_id)} is not trusted")
            removes.add(item.key_id)
            lines.append(f"{n}. will stop trusting {format_tlpub(item.key_id)}")
        elif isinstance(item, CosignItem):
            lines.append(f"{n}. will co-sign recovery {format_aum_hash(item.recovery.hash())}:")
            tally = _check_cosigner(authority, item.recovery, signer_public)
            lines += [f"   {line}" for line in tally]
        else:
            lines.append(f"{n}. will wrap auth key {_auth_key_label(item.auth_key)} in direct "
                         f"mode: a credential signed by {format_tlpub(signer_public)}; the "
                         "response holds the wrapping private key (0600)")
    if removes and len(authority.keys()) + len(adds) <= len(removes):
        raise ValidationError("cannot remove every trusted signing key")
    if adds or removes:
        lines.append(f"the additions and removals are one chain on head {authority.head}, "
                     "applied when the response is submitted; the pin stays at this head")
    return lines


def sign_items(backend: KeyBackend, check: PinCheck, request: ItemsRequest) -> ItemsResponse:
    """Sign every item with `backend` (checked by `items_plan` first) and check every result
    against the authority at the request's head before returning it."""
    authority = check.authority
    node_items = [i for i in request.items if isinstance(i, NodeKeyItem)]
    signatures = iter(sign_direct_nks_many(
        backend, [(i.node_key, i.rotation_key) for i in node_items]) if node_items else [])
    builder = UpdateBuilder(authority, aum_signer(backend))
    changes = False
    for item in request.items:
        if isinstance(item, AddItem):
            builder.add_key(item.key)
            changes = True
        elif isinstance(item, RemoveItem):
            builder.remove_key(item.key_id)
            changes = True
    updates = tuple(builder.finalize()) if changes else ()
    results: list[Result] = []
    chain_placed = False
    signer = aum_signer(backend)
    for item in request.items:
        if isinstance(item, NodeKeyItem):
            raw = next(signatures)
            authority.node_key_authorized(item.node_key, raw)
            results.append(SignedNodeKey(raw))
        elif isinstance(item, (AddItem, RemoveItem)):
            if not chain_placed:
                results.append(SignedUpdates(updates))
                chain_placed = True
        elif isinstance(item, CosignItem):
            cosigned = revocation.add_cosignature(item.recovery,
                                                  signer.signature_for(item.recovery))
            revocation.recovery_tally(authority, cosigned)  # verifies every signature
            results.append(Cosigned(cosigned))
        else:
            results.append(WrappedKey(wrap_auth_key(backend, item.auth_key)))
    if updates:
        _informed(authority, updates, "the updates we built")
    return ItemsResponse(authority.head, tuple(results))


def _informed(authority: Authority, updates: Sequence[AUM], what: str) -> Authority:
    """`authority` (copied to memory) with `updates` informed: they must verify and become the
    head. They must start at the head itself: a chain forking behind it could win fork choice
    and discard what was applied since."""
    if updates[0].parent != authority.head:
        raise ValidationError(
            f"{what} were built on {updates[0].parent}, not on the current head "
            f"{authority.head}: make a new request"
        )
    copy = _copy_to_memory(authority)
    try:
        copy.inform(list(updates))
    except TKAError as err:
        raise SignatureError(f"{what} do not verify: {err}") from None
    if copy.head != updates[-1].hash():
        raise ValidationError(
            f"{what} were built on {updates[0].parent}, not on the current head "
            f"{authority.head}: make a new request"
        )
    return copy


# -- the online side -----------------------------------------------------------------------------


def verify_response(authority: Authority, response: ItemsResponse) -> list[str]:
    """Check every item against the current `authority` (nothing is submitted before all pass);
    one description per item. Node-key signatures must hold both now and after the updates."""
    updates = next((r.aums for r in response.results if isinstance(r, SignedUpdates)), ())
    after = _informed(authority, updates, "the response's updates") if updates else authority
    lines: list[str] = []
    for n, r in enumerate(response.results, start=1):
        try:
            if isinstance(r, SignedNodeKey):
                nks = NodeKeySignature.from_cbor(r.signature)
                authority.node_key_authorized(nks.node_key(), r.signature)
                after.node_key_authorized(nks.node_key(), r.signature)
                lines.append(f"node key {format_node_public(nks.node_key())}")
            elif isinstance(r, SignedUpdates):
                kinds = ", ".join(a.kind_name for a in r.aums)
                lines.append(f"{len(r.aums)} update(s): {kinds}")
            elif isinstance(r, Cosigned):
                tally = revocation.recovery_tally(authority, r.recovery)
                lines.append(f"recovery {format_aum_hash(r.recovery.hash())}, {tally.votes} "
                             f"vote(s), {'wins' if tally.wins else 'loses'} fork choice")
            else:
                _check_wrapped(after, r.text)
                lines.append(f"auth key {_auth_key_label(r.text)} (wrapped, direct)")
        except TKAError as err:
            raise SignatureError(f"response item {n} does not verify: {err}") from None
    return lines


def _check_wrapped(authority: Authority, text: str) -> None:
    """The wrapped key works: a rotation signature its wrapping key makes for a throwaway node
    key is authorized by the authority."""
    import nacl.signing

    wrapped = authkey.unwrap(text)
    if wrapped is None:
        raise DecodeError("the auth key is not wrapped")
    check_auth_key(wrapped.auth_key)
    throwaway = bytes(nacl.signing.SigningKey.generate().verify_key)
    try:
        rotation = sign_rotation(wrapped.wrapping_private, throwaway, wrapped.credential)
    except TKAError as err:
        raise SignatureError(f"wrapped auth key: {err}") from None
    authority.node_key_authorized(throwaway, rotation.to_cbor())
