"""`tka init` done offline: the genesis of a new authority signed by the air-gapped key.

The online side asks for an authority with given trusted keys (with votes) and a number of
disablement secrets; it may also name disablement *values* made elsewhere (KDF outputs, no
secret) and node keys to sign under the new authority. The offline side:

- checks the request (its own key is one of the trusted keys; every key is a real prime-order
  point in canonical encoding, as a key generator makes it, so never all-zero or small-order;
  votes and the number of disablement values within the authority's limits);
- generates the disablement secrets itself: only their KDF values go into the genesis state; the
  secrets are shown once on the offline screen or written to a new 0600 file the operator
  names, never into the response;
- signs the genesis checkpoint (fresh random state IDs) and the node keys under it, checks both,
  and enrols its pin at the genesis, so the next request must extend this very authority.

The online `submit` bootstraps the genesis in memory (it verifies against its own state), checks
every node-key signature under it, and enables lock the way `tka init` does (the service's
init/begin and init/finish).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.backends.base import KeyBackend
from signer.offline_aums import check_key
from signer.offline_items import GenesisItem
from signer.signing import aum_signer
from verifier.aum import AUM
from verifier.authority import Authority, new_state_ids
from verifier.disablement import disablement_kdf, new_disablement_secret
from verifier.errors import NotTrustedError, SignatureError, TKAError, ValidationError
from verifier.state import State
from verifier.storage import MemoryStorage
from verifier.textforms import format_tlpub
from verifier.validate import MAX_DISABLEMENT_VALUES, MAX_KEYS, validate_checkpoint_state

DISABLEMENT_LEN = 32


def genesis_plan(item: GenesisItem, signer_public: bytes) -> list[str]:
    """Refuse a genesis we should not sign; the lines of the plan."""
    if not item.keys:
        raise ValidationError("the genesis lists no trusted key")
    if len(item.keys) > MAX_KEYS:
        raise ValidationError(f"the genesis lists {len(item.keys)} keys, more than {MAX_KEYS}")
    seen: set[bytes] = set()
    for i, key in enumerate(item.keys, start=1):
        check_key(key, f"genesis key {i}")
        if key.public in seen:
            raise ValidationError(f"genesis key {i}: {format_tlpub(key.public or b'')} is "
                                  "listed twice")
        seen.add(key.public or b"")
    if signer_public not in seen:
        raise NotTrustedError(
            f"the lock key {format_tlpub(signer_public)} is not one of the genesis's trusted "
            "keys; refusing to sign an authority that does not trust it"
        )
    total = item.disablements + len(item.disablement_values)
    if total < 1:
        raise ValidationError("the genesis needs at least one disablement secret")
    if total > MAX_DISABLEMENT_VALUES:
        raise ValidationError(f"the genesis has {total} disablement values, more than "
                              f"{MAX_DISABLEMENT_VALUES}")
    for i, value in enumerate(item.disablement_values, start=1):
        if len(value) != DISABLEMENT_LEN:
            raise ValidationError(f"disablement value {i} is {len(value)} bytes, want "
                                  f"{DISABLEMENT_LEN}")
    lines = [f"will create a new authority (tailnet lock init) trusting {len(item.keys)} "
             f"key{'' if len(item.keys) == 1 else 's'}:"]
    lines += [f"   {format_tlpub(k.public or b'')} ({k.votes} votes)" for k in item.keys]
    lines.append(f"   {item.disablements} disablement secret(s) generated here, shown once "
                 "and never written to the response; only their KDF values go into it")
    if item.disablement_values:
        lines.append(f"   {len(item.disablement_values)} disablement value(s) given by the "
                     "request (whoever holds their secrets can disable lock)")
    return lines


@dataclass(frozen=True)
class Genesis:
    authority: Authority  # in memory, at the genesis
    aum: AUM
    secrets: tuple[bytes, ...]  # the disablement secrets: show once, never store


def sign_genesis(backend: KeyBackend, item: GenesisItem) -> Genesis:
    """Generate the disablement secrets, sign the genesis checkpoint with `backend`, and check
    it bootstraps (its signature verifies against its own state)."""
    secrets = tuple(new_disablement_secret() for _ in range(item.disablements))
    id1, id2 = new_state_ids()
    state = State(
        disablement_values=tuple(item.disablement_values) + tuple(
            disablement_kdf(s) for s in secrets),
        keys=tuple(item.keys), state_id1=id1, state_id2=id2,
    )
    try:
        validate_checkpoint_state(state)
        authority, genesis = Authority.create(MemoryStorage(), state, aum_signer(backend))
    except TKAError as err:
        raise SignatureError(f"the genesis we built does not verify: {err}") from None
    return Genesis(authority, genesis, secrets)


def verify_genesis(genesis: AUM) -> Authority:
    """The genesis of a response, bootstrapped in memory: a checkpoint with no parent whose
    signatures verify against the keys of its own state."""
    if genesis.prev_aum_hash is not None:
        raise ValidationError("the genesis has a parent: it is not a genesis")
    try:
        return Authority.bootstrap(MemoryStorage(), genesis)
    except TKAError as err:
        raise SignatureError(f"the genesis does not verify: {err}") from None


def genesis_lines(authority: Authority) -> Sequence[str]:
    keys = ", ".join(f"{format_tlpub(k.public or b'')} ({k.votes} votes)"
                     for k in authority.keys())
    values = len(authority.state.disablement_values or ())
    return [f"authority {authority.state.state_id()} at genesis {authority.head}, trusting "
            f"{keys}, {values} disablement value(s)"]
