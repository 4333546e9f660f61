"""The AUMs an air-gapped request asks the offline key for: the one chain of key changes built
on the request's head (`add`, `remove`, `update`, and the AddKey of each revocable auth key's
credential key) and recoveries (`revoke-start`, `cosign`).

Each is checked twice on the offline side: before signing, against a simulation of the
authority at the request's head (`ChainPlan`, `recovery_plan`, `cosign_plan`), so that a plan
that cannot be signed is refused before the PIN is asked; and after signing, by informing what
was built into a copy of that authority (`informed`) or tallying the recovery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from signer.offline import _copy_to_memory
from signer.offline_items import (
    AddItem,
    AuthKeyItem,
    Item,
    RemoveItem,
    RevokeStartItem,
    UpdateItem,
)
from verifier import revocation
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.builder import UpdateBuilder
from verifier.ed25519 import public_key_class
from verifier.errors import DecodeError, SignatureError, TKAError, ValidationError
from verifier.key import Key, ed25519_key
from verifier.signing import AUMSigner
from verifier.textforms import format_aum_hash, format_tlpub, parse_fork_from
from verifier.validate import MAX_KEYS

_KEY_PROBLEMS = {
    "not_point": "is not an Ed25519 public key",
    "small_order": "is a small-order point: anyone could sign with it",
    "mixed_order": "has a small-order component",
    "noncanonical": "is a non-canonical encoding, which no key generator produces",
}


def check_trusted_key(public: bytes, what: str) -> None:
    """Refuse to trust a key no key generator produces (all-zero, small-order, mixed-order,
    non-canonical): ZIP-215 accepts signatures by some of them that anyone can make."""
    if len(public) != 32:
        raise ValidationError(f"{what}: a key is 32 bytes, got {len(public)}")
    problem = _KEY_PROBLEMS.get(public_key_class(public))
    if problem is not None:
        raise ValidationError(f"{what}: refusing to trust {format_tlpub(public)}: it {problem}")


def check_key(key: Key, what: str) -> None:
    check_trusted_key(key.public or b"", what)
    try:
        key.validate()
    except ValidationError as err:
        raise ValidationError(f"{what}: {err}") from None


@dataclass
class ChainPlan:
    """The key changes of one request, checked one by one against the keys they would leave."""

    authority: Authority
    signer_public: bytes
    keys: dict[bytes, Key] = field(default_factory=dict)
    changes: int = 0
    signer_removed: bool = False

    def __post_init__(self) -> None:
        self.keys = {k.public or b"": k for k in self.authority.keys()}

    def _change(self, n: int) -> None:
        if self.signer_removed:
            raise ValidationError(f"item {n}: a change after removing "
                                  f"{format_tlpub(self.signer_public)} cannot be signed by it")
        self.changes += 1

    def _trusted(self, n: int, key_id: bytes) -> Key:
        key = self.keys.get(key_id)
        if key is None:
            raise ValidationError(f"item {n}: {format_tlpub(key_id)} is not trusted")
        return key

    def _room(self, n: int) -> None:
        if len(self.keys) >= MAX_KEYS:
            raise ValidationError(f"item {n}: the authority already trusts {MAX_KEYS} keys")

    def add(self, n: int, item: AddItem) -> str:
        public = item.key.public or b""
        check_key(item.key, f"item {n}")
        if public in self.keys:
            raise ValidationError(f"item {n}: {format_tlpub(public)} is already trusted")
        self._room(n)
        self._change(n)
        self.keys[public] = item.key
        return f"{n}. will trust {format_tlpub(public)} ({item.key.votes} votes)"

    def remove(self, n: int, item: RemoveItem) -> str:
        self._trusted(n, item.key_id)
        self._change(n)
        del self.keys[item.key_id]
        if not self.keys:
            raise ValidationError("cannot remove every trusted signing key")
        if item.key_id == self.signer_public:
            self.signer_removed = True
        return f"{n}. will stop trusting {format_tlpub(item.key_id)}"

    def update(self, n: int, item: UpdateItem) -> str:
        key = self._trusted(n, item.key_id)
        self._change(n)
        parts: list[str] = []
        new = key
        if item.votes is not None:
            new = ed25519_key(key.public or b"", votes=item.votes, meta=new.meta)
            parts.append(f"votes {key.votes} -> {item.votes}")
        if item.meta is not None:
            new = ed25519_key(key.public or b"", votes=new.votes, meta=item.meta)
            shown = ", ".join(f"{k}={v}" for k, v in sorted(item.meta.items())) or "none"
            parts.append(f"metadata replaced by {{{shown}}}")
        check_key(new, f"item {n}")
        self.keys[item.key_id] = new
        return f"{n}. will update {format_tlpub(item.key_id)}: {'; '.join(parts)}"

    def credential_key(self, n: int) -> None:
        """A revocable auth key's credential key (made when signing) joins the chain."""
        self._room(n)
        self._change(n)


def build_chain(
    authority: Authority,
    signer: AUMSigner,
    items: Sequence[Item],
    credential_keys: dict[int, Key],
) -> tuple[AUM, ...]:
    """The one chain of AUMs on `authority`'s head, in item order (the items that join it);
    `credential_keys[i]` is the key to add for the revocable auth key `items[i]`."""
    builder = UpdateBuilder(authority, signer)
    for i, item in enumerate(items):
        if isinstance(item, AddItem):
            builder.add_key(item.key)
        elif isinstance(item, RemoveItem):
            builder.remove_key(item.key_id)
        elif isinstance(item, UpdateItem):
            if item.votes is not None:
                builder.set_key_vote(item.key_id, item.votes)
            if item.meta is not None:
                builder.set_key_meta(item.key_id, item.meta)
        elif isinstance(item, AuthKeyItem) and i in credential_keys:
            builder.add_key(credential_keys[i])
        else:
            raise ValidationError(f"a {type(item).__name__} does not join the chain")
    return tuple(builder.finalize())


def informed(authority: Authority, updates: Sequence[AUM], what: str) -> Authority:
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


# -- recoveries ----------------------------------------------------------------------------------


def unsigned_recovery(authority: Authority, item: RevokeStartItem, signer_public: bytes) -> AUM:
    """The recovery checkpoint `tka revoke-keys KEY…` would start here: forking from
    `item.fork_from`, or from the newest AUM where none of the keys is trusted and ours is."""
    try:
        parent = (parse_fork_from(item.fork_from) if item.fork_from
                  else revocation.fork_point(authority, list(item.key_ids), signer_public))
        if authority.storage.aum(parent) is None:
            raise ValidationError(f"the authority holds no AUM {format_aum_hash(parent)} to "
                                  "fork from")
        if authority.state_at(parent).get_key(signer_public) is None:
            raise ValidationError(f"{format_tlpub(signer_public)} is not trusted at "
                                  f"{format_aum_hash(parent)}: its signature would not count")
        return revocation.recovery_aum(authority, list(item.key_ids), parent)
    except (DecodeError, ValidationError) as err:
        raise ValidationError(f"generation of recovery AUM failed: {err}") from None


def recovery_plan(authority: Authority, n: int, item: RevokeStartItem,
                  signer_public: bytes) -> list[str]:
    for key_id in item.key_ids:
        if not authority.key_trusted(key_id):
            raise ValidationError(f"item {n}: {format_tlpub(key_id)} is not trusted")
    aum = unsigned_recovery(authority, item, signer_public)
    assert aum.prev_aum_hash is not None
    lines = [f"{n}. will start a recovery forking from {format_aum_hash(aum.prev_aum_hash)}"
             f"{' (--fork-from)' if item.fork_from else ''}, signed by "
             f"{format_tlpub(signer_public)}:"]
    lines += [f"   it revokes {format_tlpub(k)}" for k in item.key_ids]
    lines.append("   others with trusted keys co-sign it (`tka revoke-keys --cosign`) before "
                 "it is finished")
    return lines


def cosign_plan(authority: Authority, n: int, recovery: AUM, signer_public: bytes) -> list[str]:
    """Refuse a recovery our co-signature would not help (as `tka revoke-keys --cosign` does);
    its tally lines."""
    from signer.cli.authority_handlers import tally_lines
    from signer.cli.lock_handlers import _check_cosigners

    try:
        tally = revocation.recovery_tally(authority, recovery)
    except TKAError as err:
        raise ValidationError(f"item {n}: the recovery to co-sign: {err}") from None
    _check_cosigners(authority, recovery, [signer_public])
    return [f"{n}. will co-sign recovery {format_aum_hash(recovery.hash())}:"] + [
        f"   {line}" for line in tally_lines(tally, authority)]
