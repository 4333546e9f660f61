"""Building signed updates on top of an authority's head (docs/format.md §8), including the
builder's checkpoint cadence. Signing goes through `AUMSigner`s; `verifier` never holds a key.

With several signers each AUM is signed by all of them in the order given, each seeing the
signatures before its own (a signer that enforces a cosigner threshold, such as the appliance,
goes last); the next AUM's parent is the hash with every signature."""

from __future__ import annotations

from collections.abc import Mapping

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.errors import NotTrustedError, ValidationError
from verifier.key import Key
from verifier.machine import apply_verified
from verifier.signing import AUMSigner
from verifier.textforms import format_aum_hash, format_tlpub
from verifier.validate import MAX_KEYS, static_validate

CHECKPOINT_EVERY = 50


class UpdateBuilder:
    def __init__(self, authority: Authority, *signers: AUMSigner) -> None:
        self.authority = authority
        self.signers = signers
        self.state = authority.state
        self.parent: bytes = bytes(authority.head)
        self.out: list[AUM] = []

    def _append(self, unsigned: AUM) -> AUM:
        aum = unsigned
        for signer in self.signers:
            aum = signer.sign(aum)
        static_validate(aum)
        self.state = apply_verified(self.state, aum)
        self.parent = bytes(aum.hash())
        self.out.append(aum)
        return aum

    def add_key(self, key: Key) -> AUM:
        kid = key.key_id()
        if self.state.get_key(kid) is not None:
            raise ValidationError(f"cannot add key {format_tlpub(kid)}: already exists")
        if len(self.state.trusted_keys) >= MAX_KEYS:
            raise ValidationError(
                f"cannot add key {format_tlpub(kid)}: maximum number of keys reached"
            )
        return self._append(AUM(kind=MessageKind.ADD_KEY, prev_aum_hash=self.parent, key=key))

    def _require(self, key_id: bytes) -> None:
        try:
            self.state.find_key(key_id)
        except NotTrustedError as err:
            raise ValidationError(f"failed reading key {key_id.hex()}: {err}") from None

    def remove_key(self, key_id: bytes) -> AUM:
        self._require(key_id)
        return self._append(
            AUM(kind=MessageKind.REMOVE_KEY, prev_aum_hash=self.parent, key_id=key_id)
        )

    def set_key_vote(self, key_id: bytes, votes: int) -> AUM:
        self._require(key_id)
        return self._append(
            AUM(kind=MessageKind.UPDATE_KEY, prev_aum_hash=self.parent, key_id=key_id, votes=votes)
        )

    def set_key_meta(self, key_id: bytes, meta: Mapping[str, str]) -> AUM:
        self._require(key_id)
        return self._append(
            AUM(
                kind=MessageKind.UPDATE_KEY,
                prev_aum_hash=self.parent,
                key_id=key_id,
                meta=dict(meta),
            )
        )

    def _needs_checkpoint(self) -> bool:
        storage = self.authority.storage
        to_read = CHECKPOINT_EVERY - len(self.out)
        cursor: AUM | None = self.authority.head_aum
        for _ in range(max(to_read, 0)):
            if cursor is None or cursor.kind == MessageKind.CHECKPOINT:
                return False
            if cursor.parent is None:
                return False
            cursor = storage.aum(cursor.parent)
        return True

    def finalize(self) -> list[AUM]:
        """The queued AUMs, followed by a checkpoint when the cadence calls for one — even
        with nothing queued, as the reference does once 50 AUMs have passed since the last
        checkpoint."""
        if self._needs_checkpoint():
            checkpoint_state = self.state.replace(last_aum_hash=None)
            self._append(
                AUM(kind=MessageKind.CHECKPOINT, prev_aum_hash=self.parent, state=checkpoint_state)
            )
        if self.out and self.out[0].prev_aum_hash != bytes(self.authority.head):
            raise ValidationError(
                "updates no longer apply to head: based on "
                f"{format_aum_hash(self.out[0].prev_aum_hash or bytes(32))}, "
                f"head is {self.authority.head}"
            )
        return list(self.out)
