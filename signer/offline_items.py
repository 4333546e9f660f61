"""What an air-gapped request asks for and what its response carries: the item and result types
and their files, versions 1 to 3 (signer/offline.py has the pin; the offline side's plan and
signing are signer/offline_sign.py, the online side's checks signer/offline_submit.py).

A request lists items, each of one type, under the authority chain of the online node:

- `node-key`: a direct node-key signature (optional rotation key);
- `add` / `remove` / `update`: a key to trust (with votes), to stop trusting, or whose votes or
  metadata change; all of them become one chain of AUMs built on the request's head, in the
  order given (signer/offline_aums.py);
- `cosign`: a recovery AUM (`tka revoke-keys` blob) to co-sign;
- `revoke-start`: start a recovery that revokes some keys (`tka revoke-keys` without
  --cosign/--finish), optionally forking from a given AUM;
- `auth-key`: a plain `tskey-auth-…` key to wrap, in direct mode (the hardware key signs a
  credential for a fresh wrapping key) or revocable mode (a fresh credential key signs it, and
  an AddKey in the chain, signed by the hardware key, trusts that credential key). The request
  then carries that auth key and the response the wrapping key's private half: both files are
  written 0600;
- `genesis`: `tka init` done offline (signer/offline_genesis.py). The request then carries no
  chain (there is no authority yet) and may hold node keys besides, to sign under the new one.

Versions: a request that is a single node key is version 1 (what older offline machines read);
one that only has the kinds of version 2 (node-key, add, remove, cosign, direct auth-key) is
version 2; anything else is version 3. All three are read; a response is written in its
request's version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signer.offline import (
    REQUEST_KIND,
    RESPONSE_KIND,
    SigningRequest,
    _b64,
    _chain_field,
    _load,
)
from verifier import authkey, revocation
from verifier.aum import AUM
from verifier.errors import DecodeError, ValidationError
from verifier.hashes import AUMHash
from verifier.key import Key, ed25519_key
from verifier.textforms import (
    decode_base64_field,
    format_aum_hash,
    format_node_public,
    format_tlpub,
    parse_aum_hash,
    parse_nl_public,
    parse_node_public,
)

VERSION = 3
VERSIONS = (1, 2, 3)
DIRECT = "direct"
REVOCABLE = "revocable"
_MAX_UINT64 = (1 << 64) - 1


# -- request items -------------------------------------------------------------------------------


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
class UpdateItem:
    """UpdateKey: new votes and/or new metadata (which replaces the key's metadata whole)."""

    key_id: bytes
    votes: int | None = None
    meta: Mapping[str, str] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class CosignItem:
    recovery: AUM


@dataclass(frozen=True)
class RevokeStartItem:
    key_ids: tuple[bytes, ...]
    fork_from: str = ""  # an AUM hash (hex or base32), or "" for where `tka revoke-keys` forks


@dataclass(frozen=True)
class AuthKeyItem:
    auth_key: str  # plain tskey-auth-…: a secret
    mode: str = DIRECT  # or REVOCABLE
    wrapper_stableid: str = ""  # the requesting node, written into the credential key's meta


@dataclass(frozen=True)
class GenesisItem:
    keys: tuple[Key, ...]
    disablements: int  # secrets to generate on the offline side
    disablement_values: tuple[bytes, ...] = ()  # KDF values given online (no secret)


Item = (NodeKeyItem | AddItem | RemoveItem | UpdateItem | CosignItem | RevokeStartItem
        | AuthKeyItem | GenesisItem)


def joins_chain(item: Item) -> bool:
    """The item becomes (part of) the one chain of AUMs built on the request's head."""
    return isinstance(item, (AddItem, RemoveItem, UpdateItem)) or (
        isinstance(item, AuthKeyItem) and item.mode == REVOCABLE)


def auth_key_label(auth_key: str) -> str:
    """An auth key as shown on screen: its stable ID, never the secret part."""
    stable = authkey.authkey_stable_id(auth_key)
    return f"{authkey.AUTHKEY_PREFIX}{stable}-…" if stable else f"{authkey.AUTHKEY_PREFIX}…"


def check_auth_key(auth_key: str) -> None:
    if authkey.SEPARATOR in auth_key:
        raise ValidationError("the auth key is already wrapped; pass the plain tskey-auth-… key")
    if not auth_key.startswith(authkey.AUTHKEY_PREFIX) or any(c.isspace() for c in auth_key):
        raise DecodeError(f"an auth key is one word starting {authkey.AUTHKEY_PREFIX}")


def _needs_version(item: Item) -> int:
    if isinstance(item, (UpdateItem, RevokeStartItem, GenesisItem)):
        return 3
    if isinstance(item, AuthKeyItem) and item.mode != DIRECT:
        return 3
    return 2


def _item_to_json(item: Item) -> dict[str, Any]:
    if isinstance(item, NodeKeyItem):
        return {"Type": "node-key", "NodeKey": format_node_public(item.node_key),
                "RotationKey": format_tlpub(item.rotation_key) if item.rotation_key else None}
    if isinstance(item, AddItem):
        return {"Type": "add", "Key": format_tlpub(item.key.public or b""),
                "Votes": item.key.votes}
    if isinstance(item, RemoveItem):
        return {"Type": "remove", "Key": format_tlpub(item.key_id)}
    if isinstance(item, UpdateItem):
        return {"Type": "update", "Key": format_tlpub(item.key_id), "Votes": item.votes,
                "Meta": dict(item.meta) if item.meta is not None else None}
    if isinstance(item, CosignItem):
        return {"Type": "cosign", "Recovery": revocation.to_blob(item.recovery)}
    if isinstance(item, RevokeStartItem):
        return {"Type": "revoke-start", "Keys": [format_tlpub(k) for k in item.key_ids],
                "ForkFrom": item.fork_from or None}
    if isinstance(item, GenesisItem):
        return {"Type": "genesis",
                "Keys": [{"Key": format_tlpub(k.public or b""), "Votes": k.votes}
                         for k in item.keys],
                "Disablements": item.disablements,
                "DisablementValues": [v.hex() for v in item.disablement_values]}
    doc: dict[str, Any] = {"Type": "auth-key", "Mode": item.mode, "AuthKey": item.auth_key}
    if item.mode == REVOCABLE:
        doc["WrapperStableID"] = item.wrapper_stableid
    return doc


def _str(entry: dict[str, Any], name: str, what: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str):
        raise DecodeError(f"{what}: {name} must be a string")
    return value


def _votes(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_UINT64:
        raise DecodeError(f"{what}: Votes must be a whole number")
    return value


def _list(entry: dict[str, Any], name: str, what: str) -> list[Any]:
    value = entry.get(name)
    if not isinstance(value, list):
        raise DecodeError(f"{what}: {name} must be a list")
    return value


def _meta(value: Any, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise DecodeError(f"{what}: Meta must be an object of strings")
    return dict(value)


def _genesis_from_json(entry: dict[str, Any], what: str) -> GenesisItem:
    keys: list[Key] = []
    for j, k in enumerate(_list(entry, "Keys", what)):
        if not isinstance(k, dict):
            raise DecodeError(f"{what}: Keys[{j}] must be an object")
        keys.append(ed25519_key(parse_nl_public(_str(k, "Key", f"{what}: Keys[{j}]")),
                                votes=_votes(k.get("Votes"), f"{what}: Keys[{j}]")))
    count = entry.get("Disablements")
    if type(count) is not int or not 0 <= count <= 32:
        raise DecodeError(f"{what}: Disablements must be a number from 0 to 32")
    values: list[bytes] = []
    for j, v in enumerate(_list(entry, "DisablementValues", what)):
        try:
            values.append(bytes.fromhex(v if isinstance(v, str) else "?"))
        except ValueError:
            raise DecodeError(f"{what}: DisablementValues[{j}] must be hex") from None
    return GenesisItem(tuple(keys), count, tuple(values))


def _item_from_json(entry: Any, i: int, version: int) -> Item:
    what = f"request: Items[{i}]"
    if not isinstance(entry, dict):
        raise DecodeError(f"{what} must be an object")
    kind = entry.get("Type")
    item: Item
    if kind == "node-key":
        rotation = entry.get("RotationKey")
        if rotation is not None and not isinstance(rotation, str):
            raise DecodeError(f"{what}: RotationKey must be a string or null")
        item = NodeKeyItem(parse_node_public(_str(entry, "NodeKey", what)),
                           parse_nl_public(rotation) if rotation else b"")
    elif kind == "add":
        item = AddItem(ed25519_key(parse_nl_public(_str(entry, "Key", what)),
                                   votes=_votes(entry.get("Votes"), what)))
    elif kind == "remove":
        item = RemoveItem(parse_nl_public(_str(entry, "Key", what)))
    elif kind == "update":
        votes = entry.get("Votes")
        item = UpdateItem(parse_nl_public(_str(entry, "Key", what)),
                          None if votes is None else _votes(votes, what),
                          _meta(entry.get("Meta"), what))
        if item.votes is None and item.meta is None:
            raise DecodeError(f"{what}: an update changes Votes, Meta or both")
    elif kind == "cosign":
        item = CosignItem(revocation.from_blob(_str(entry, "Recovery", what)))
    elif kind == "revoke-start":
        fork = entry.get("ForkFrom")
        if fork is not None and not isinstance(fork, str):
            raise DecodeError(f"{what}: ForkFrom must be an AUM hash or null")
        keys = tuple(parse_nl_public(k if isinstance(k, str) else "")
                     for k in _list(entry, "Keys", what))
        if not keys:
            raise DecodeError(f"{what}: Keys must name the keys to revoke")
        item = RevokeStartItem(keys, fork or "")
    elif kind == "genesis":
        item = _genesis_from_json(entry, what)
    elif kind == "auth-key":
        mode = entry.get("Mode")
        if mode not in (DIRECT, REVOCABLE):
            raise DecodeError(f"{what}: Mode must be \"direct\" or \"revocable\"")
        auth_key = _str(entry, "AuthKey", what)
        check_auth_key(auth_key)
        stable = entry.get("WrapperStableID", "")
        if not isinstance(stable, str) or len(stable) > 64:
            raise DecodeError(f"{what}: WrapperStableID must be a short string")
        item = AuthKeyItem(auth_key, mode, stable)
    else:
        raise DecodeError(f"{what}: unknown Type {str(kind)[:40]!r}")
    if _needs_version(item) > version:
        raise DecodeError(f"{what}: Type {kind!r} needs a version-3 request")
    return item


@dataclass(frozen=True)
class ItemsRequest:
    items: tuple[Item, ...]
    chain: tuple[AUM, ...]  # oldest stored ancestor first, head last; () for a genesis
    version: int = 0  # the version read from a file; 0 for one made here (see `file_version`)

    def __post_init__(self) -> None:
        genesis = [i for i in self.items if isinstance(i, GenesisItem)]
        if genesis:
            if len(genesis) > 1 or not all(
                    isinstance(i, (GenesisItem, NodeKeyItem)) for i in self.items):
                raise DecodeError("request: a genesis request holds one genesis item and node "
                                  "keys to sign under it, nothing else")
            if self.chain:
                raise DecodeError("request: a genesis request carries no authority")
        elif not self.chain:
            raise DecodeError("request: Authority must list the AUMs of the authority")

    @property
    def genesis(self) -> GenesisItem | None:
        return next((i for i in self.items if isinstance(i, GenesisItem)), None)

    @property
    def secret(self) -> bool:
        """The request or its response carries a secret (write them 0600)."""
        return any(isinstance(item, AuthKeyItem) for item in self.items)

    @property
    def file_version(self) -> int:
        """The version read, or the oldest that can carry these items."""
        if self.version:
            return self.version
        if len(self.items) == 1 and isinstance(self.items[0], NodeKeyItem):
            return 1
        return max(_needs_version(i) for i in self.items)

    def to_json(self) -> str:
        version = self.file_version
        if version == 1:
            only = self.items[0]
            assert isinstance(only, NodeKeyItem)
            return SigningRequest(only.node_key, only.rotation_key, self.chain).to_json()
        doc = {
            "Kind": REQUEST_KIND,
            "Version": version,
            "Items": [_item_to_json(item) for item in self.items],
            "Authority": [_b64(a.to_cbor()) for a in self.chain],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ItemsRequest:
        doc = _load(text, (REQUEST_KIND,), VERSIONS)
        version = int(doc["Version"])
        if version == 1:
            chain = _chain_field(doc, "request")
            rotation = doc.get("RotationKey")
            item = NodeKeyItem(parse_node_public(str(doc.get("NodeKey"))),
                               parse_nl_public(str(rotation)) if rotation else b"")
            return cls((item,), chain, 1)
        entries = doc.get("Items")
        if not isinstance(entries, list) or not entries:
            raise DecodeError("request: Items must list what to sign")
        items = tuple(_item_from_json(e, i, version) for i, e in enumerate(entries))
        genesis = any(isinstance(i, GenesisItem) for i in items)
        chain = () if genesis and doc.get("Authority") in (None, []) else \
            _chain_field(doc, "request")
        return cls(items, chain, version)


# -- response results ----------------------------------------------------------------------------


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
class RecoveryStarted:
    recovery: AUM  # signed by the offline key only, for others to co-sign


@dataclass(frozen=True)
class WrappedKey:
    text: str  # the wrapped auth key: a secret
    mode: str = DIRECT


@dataclass(frozen=True)
class SignedGenesis:
    genesis: AUM


Result = SignedNodeKey | SignedUpdates | Cosigned | RecoveryStarted | WrappedKey | SignedGenesis


def _result_to_json(r: Result) -> dict[str, Any]:
    if isinstance(r, SignedNodeKey):
        return {"Type": "node-key", "NodeKeySignature": _b64(r.signature)}
    if isinstance(r, SignedUpdates):
        return {"Type": "updates", "AUMs": [_b64(a.to_cbor()) for a in r.aums]}
    if isinstance(r, Cosigned):
        return {"Type": "cosign", "Recovery": revocation.to_blob(r.recovery)}
    if isinstance(r, RecoveryStarted):
        return {"Type": "revoke-start", "Recovery": revocation.to_blob(r.recovery)}
    if isinstance(r, SignedGenesis):
        return {"Type": "genesis", "AUM": _b64(r.genesis.to_cbor())}
    doc: dict[str, Any] = {"Type": "auth-key", "WrappedAuthKey": r.text}
    if r.mode != DIRECT:
        doc["Mode"] = r.mode
    return doc


def _result_from_json(e: Any, i: int, version: int) -> Result:
    what = f"response: Items[{i}]"
    if not isinstance(e, dict):
        raise DecodeError(f"{what} must be an object")
    kind = e.get("Type")
    v3 = version >= 3
    if kind == "node-key":
        return SignedNodeKey(
            decode_base64_field(e.get("NodeKeySignature"), f"{what}: NodeKeySignature"))
    if kind == "updates":
        aums = e.get("AUMs")
        if not isinstance(aums, list) or not aums:
            raise DecodeError(f"{what}: AUMs must list the updates")
        return SignedUpdates(tuple(
            AUM.from_cbor(decode_base64_field(a, f"{what}: AUMs[{j}]"))
            for j, a in enumerate(aums)))
    if kind == "cosign":
        return Cosigned(revocation.from_blob(_str(e, "Recovery", what)))
    if kind == "revoke-start" and v3:
        return RecoveryStarted(revocation.from_blob(_str(e, "Recovery", what)))
    if kind == "genesis" and v3:
        return SignedGenesis(AUM.from_cbor(decode_base64_field(e.get("AUM"), f"{what}: AUM")))
    if kind == "auth-key":
        mode = e.get("Mode", DIRECT) if v3 else DIRECT
        if mode not in (DIRECT, REVOCABLE):
            raise DecodeError(f"{what}: Mode must be \"direct\" or \"revocable\"")
        return WrappedKey(_str(e, "WrappedAuthKey", what), mode)
    raise DecodeError(f"{what}: unknown Type {str(kind)[:40]!r}")


@dataclass(frozen=True)
class ItemsResponse:
    head: AUMHash | None  # the request's head, where the updates start (None: v1, genesis)
    results: tuple[Result, ...]

    @property
    def secret(self) -> bool:
        return any(isinstance(r, WrappedKey) for r in self.results)

    @property
    def genesis(self) -> AUM | None:
        return next((r.genesis for r in self.results if isinstance(r, SignedGenesis)), None)

    def to_json(self, version: int = VERSION) -> str:
        if version == 1:
            (only,) = self.results
            assert isinstance(only, SignedNodeKey)
            doc: dict[str, Any] = {"Kind": RESPONSE_KIND, "Version": 1,
                                   "NodeKeySignature": _b64(only.signature)}
            return json.dumps(doc, indent=2) + "\n"
        doc = {"Kind": RESPONSE_KIND, "Version": version,
               "Head": format_aum_hash(self.head) if self.head is not None else None,
               "Items": [_result_to_json(r) for r in self.results]}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ItemsResponse:
        doc = _load(text, (RESPONSE_KIND,), VERSIONS)
        version = int(doc["Version"])
        if version == 1:
            raw = decode_base64_field(doc.get("NodeKeySignature"), "response: NodeKeySignature")
            return cls(None, (SignedNodeKey(raw),))
        entries = doc.get("Items")
        if not isinstance(entries, list) or not entries:
            raise DecodeError("response: Items must list what was signed")
        results = tuple(_result_from_json(e, i, version) for i, e in enumerate(entries))
        if sum(isinstance(r, SignedUpdates) for r in results) > 1:
            raise DecodeError("response: more than one chain of updates")
        genesis = sum(isinstance(r, SignedGenesis) for r in results)
        if genesis > 1 or (genesis and not all(
                isinstance(r, (SignedGenesis, SignedNodeKey)) for r in results)):
            raise DecodeError("response: a genesis response holds one genesis and node-key "
                              "signatures, nothing else")
        head_text = doc.get("Head")
        if genesis and head_text is None:
            return cls(None, results)
        if not isinstance(head_text, str):
            raise DecodeError("response: Head must be an AUM hash")
        return cls(AUMHash(parse_aum_hash(head_text)), results)
