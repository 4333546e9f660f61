"""The online side of an air-gapped response: every item checked against the node's current
authority (or, for a genesis, against the genesis itself) before anything is submitted."""

from __future__ import annotations

from signer.offline_aums import informed
from signer.offline_genesis import verify_genesis
from signer.offline_items import (
    Cosigned,
    ItemsResponse,
    RecoveryStarted,
    SignedGenesis,
    SignedNodeKey,
    SignedUpdates,
    auth_key_label,
    check_auth_key,
)
from signer.signing import sign_rotation
from verifier import authkey, revocation
from verifier.authority import Authority
from verifier.errors import DecodeError, SignatureError, TKAError, ValidationError
from verifier.nks import NodeKeySignature
from verifier.textforms import format_aum_hash, format_node_public, format_tlpub


def verify_response(authority: Authority | None, response: ItemsResponse) -> list[str]:
    """Check every item against the current `authority` (None: lock is not enabled, and the
    response must be a genesis); one description per item. Node-key signatures must hold both
    now and after the updates."""
    genesis = response.genesis
    if genesis is not None:
        if authority is not None:
            raise ValidationError("the response holds a genesis, but tailnet lock is already "
                                  "enabled here")
        authority = verify_genesis(genesis)
    elif authority is None:
        raise ValidationError("tailnet lock is not enabled here: only a genesis response can "
                              "be submitted")
    updates = next((r.aums for r in response.results if isinstance(r, SignedUpdates)), ())
    after = informed(authority, updates, "the response's updates") if updates else authority
    lines: list[str] = []
    for n, r in enumerate(response.results, start=1):
        try:
            if isinstance(r, SignedGenesis):
                keys = ", ".join(format_tlpub(k.public or b"") for k in authority.keys())
                lines.append(f"the genesis of authority {authority.state.state_id()} "
                             f"({authority.head}), trusting {keys}")
            elif isinstance(r, SignedNodeKey):
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
            elif isinstance(r, RecoveryStarted):
                tally = revocation.recovery_tally(authority, r.recovery)
                if not tally.signers:
                    raise SignatureError("the recovery carries no signature by a trusted key")
                revoked = ", ".join(format_tlpub(k) for k in tally.revoked)
                lines.append(f"recovery {format_aum_hash(r.recovery.hash())} revoking "
                             f"{revoked or 'nothing trusted now'}, {tally.votes} vote(s)")
            else:
                check_wrapped(after, r.text)
                lines.append(f"auth key {auth_key_label(r.text)} (wrapped, {r.mode})")
        except TKAError as err:
            raise SignatureError(f"response item {n} does not verify: {err}") from None
    return lines


def check_wrapped(authority: Authority, text: str) -> None:
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
