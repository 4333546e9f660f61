"""The authority (docs/format.md §8, §8, docs/format.md §6): head, state and the rules for accepting
new AUMs from storage-backed chains."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from verifier.aum import AUM, MessageKind
from verifier.chain import fast_forward, oldest_ancestor, state_at
from verifier.disablement import secret_matches
from verifier.errors import StorageError, TKAError, ValidationError
from verifier.hashes import AUMHash
from verifier.key import Key
from verifier.machine import apply_verified, verify_aum
from verifier.nks import NodeKeySignature, node_key_authorized
from verifier.state import State
from verifier.storage.base import Storage
from verifier.validate import static_validate

if TYPE_CHECKING:
    from verifier.signing import AUMSigner


def new_state_ids() -> tuple[int, int]:
    """16 CSPRNG bytes as two little-endian uint64s (docs/format.md §6)."""
    import secrets  # here, not at start-up: it loads `random`

    return struct.unpack("<QQ", secrets.token_bytes(16))


class Authority:
    def __init__(self, storage: Storage, head: AUM, oldest: AUM, state: State) -> None:
        self.storage = storage
        self.head_aum = head
        self.oldest_ancestor = oldest
        self.state = state

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def open(cls, storage: Storage) -> Authority:
        """Open (docs/format.md §8): choose the chain, rebuild its state, fast-forward to the
        head."""
        return cls._open_with_hint(storage, storage.last_active_ancestor())

    @classmethod
    def _open_with_hint(cls, storage: Storage, hint: bytes | None) -> Authority:
        heads = storage.heads()
        if not heads:
            raise StorageError("no chain candidates in AUM storage")
        ancestors: dict[bytes, tuple[AUM, bool]] = {}
        for head in heads:
            oldest, through = oldest_ancestor(storage, head, hint)
            h = bytes(oldest.hash())
            prev = ancestors.get(h)
            ancestors[h] = (oldest, through or (prev[1] if prev else False))
        if len(ancestors) == 1:
            oldest = next(iter(ancestors.values()))[0]
        else:
            active = [a for a, through in ancestors.values() if through]
            if not active:
                raise StorageError("multiple distinct chains")
            oldest = active[0]
        state = state_at(storage, oldest.hash())
        head, head_state = fast_forward(storage, state)
        return cls(storage, head, oldest, head_state)

    @classmethod
    def bootstrap(cls, storage: Storage, genesis: AUM) -> Authority:
        """Bootstrap (docs/format.md §6): verify a checkpoint against its own state and store it."""
        if storage.heads():
            raise StorageError("tailchonk is not empty")
        if genesis.kind != MessageKind.CHECKPOINT:
            raise ValidationError(
                f"bootstrap AUMs must be checkpoint messages, got {genesis.kind_name}"
            )
        if genesis.state is None:
            raise ValidationError("bootstrap AUM is missing state")
        verify_aum(genesis.state, genesis, genesis=True)
        storage.commit_verified_aums([genesis])
        storage.set_last_active_ancestor(genesis.hash())
        return cls.open(storage)

    @classmethod
    def create(
        cls, storage: Storage, state: State, signer: AUMSigner
    ) -> tuple[Authority, AUM]:
        """Create (docs/format.md §6): a signed genesis checkpoint of `state`, bootstrapped into
        storage."""
        unsigned = AUM(kind=MessageKind.CHECKPOINT, state=state)
        static_validate(unsigned)
        genesis = signer.sign(unsigned)
        return cls.bootstrap(storage, genesis), genesis

    # --- queries ---------------------------------------------------------------------------------

    @property
    def head(self) -> AUMHash:
        return self.head_aum.hash()

    def keys(self) -> tuple[Key, ...]:
        return self.state.trusted_keys

    def key_trusted(self, key_id: bytes) -> bool:
        return self.state.get_key(key_id) is not None

    def state_ids(self) -> tuple[int, int]:
        return self.state.state_id1, self.state.state_id2

    def valid_disablement(self, secret: bytes) -> bool:
        return secret_matches(secret, self.state.disablement_values)

    def node_key_authorized(self, node_key: bytes, nks_bytes: bytes) -> NodeKeySignature:
        return node_key_authorized(self.state, node_key, nks_bytes)

    def state_at(self, h: bytes) -> State:
        return state_at(self.storage, h)

    # --- accepting updates -----------------------------------------------------------------------

    def inform(self, updates: Sequence[AUM]) -> None:
        """Inform (docs/format.md §8): verify every update against the state at its parent, commit
        all or nothing, then move the head."""
        if not updates:
            raise ValidationError("inform called with empty slice")
        cache: dict[bytes, State] = {bytes(self.head): self.state}
        head_chain = True
        prev = bytes(self.head)
        queued: list[AUM] = []
        for i, update in enumerate(updates):
            h = bytes(update.hash())
            if self.storage.aum(h) is not None:
                head_chain = False
                continue
            parent_hash = update.parent
            if parent_hash is None:
                raise ValidationError(f"update {i}: missing parent")
            parent = bytes(parent_hash)
            state = cache.get(parent)
            if state is None:
                try:
                    state = state_at(self.storage, parent)
                except TKAError as err:
                    raise ValidationError(f"update {i} computing state: {err}") from None
                cache[parent] = state
            try:
                verify_aum(state, update)
            except TKAError as err:
                raise type(err)(f"update {i} invalid: {err}") from None
            try:
                cache[h] = apply_verified(state, update)
            except TKAError as err:
                raise ValidationError(f"update {i} cannot be applied: {err}") from None
            if parent != prev:
                head_chain = False
            prev = h
            queued.append(update)
        if queued:
            self.storage.commit_verified_aums(queued)
        if head_chain and queued:
            self.head_aum = queued[-1]
            self.state = cache[bytes(queued[-1].hash())]
            return
        reopened = Authority._open_with_hint(self.storage, self.oldest_ancestor.hash())
        self.head_aum, self.oldest_ancestor, self.state = (
            reopened.head_aum,
            reopened.oldest_ancestor,
            reopened.state,
        )
