"""`ApplianceBackend`: a lock key held by the signer appliance, behind `KeyBackend`.

Opening (`appliance:device=…;key=…`): RESET handshake, `info`, the device's identity checked
against the pinned one (or pinned, the first time), unlock with the PIN if the device is locked
(one attempt: a wrong PIN in a file must not burn the retry counter), then the key looked up by
name.

Signing never sends a bare digest: `SigningContext.payload` must carry the bytes the digest is
the SigHash of, and the host checks that it is (so the device and the host agree on what is
signed before a person is asked). Node-key signatures go to `sign_nks` (with the head of the
authority given to `track()`, or the device's own head when nothing was tracked, and the
context's deeplink); AUMs to `sign_aum`; `sign_many` sends runs of node-key signatures as
`sign_batch` calls of at most the policy's `max_batch` items (and what fits in `max_message`),
each confirmed once. Every reply must name our key and the sighash (batch: the digest) we
computed, or nothing is returned.

`track(authority)` brings the device up to date with the host's authority: it reads the device's
head and history, finds where they meet the host's chain, feeds the missing AUMs oldest first,
and checks that the device's head is then the host's. A device that is not enrolled is enrolled
automatically only when the host's authority is just a genesis this device signed (`tka init`;
the device does not ask again); otherwise `tka appliance enroll` is needed.

While the device waits for the person, "confirm on the device" goes to stderr; the host waits
at most 120 s (or the URI's `timeout=`), and Ctrl-C cancels the request on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from signer.backends.appliance.api import (
    Appliance,
    DeviceInfo,
    Notify,
    Policy,
    stderr_notify,
)
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.rpc import Locked, NotFound, StaleAuthority
from signer.backends.appliance.uri import ApplianceUri, PinCallback, resolve_pin
from signer.backends.base import KeyBackend, SigningContext
from verifier.aum import AUM, MessageKind
from verifier.errors import DecodeError, DeviceError, SignerError, TKAError
from verifier.hashes import blake2s256
from verifier.nks import NodeKeySignature
from verifier.textforms import format_aum_hash

if TYPE_CHECKING:
    from verifier.authority import Authority

T = TypeVar("T")

UPDATE_CHUNK_AUMS = 32  # AUMs per authority_update call (also bounded by max_message)
_REQUEST_OVERHEAD = 256  # CBOR envelope of a call, generously
_ITEM_OVERHEAD = 5  # CBOR head of one byte-string item


def chain_of(authority: Authority) -> list[AUM]:
    """The host's active chain, oldest AUM it stores first, ending at the head."""
    chain = [authority.head_aum]
    seen = {bytes(authority.head)}
    while True:
        parent = chain[-1].parent
        if parent is None:
            break
        aum = authority.storage.aum(parent)
        if aum is None or bytes(aum.hash()) in seen:
            break
        seen.add(bytes(aum.hash()))
        chain.append(aum)
    chain.reverse()
    return chain


def oldest_checkpoint(chain: Sequence[AUM]) -> int:
    """Index of the oldest checkpoint (with state) in `chain`: what a device is enrolled with."""
    for i, aum in enumerate(chain):
        if aum.kind == MessageKind.CHECKPOINT and aum.state is not None:
            return i
    raise SignerError(
        "this node's authority storage holds no checkpoint to enroll the appliance with"
    )


def chunks_for_calls(
    items: Sequence[T], size: Callable[[T], int], max_count: int, max_message: int
) -> list[list[T]]:
    """Consecutive runs of `items` for one call each: at most `max_count` items, whose byte
    strings (`size` of each) fit `max_message` with the call's envelope."""
    budget = max(1024, max_message - _REQUEST_OVERHEAD)
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        cost = size(item) + _ITEM_OVERHEAD
        if current and (len(current) >= max_count or used + cost > budget):
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def feed_chunks(aums: Sequence[bytes], max_message: int) -> list[list[bytes]]:
    return chunks_for_calls(aums, len, UPDATE_CHUNK_AUMS, max_message)


def bring_up_to_date(device: Appliance, authority: Authority, *, what: str) -> bytes:
    """Feed `device` (enrolled) what it lacks of `authority`'s chain; returns the common head.
    `what` names the device in messages."""
    info = device.authority()
    host_head = bytes(authority.head)
    if not info.enrolled or info.head is None:
        raise DeviceError(
            f"{what} is not enrolled in this tailnet's authority; run: tka appliance enroll "
            "--state DIR"
        )
    if info.head == host_head:
        return host_head
    chain = chain_of(authority)
    index = {bytes(aum.hash()): i for i, aum in enumerate(chain)}
    meet: int | None = None
    for h in reversed((*info.history, info.head)):
        if h in index:
            meet = index[h]
            break
    if meet is None:
        raise DeviceError(
            f"{what} follows an authority (head {format_aum_hash(info.head)}) that does not "
            f"meet this node's chain (head {format_aum_hash(host_head)}): it is enrolled in "
            "another tailnet, or further behind than it remembers; re-enroll it: "
            "tka appliance enroll --state DIR --replace"
        )
    missing = [aum.to_cbor() for aum in chain[meet + 1 :]]
    if not missing:
        raise DeviceError(
            f"{what} knows AUMs this node does not (its head is "
            f"{format_aum_hash(info.head)}, this node's {format_aum_hash(host_head)}); bring "
            "this node up to date first (tka status), then retry"
        )
    head = info.head
    try:
        for chunk in feed_chunks(missing, device.max_message):
            head = device.authority_update(chunk).head
    except StaleAuthority as err:
        raise DeviceError(
            f"{what} cannot follow this node's chain from what it remembers ({err}); "
            "re-enroll it: tka appliance enroll --state DIR --replace"
        ) from None
    if head != host_head:
        raise DeviceError(
            f"after {len(missing)} updates {what} is at head {format_aum_hash(head)} but this "
            f"node is at {format_aum_hash(host_head)}: the two disagree about the authority; "
            "do not sign with this device until that is understood"
        )
    return host_head


class ApplianceBackend(KeyBackend):
    def __init__(
        self,
        uri: ApplianceUri,
        *,
        pin_callback: PinCallback | None = None,
        notify: Notify | None = stderr_notify,
        pins: IdentityPins | None = None,
        appliance: Appliance | None = None,
    ) -> None:
        self._uri = uri
        self._pin_callback = pin_callback
        self._closed = False
        wait = uri.timeout + 5.0 if uri.timeout is not None else None
        owned = appliance is None
        self._dev = appliance or Appliance.open(
            uri.device, notify=notify, **({"confirm_wait": wait} if wait else {})
        )
        self._head: bytes | None = None
        self._authority: Authority | None = None
        self._policy: Policy | None = None
        try:
            info = self._dev.info()
            self.identity = info.identity
            (pins or IdentityPins()).check(uri.device, info.identity, board=info.board)
            self._max_message = info.max_message
            self._ensure_unlocked(info)
            self._public = self._find_key()
        except BaseException:
            if owned:
                self._dev.close()
            raise

    @property
    def uri(self) -> ApplianceUri:
        return self._uri

    @property
    def appliance(self) -> Appliance:
        return self._dev

    def describe(self) -> str:
        return f"appliance {self._uri.device} key {self._uri.key!r}"

    def public_key(self) -> bytes:
        return self._public

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._dev.close()

    # -- state -----------------------------------------------------------------------------

    def _ensure_unlocked(self, info: DeviceInfo | None = None) -> None:
        info = info or self._dev.info()
        if info.state == "blank":
            raise DeviceError(
                f"the appliance at {self._uri.device} is not set up; run: tka appliance setup "
                f"--device {self._uri.device}"
            )
        if info.state == "locked":
            pin = resolve_pin(f"the appliance at {self._uri.device}",
                              pin_source=self._uri.pin_source, callback=self._pin_callback)
            self._dev.unlock(pin)

    def _find_key(self) -> bytes:
        for key in self._dev.list_keys():
            if key.name == self._uri.key:
                return key.public
        raise NotFound(
            f"the appliance at {self._uri.device} has no key named {self._uri.key!r}; "
            "`tka appliance keys` lists its keys, `tka appliance generate NAME` makes one"
        )

    def _policy_now(self) -> Policy:
        if self._policy is None:
            self._policy = self._retry_locked(self._dev.get_policy)
        return self._policy

    def _retry_locked(self, fn: Callable[[], T]) -> T:
        """Run `fn`; if the device locked itself meanwhile (auto_lock), unlock and run it once
        more."""
        try:
            return fn()
        except Locked:
            self._ensure_unlocked()
            return fn()

    # -- authority -----------------------------------------------------------------------------

    def track(self, authority: Authority) -> None:
        self._authority = authority
        what = f"the appliance at {self._uri.device}"
        info = self._retry_locked(self._dev.authority)
        if not info.enrolled:
            if not self._is_own_genesis(authority):
                raise DeviceError(
                    f"{what} is not enrolled in this tailnet's authority; run: tka appliance "
                    "enroll --state DIR"
                )
            head = self._dev.enroll(authority.head_aum.to_cbor(),
                                    note="enroll in the genesis it just signed")
            if head != bytes(authority.head):
                raise DeviceError(
                    f"{what} enrolled at head {format_aum_hash(head)}, not the genesis "
                    f"{format_aum_hash(authority.head)}"
                )
        self._head = bring_up_to_date(self._dev, authority, what=what)

    def _is_own_genesis(self, authority: Authority) -> bool:
        genesis = authority.head_aum
        if genesis.parent is not None or genesis.kind != MessageKind.CHECKPOINT:
            return False
        ours = {k.public for k in self._dev.list_keys()}
        return any(sig.key_id in ours for sig in genesis.signatures)

    def _current_head(self) -> bytes:
        if self._head is not None:
            return self._head
        info = self._retry_locked(self._dev.authority)
        if not info.enrolled or info.head is None:
            raise DeviceError(
                f"the appliance at {self._uri.device} is not enrolled in an authority, so it "
                "cannot sign node keys; run: tka appliance enroll --state DIR"
            )
        return info.head

    # -- signing ---------------------------------------------------------------------------

    def _device_timeout(self, context: SigningContext) -> int | None:
        seconds = context.timeout_seconds or self._uri.timeout
        return None if seconds is None else max(1, math.ceil(seconds))

    def _sign_digest(self, digest: bytes, context: SigningContext | None) -> bytes:
        payload = _payload(context, self.describe())
        assert context is not None
        if context.purpose == "node-key-signature":
            _check_nks(payload, digest)
            timeout = self._device_timeout(context)

            def once() -> bytes:
                signed = self._dev.sign_nks(
                    self._uri.key, payload, self._current_head(), deeplink=context.deeplink,
                    timeout=timeout, note=context.summary,
                )
                return self._checked(signed.key, signed.sighash, digest, signed.signature)

            return self._with_recovery(once)
        if context.purpose == "aum":
            _check_aum(payload, digest)
            timeout = self._device_timeout(context)

            def once_aum() -> bytes:
                signed = self._dev.sign_aum(self._uri.key, payload, timeout=timeout,
                                            note=context.summary)
                return self._checked(signed.key, signed.sighash, digest, signed.signature)

            return self._retry_locked(once_aum)
        raise SignerError(
            f"{self.describe()} signs only AUMs and node-key signatures, not "
            f"{context.purpose!r} digests"
        )

    def _with_recovery(self, fn: Callable[[], bytes]) -> bytes:
        """`fn`, retried once after unlocking (auto_lock) or re-tracking (the authority moved
        on the device since `track`)."""
        try:
            return self._retry_locked(fn)
        except StaleAuthority:
            if self._authority is None:
                raise
            self.track(self._authority)
            return self._retry_locked(fn)

    def _checked(self, key: bytes, sighash: bytes, digest: bytes, signature: bytes,
                 what: str = "sighash") -> bytes:
        if key != self._public:
            raise DeviceError(
                f"{self.describe()} signed with key {key.hex()} instead of {self._public.hex()}; "
                "the signature was discarded — do not use this device"
            )
        if sighash != digest:
            raise DeviceError(
                f"{self.describe()} signed {what} {sighash.hex()} instead of {digest.hex()}; "
                "the signature was discarded — do not use this device"
            )
        return signature

    def sign_many(
        self,
        items: Sequence[tuple[bytes, SigningContext]],
        on_progress: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        out: list[bytes] = []
        i = 0
        while i < len(items):
            run_end = i
            while run_end < len(items) and _batchable(items[run_end][1]):
                run_end += 1
            if run_end - i < 2:
                digest, context = items[i]
                out.append(self.sign(digest, context))
                i += 1
            else:
                for chunk in self._batches(items[i:run_end]):
                    out += self._sign_batch(chunk)
                    if on_progress is not None:
                        on_progress(len(out))
                i = run_end
                continue
            if on_progress is not None:
                on_progress(len(out))
        return out

    def _batches(
        self, items: Sequence[tuple[bytes, SigningContext]]
    ) -> list[list[tuple[bytes, SigningContext]]]:
        return chunks_for_calls(items, lambda item: len(item[1].payload or b""),
                                max(1, self._policy_now().max_batch), self._max_message)

    def _sign_batch(self, chunk: Sequence[tuple[bytes, SigningContext]]) -> list[bytes]:
        payloads: list[bytes] = []
        digests: list[bytes] = []
        for digest, context in chunk:
            if len(digest) != 32:
                raise SignerError(f"refusing to sign a {len(digest)}-byte digest")
            payload = _payload(context, self.describe())
            _check_nks(payload, digest)
            payloads.append(payload)
            digests.append(digest)
        expected = blake2s256(b"".join(digests))
        timeout = self._device_timeout(chunk[0][1])

        def once() -> list[bytes]:
            result = self._dev.sign_batch(
                self._uri.key, self._current_head(), payloads, timeout=timeout,
                note=f"sign {len(payloads)} node keys at once",
            )
            self._checked(result.key, result.digest, expected, b"", what="batch digest")
            if len(result.signatures) != len(payloads):
                raise DeviceError(
                    f"{self.describe()} returned {len(result.signatures)} signatures for "
                    f"{len(payloads)} node keys; nothing was used"
                )
            return list(result.signatures)

        try:
            return self._retry_locked(once)
        except StaleAuthority:
            if self._authority is None:
                raise
            self.track(self._authority)
            return self._retry_locked(once)


def _batchable(context: SigningContext) -> bool:
    return context.purpose == "node-key-signature" and context.payload is not None \
        and context.deeplink is None


def _payload(context: SigningContext | None, what: str) -> bytes:
    if context is None or context.payload is None:
        raise SignerError(
            f"{what} signs only what it can show: it needs the whole AUM or node-key signature, "
            "not a bare digest (this command does not support the appliance yet)"
        )
    return context.payload


def _check_nks(payload: bytes, digest: bytes) -> None:
    try:
        nks = NodeKeySignature.from_cbor(payload)
    except (DecodeError, TKAError) as err:
        raise SignerError(f"the node-key signature to sign does not parse: {err}") from None
    if nks.signature:
        raise SignerError("the node-key signature to sign already carries a signature")
    if nks.sig_hash() != digest:
        raise SignerError(
            "the node-key signature to sign does not hash to the digest asked for; refusing"
        )


def _check_aum(payload: bytes, digest: bytes) -> None:
    try:
        aum = AUM.from_cbor(payload)
    except (DecodeError, TKAError) as err:
        raise SignerError(f"the AUM to sign does not parse: {err}") from None
    if aum.sig_hash() != digest:
        raise SignerError("the AUM to sign does not hash to the digest asked for; refusing")
