"""The offline side of an air-gapped request: the numbered plan shown before signing, and the
signing itself, with one backend (so one PIN entry), every result checked before the response is
returned. The request's chain was checked against the pin first (`check_against_pin`); a genesis
request has no chain and no pin yet (signer/offline_genesis.py).
"""

from __future__ import annotations

from signer.backends.base import KeyBackend
from signer.bulk import check_rotation_key
from signer.nks_signing import sign_direct_nks_many
from signer.offline import PinCheck, plan_header
from signer.offline_aums import (
    ChainPlan,
    build_chain,
    cosign_plan,
    informed,
    recovery_plan,
    unsigned_recovery,
)
from signer.offline_genesis import Genesis, genesis_plan, sign_genesis
from signer.offline_items import (
    REVOCABLE,
    AddItem,
    AuthKeyItem,
    Cosigned,
    CosignItem,
    GenesisItem,
    ItemsRequest,
    ItemsResponse,
    NodeKeyItem,
    RecoveryStarted,
    RemoveItem,
    Result,
    RevokeStartItem,
    SignedGenesis,
    SignedNodeKey,
    SignedUpdates,
    UpdateItem,
    WrappedKey,
    auth_key_label,
    joins_chain,
)
from signer.signing import aum_signer, revocable_auth_key, wrap_auth_key
from verifier import revocation
from verifier.authority import Authority
from verifier.errors import SignatureError, TKAError, ValidationError
from verifier.key import Key
from verifier.textforms import format_node_public, format_tlpub


def _node_key_line(n: int, item: NodeKeyItem, seen: set[bytes]) -> str:
    check_rotation_key(item.rotation_key or None)
    if item.node_key in seen:
        raise ValidationError(f"item {n}: {format_node_public(item.node_key)} is listed twice")
    seen.add(item.node_key)
    line = f"{n}. will sign node key {format_node_public(item.node_key)}"
    if item.rotation_key:
        line += f" (rotation key {format_tlpub(item.rotation_key)})"
    return line


def items_plan(check: PinCheck, request: ItemsRequest, signer_public: bytes) -> list[str]:
    """Refuse unless every item can be signed at the request's head by our key; the numbered
    plan to show before signing."""
    authority = check.authority
    lines = [
        *plan_header(check, signer_public),
        f"with lock key {format_tlpub(signer_public)}, {len(request.items)} "
        f"item{'' if len(request.items) == 1 else 's'}:",
    ]
    node_keys: set[bytes] = set()
    chain = ChainPlan(authority, signer_public)
    signer = format_tlpub(signer_public)
    for n, item in enumerate(request.items, start=1):
        if isinstance(item, NodeKeyItem):
            lines.append(_node_key_line(n, item, node_keys))
        elif isinstance(item, AddItem):
            lines.append(chain.add(n, item))
        elif isinstance(item, RemoveItem):
            lines.append(chain.remove(n, item))
        elif isinstance(item, UpdateItem):
            lines.append(chain.update(n, item))
        elif isinstance(item, CosignItem):
            lines += cosign_plan(authority, n, item.recovery, signer_public)
        elif isinstance(item, RevokeStartItem):
            lines += recovery_plan(authority, n, item, signer_public)
        elif isinstance(item, AuthKeyItem) and item.mode == REVOCABLE:
            chain.credential_key(n)
            lines.append(f"{n}. will wrap auth key {auth_key_label(item.auth_key)} in revocable "
                         "mode: a fresh credential key signs it and the chain below adds that "
                         f"key (1 vote, purpose \"pre-auth key\"), signed by {signer}; the "
                         "response holds the wrapping private key (0600)")
        elif isinstance(item, AuthKeyItem):
            lines.append(f"{n}. will wrap auth key {auth_key_label(item.auth_key)} in direct "
                         f"mode: a credential signed by {signer}; the response holds the "
                         "wrapping private key (0600)")
        else:
            raise ValidationError(f"item {n}: a genesis needs a request of its own")
    if chain.changes:
        lines.append(f"the key changes are one chain on head {authority.head}, applied when "
                     "the response is submitted; the pin stays at this head")
    return lines


def _sign_node_keys(backend: KeyBackend, authority: Authority,
                    items: list[NodeKeyItem]) -> list[bytes]:
    if not items:
        return []
    raws = sign_direct_nks_many(backend, [(i.node_key, i.rotation_key) for i in items])
    for item, raw in zip(items, raws, strict=True):
        authority.node_key_authorized(item.node_key, raw)
    return raws


def sign_items(backend: KeyBackend, check: PinCheck, request: ItemsRequest) -> ItemsResponse:
    """Sign every item with `backend` (checked by `items_plan` first) and check every result
    against the authority at the request's head before returning it."""
    authority = check.authority
    signer = aum_signer(backend)
    node_items = [i for i in request.items if isinstance(i, NodeKeyItem)]
    signatures = iter(_sign_node_keys(backend, authority, node_items))
    chain_items = [i for i in request.items if joins_chain(i)]
    credential_keys: dict[int, Key] = {}
    wrapped: dict[int, str] = {}
    for i, item in enumerate(chain_items):
        if isinstance(item, AuthKeyItem):
            credential_keys[i], wrapped[i] = revocable_auth_key(item.auth_key,
                                                                item.wrapper_stableid)
    updates = build_chain(authority, signer, chain_items, credential_keys) \
        if chain_items else ()
    after = informed(authority, updates, "the updates we built") if updates else authority
    results: list[Result] = []
    chain_placed = False
    chain_index = 0
    for item in request.items:
        if joins_chain(item):
            if not chain_placed:
                results.append(SignedUpdates(updates))
                chain_placed = True
            if isinstance(item, AuthKeyItem):
                text = wrapped[chain_index]
                _check_wrapped_here(after, text)
                results.append(WrappedKey(text, REVOCABLE))
            chain_index += 1
        elif isinstance(item, NodeKeyItem):
            results.append(SignedNodeKey(next(signatures)))
        elif isinstance(item, CosignItem):
            cosigned = revocation.add_cosignature(item.recovery,
                                                  signer.signature_for(item.recovery))
            revocation.recovery_tally(authority, cosigned)  # verifies every signature
            results.append(Cosigned(cosigned))
        elif isinstance(item, RevokeStartItem):
            recovery = signer.sign(unsigned_recovery(authority, item, signer.key_id))
            tally = revocation.recovery_tally(authority, recovery)  # verifies it
            if signer.key_id not in tally.signers:
                raise SignatureError("the recovery we signed carries no vote of ours")
            results.append(RecoveryStarted(recovery))
        elif isinstance(item, AuthKeyItem):
            text = wrap_auth_key(backend, item.auth_key)
            _check_wrapped_here(authority, text)
            results.append(WrappedKey(text))
        else:
            raise ValidationError("a genesis needs a request of its own")
    return ItemsResponse(authority.head, tuple(results))


def _check_wrapped_here(authority: Authority, text: str) -> None:
    from signer.offline_submit import check_wrapped

    try:
        check_wrapped(authority, text)
    except TKAError as err:
        raise SignatureError(f"the wrapped auth key we built does not work: {err}") from None


# -- genesis -------------------------------------------------------------------------------------


def genesis_items_plan(request: ItemsRequest, signer_public: bytes) -> list[str]:
    genesis = request.genesis
    assert genesis is not None
    lines = [f"a genesis request: no authority yet; with lock key {format_tlpub(signer_public)}, "
             f"{len(request.items)} item{'' if len(request.items) == 1 else 's'}:"]
    node_keys: set[bytes] = set()
    for n, item in enumerate(request.items, start=1):
        if isinstance(item, GenesisItem):
            plan = genesis_plan(item, signer_public)
            lines.append(f"{n}. {plan[0]}")
            lines += plan[1:]
        elif isinstance(item, NodeKeyItem):
            lines.append(_node_key_line(n, item, node_keys) + " under the new authority")
    return lines


def sign_genesis_request(backend: KeyBackend, request: ItemsRequest) -> tuple[Genesis,
                                                                                ItemsResponse]:
    item = request.genesis
    assert item is not None
    genesis = sign_genesis(backend, item)
    # An appliance signs node keys only under an authority it tracks: the one just made.
    backend.track(genesis.authority)
    node_items = [i for i in request.items if isinstance(i, NodeKeyItem)]
    signatures = iter(_sign_node_keys(backend, genesis.authority, node_items))
    results: list[Result] = [
        SignedGenesis(genesis.aum) if isinstance(i, GenesisItem) else SignedNodeKey(
            next(signatures)) for i in request.items]
    return genesis, ItemsResponse(None, tuple(results))
