"""`Appliance`: one method per call of docs/appliance.md §2.2, with typed results.

    with Appliance.open("/dev/ttyACM0") as dev:
        info = dev.info()
        dev.unlock(pin)
        signed = dev.sign_nks("admin", nks_bytes, head)

Opening runs the RESET handshake. Every reply is checked for the shape docs/appliance.md §2.2 gives
it (lengths of keys, hashes and signatures, types) before a result object is built, so callers never
see a half-formed reply. Calls that wait for the person ("confirm") are bounded by `confirm_wait`
(120 s by default): at the deadline, or on Ctrl-C (KeyboardInterrupt), the host sends `cancel`,
waits briefly for the device to answer `cancelled`, and then raises (DeviceError, or the
KeyboardInterrupt itself). While the device waits for the person, `notify` is told once per
call ("confirm on the device").
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import cbor2

from signer.backends.appliance.framing import (
    BUSY_AWAITING_PERSON,
    Link,
    LinkError,
    WaitExpired,
)
from signer.backends.appliance.rpc import MalformedReply, RpcClient
from signer.backends.appliance.transport import SerialTransport
from verifier import ed25519
from verifier.errors import DeviceError

PROTOCOL = 1
DEFAULT_CONFIRM_WAIT = 120.0  # seconds the host waits for the person
CALL_WAIT = 60.0  # calls that do not wait for the person
CANCEL_WAIT = 3.0  # after sending cancel, how long to wait for the device's answers
ATTESTATION_CONTEXT = b"tka-appliance attestation v1\x00"
POLICY_FIELDS = ("cosigners", "max_batch", "confirm_timeout", "auto_lock", "force_audit")

Notify = Callable[[str], None]


def stderr_notify(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class DeviceInfo:
    protocol: int
    firmware: str
    board: str
    identity: bytes
    state: str  # "blank", "locked", "unlocked"
    pin_retries: int
    max_message: int
    enrolled: bool | None  # only reported when unlocked


@dataclass(frozen=True)
class GeneratedKey:
    name: str
    public: bytes
    statement: bytes
    attestation: bytes
    created: int


@dataclass(frozen=True)
class KeyInfo:
    name: str
    public: bytes
    created: int
    signatures: int


@dataclass(frozen=True)
class TrustedKey:
    public: bytes
    votes: int


@dataclass(frozen=True)
class AuthorityInfo:
    enrolled: bool
    head: bytes | None = None
    state_id1: int = 0
    state_id2: int = 0
    keys: tuple[TrustedKey, ...] = ()
    disablement_values: int = 0
    history: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class UpdateResult:
    head: bytes
    applied: int
    ignored: int


@dataclass(frozen=True)
class Signed:
    key: bytes
    sighash: bytes
    signature: bytes


@dataclass(frozen=True)
class BatchSigned:
    key: bytes
    digest: bytes
    signatures: tuple[bytes, ...]


@dataclass(frozen=True)
class Pending:
    id: int
    method: str
    seconds_left: int


@dataclass(frozen=True)
class Status:
    state: str  # "idle", "confirming"
    locked: bool
    pending: Pending | None


@dataclass(frozen=True)
class SignedBlob:
    """An audit entry or log head: CBOR `body` and the identity key's `sig` over it."""

    body: bytes
    sig: bytes


@dataclass(frozen=True)
class AuditPage:
    entries: tuple[SignedBlob, ...]
    head: SignedBlob


@dataclass(frozen=True)
class Policy:
    cosigners: int
    max_batch: int
    confirm_timeout: int
    auto_lock: int
    force_audit: bool
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields newer firmware adds

    def as_dict(self) -> dict[str, Any]:
        return {
            "cosigners": self.cosigners,
            "max_batch": self.max_batch,
            "confirm_timeout": self.confirm_timeout,
            "auto_lock": self.auto_lock,
            "force_audit": self.force_audit,
            **dict(self.extra),
        }


# --------------------------------------------------------------------------------------------
# Reply checking


def _bad(method: str, what: str) -> MalformedReply:
    return MalformedReply(
        f"the appliance's reply to {method} is malformed ({what}); the firmware and tka may "
        "not match, or the device is faulty"
    )


class _Reply:
    """Typed access to a result map; every failure is a MalformedReply naming the field."""

    def __init__(self, method: str, value: object) -> None:
        if not isinstance(value, dict):
            raise _bad(method, "the result is not a map")
        self.method = method
        self.value: dict[Any, Any] = value

    def has(self, name: str) -> bool:
        return name in self.value

    def raw(self, name: str) -> Any:
        if name not in self.value:
            raise _bad(self.method, f"no {name!r}")
        return self.value[name]

    def uint(self, name: str) -> int:
        return _uint(self.method, name, self.raw(name))

    def text(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise _bad(self.method, f"{name!r} is not text")
        return value

    def bool(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise _bad(self.method, f"{name!r} is not a boolean")
        return value

    def blob(self, name: str, size: int | None = None) -> bytes:
        return _blob(self.method, name, self.raw(name), size)

    def array(self, name: str) -> list[Any]:
        value = self.raw(name)
        if not isinstance(value, list):
            raise _bad(self.method, f"{name!r} is not an array")
        return value

    def sub(self, name: str) -> _Reply:
        value = self.raw(name)
        if not isinstance(value, dict):
            raise _bad(self.method, f"{name!r} is not a map")
        return _Reply(self.method, value)


def _uint(method: str, name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(method, f"{name!r} is not an unsigned integer")
    return value


def _blob(method: str, name: str, value: object, size: int | None) -> bytes:
    if not isinstance(value, bytes):
        raise _bad(method, f"{name!r} is not a byte string")
    if size is not None and len(value) != size:
        raise _bad(method, f"{name!r} is {len(value)} bytes, not {size}")
    return value


def _signed_blob(method: str, value: object, what: str) -> SignedBlob:
    if not isinstance(value, dict):
        raise _bad(method, f"{what} is not a map")
    r = _Reply(method, value)
    return SignedBlob(body=r.blob("body"), sig=r.blob("sig", 64))


def parse_policy(method: str, value: object) -> Policy:
    r = _Reply(method, value)
    return Policy(
        cosigners=r.uint("cosigners"),
        max_batch=r.uint("max_batch"),
        confirm_timeout=r.uint("confirm_timeout"),
        auto_lock=r.uint("auto_lock"),
        force_audit=r.bool("force_audit"),
        extra={k: v for k, v in r.value.items() if k not in POLICY_FIELDS},
    )


def verify_attestation(identity: bytes, key: GeneratedKey) -> None:
    """Check that `key` was made inside the device whose identity key is `identity`
    (docs/appliance.md §2.2)."""
    where = "generate_key"
    if not ed25519.verify(identity, ATTESTATION_CONTEXT + key.statement, key.attestation,
                          rule="cofactorless"):
        raise DeviceError(
            "the appliance's attestation of the new key does not verify with its identity key; "
            "do not use this key or this device"
        )
    try:
        stmt = cbor2.loads(key.statement, allow_indefinite=False, allow_duplicate_keys=False,
                           max_depth=4)
    except (cbor2.CBORDecodeError, ValueError, TypeError):
        raise _bad(where, "the statement is not CBOR") from None
    r = _Reply(where, stmt)
    mismatches = [
        name
        for name, ok in (
            ("v", r.has("v") and r.raw("v") == 1),
            ("kind", r.has("kind") and r.raw("kind") == "tka-appliance-key"),
            ("identity", r.has("identity") and r.raw("identity") == identity),
            ("name", r.has("name") and r.raw("name") == key.name),
            ("public", r.has("public") and r.raw("public") == key.public),
            ("created", r.has("created") and r.raw("created") == key.created),
        )
        if not ok
    ]
    if mismatches:
        raise DeviceError(
            "the appliance's attestation statement does not match the key it reported "
            f"({', '.join(mismatches)}); do not use this key"
        )


# --------------------------------------------------------------------------------------------
# The device


class Appliance:
    """An open appliance. Not thread-safe: one call at a time, from one thread."""

    def __init__(
        self,
        link: Link,
        *,
        confirm_wait: float = DEFAULT_CONFIRM_WAIT,
        notify: Notify | None = stderr_notify,
    ) -> None:
        self.link = link
        self.rpc = RpcClient(link)
        self.confirm_wait = confirm_wait
        self.notify = notify
        self._waiting_note: str | None = None
        self._info: DeviceInfo | None = None
        link.on_busy = self._on_busy

    @classmethod
    def open(
        cls,
        device: str,
        *,
        confirm_wait: float = DEFAULT_CONFIRM_WAIT,
        notify: Notify | None = stderr_notify,
    ) -> Appliance:
        """Open the port and run the RESET handshake."""
        transport = SerialTransport(device)
        try:
            link = Link(transport)
            link.reset()
        except BaseException:
            transport.close()
            raise
        return cls(link, confirm_wait=confirm_wait, notify=notify)

    @property
    def device(self) -> str:
        return self.link.name

    @property
    def max_message(self) -> int:
        """The device's `max_message` (from the last `info`, asked for if there was none)."""
        return (self._info or self.info()).max_message

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calling -----------------------------------------------------------------------------

    def _on_busy(self, reason: int) -> None:
        if reason == BUSY_AWAITING_PERSON and self._waiting_note is not None:
            note, self._waiting_note = self._waiting_note, None
            if self.notify is not None:
                self.notify(note)

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        confirm: bool = False,
        wait: float | None = None,
        note: str | None = None,
    ) -> Any:
        """One call; `confirm` calls may wait `wait` (default `confirm_wait`) for the person."""
        limit = wait if wait is not None else (self.confirm_wait if confirm else CALL_WAIT)
        deadline = time.monotonic() + limit
        self._waiting_note = (
            "confirm on the device" + (f": {note}" if note else "") if confirm else None
        )
        request_id: int | None = None
        try:
            try:
                request_id = self.rpc.send(method, params)
                return self.rpc.wait(request_id, deadline)
            except WaitExpired:
                self._cancel(request_id)
                raise DeviceError(
                    f"no answer from the appliance within {limit:g} s"
                    + ("; nobody confirmed on the device, the request was cancelled and "
                       "nothing was signed or changed" if confirm else "")
                ) from None
            except KeyboardInterrupt:
                self._cancel(request_id)
                raise
        finally:
            self._waiting_note = None

    def _cancel(self, request_id: int | None) -> None:
        """Best effort: ask the device to drop the pending call and wait briefly for it."""
        deadline = time.monotonic() + CANCEL_WAIT
        with contextlib.suppress(DeviceError, WaitExpired):
            cancel_id = self.rpc.send("cancel", None, deadline=deadline)
            self.rpc.wait(cancel_id, deadline)
            if request_id is not None:
                with contextlib.suppress(DeviceError):
                    self.rpc.wait(request_id, deadline)
        if request_id is not None:
            self.rpc.forget(request_id)

    # -- the calls of docs/appliance.md §2.2
    # ---------------------------------------------------------------

    def info(self) -> DeviceInfo:
        r = _Reply("info", self.call("info"))
        state = r.text("state")
        if state not in ("blank", "locked", "unlocked"):
            raise _bad("info", f"unknown state {state!r}")
        protocol = r.uint("protocol")
        if protocol != PROTOCOL:
            raise DeviceError(
                f"the appliance speaks protocol {protocol}, this tka speaks {PROTOCOL}; update "
                "tka or the firmware"
            )
        self._info = DeviceInfo(
            protocol=protocol,
            firmware=r.text("firmware"),
            board=r.text("board"),
            identity=r.blob("identity", 32),
            state=state,
            pin_retries=r.uint("pin_retries"),
            max_message=r.uint("max_message"),
            enrolled=r.bool("enrolled") if r.has("enrolled") else None,
        )
        return self._info

    def setup(self, pin: str) -> bytes:
        r = _Reply("setup", self.call("setup", {"pin": pin}, confirm=True,
                                      note="set up the appliance"))
        return r.blob("identity", 32)

    def unlock(self, pin: str) -> None:
        self.call("unlock", {"pin": pin})

    def lock(self) -> None:
        self.call("lock")

    def change_pin(self, pin: str, new_pin: str) -> None:
        self.call("change_pin", {"pin": pin, "new_pin": new_pin}, confirm=True,
                  note="change the PIN")

    def generate_key(self, name: str) -> GeneratedKey:
        r = _Reply("generate_key", self.call("generate_key", {"name": name}, confirm=True,
                                             note=f"generate key {name!r}"))
        statement = r.blob("statement")
        created = 0
        with contextlib.suppress(cbor2.CBORDecodeError, ValueError, TypeError):
            stmt = cbor2.loads(statement, allow_indefinite=False, max_depth=4)
            if isinstance(stmt, dict) and isinstance(stmt.get("created"), int):
                created = int(stmt["created"])
        key = GeneratedKey(
            name=r.text("name"),
            public=r.blob("public", 32),
            statement=statement,
            attestation=r.blob("attestation", 64),
            created=created,
        )
        if key.name != name:
            raise _bad("generate_key", f"it names the key {key.name!r}, not {name!r}")
        return key

    def list_keys(self) -> list[KeyInfo]:
        r = _Reply("list_keys", self.call("list_keys"))
        out = []
        for item in r.array("keys"):
            k = _Reply("list_keys", item)
            out.append(KeyInfo(name=k.text("name"), public=k.blob("public", 32),
                               created=k.uint("created"), signatures=k.uint("signatures")))
        return out

    def enroll(self, aum: bytes, *, replace: bool = False, note: str | None = None) -> bytes:
        params: dict[str, Any] = {"aum": aum}
        if replace:
            params["replace"] = True
        r = _Reply("enroll", self.call("enroll", params, confirm=True,
                                       note=note or "enroll in the tailnet's authority"))
        return r.blob("head", 32)

    def authority(self) -> AuthorityInfo:
        r = _Reply("authority", self.call("authority"))
        if not r.bool("enrolled"):
            return AuthorityInfo(enrolled=False)
        keys = []
        for item in r.array("keys"):
            k = _Reply("authority", item)
            keys.append(TrustedKey(public=k.blob("public"), votes=k.uint("votes")))
        history = tuple(_blob("authority", "history", h, 32) for h in r.array("history"))
        return AuthorityInfo(
            enrolled=True,
            head=r.blob("head", 32),
            state_id1=r.uint("state_id1"),
            state_id2=r.uint("state_id2"),
            keys=tuple(keys),
            disablement_values=r.uint("disablement_values"),
            history=history,
        )

    def authority_update(self, aums: Sequence[bytes]) -> UpdateResult:
        r = _Reply("authority_update", self.call("authority_update", {"aums": list(aums)}))
        return UpdateResult(head=r.blob("head", 32), applied=r.uint("applied"),
                            ignored=r.uint("ignored"))

    def sign_nks(
        self,
        key: str,
        nks: bytes,
        head: bytes,
        *,
        deeplink: str | None = None,
        timeout: int | None = None,
        note: str | None = None,
    ) -> Signed:
        params: dict[str, Any] = {"key": key, "nks": nks, "head": head}
        if deeplink is not None:
            params["deeplink"] = deeplink
        wait = None
        if timeout is not None:
            params["timeout"] = timeout
            wait = timeout + 5.0
        r = _Reply("sign_nks", self.call("sign_nks", params, confirm=True, wait=wait,
                                         note=note))
        return Signed(key=r.blob("key", 32), sighash=r.blob("sighash", 32),
                      signature=r.blob("signature", 64))

    def sign_batch(
        self,
        key: str,
        head: bytes,
        items: Sequence[bytes],
        *,
        timeout: int | None = None,
        note: str | None = None,
    ) -> BatchSigned:
        params: dict[str, Any] = {"key": key, "head": head, "items": list(items)}
        wait = None
        if timeout is not None:
            params["timeout"] = timeout
            wait = timeout + 5.0
        r = _Reply("sign_batch", self.call("sign_batch", params, confirm=True, wait=wait,
                                           note=note))
        signatures = tuple(_blob("sign_batch", "signatures", s, 64) for s in r.array("signatures"))
        return BatchSigned(key=r.blob("key", 32), digest=r.blob("digest", 32),
                           signatures=signatures)

    def sign_aum(
        self, key: str, aum: bytes, *, timeout: int | None = None, note: str | None = None
    ) -> Signed:
        params: dict[str, Any] = {"key": key, "aum": aum}
        wait = None
        if timeout is not None:
            params["timeout"] = timeout
            wait = timeout + 5.0
        r = _Reply("sign_aum", self.call("sign_aum", params, confirm=True, wait=wait, note=note))
        return Signed(key=r.blob("key", 32), sighash=r.blob("sighash", 32),
                      signature=r.blob("signature", 64))

    def status(self) -> Status:
        r = _Reply("status", self.call("status"))
        state = r.text("state")
        pending = None
        if r.has("pending") and r.raw("pending") is not None:
            p = r.sub("pending")
            pending = Pending(id=p.uint("id"), method=p.text("method"),
                              seconds_left=p.uint("seconds_left"))
        return Status(state=state, locked=r.bool("locked"), pending=pending)

    def cancel(self) -> bool:
        return _Reply("cancel", self.call("cancel")).bool("cancelled")

    def audit_log(
        self,
        *,
        start: int | None = None,
        limit: int | None = None,
        nonce: bytes | None = None,
        ack: int | None = None,
    ) -> AuditPage:
        params: dict[str, Any] = {}
        for name, value in (("start", start), ("limit", limit), ("nonce", nonce), ("ack", ack)):
            if value is not None:
                params[name] = value
        r = _Reply("audit_log", self.call("audit_log", params))
        entries = tuple(_signed_blob("audit_log", e, "an entry") for e in r.array("entries"))
        return AuditPage(entries=entries, head=_signed_blob("audit_log", r.raw("head"), "head"))

    def get_policy(self) -> Policy:
        return parse_policy("get_policy", _Reply("get_policy", self.call("get_policy"))
                            .raw("policy"))

    def set_policy(self, changes: Mapping[str, int | bool]) -> Policy:
        result = self.call("set_policy", {"policy": dict(changes)}, confirm=True,
                           note="change the policy")
        return parse_policy("set_policy", _Reply("set_policy", result).raw("policy"))

    def wipe(self) -> None:
        self.call("wipe", confirm=True, note="erase every key")


__all__ = [
    "Appliance",
    "AuditPage",
    "AuthorityInfo",
    "BatchSigned",
    "DeviceInfo",
    "GeneratedKey",
    "KeyInfo",
    "LinkError",
    "Pending",
    "Policy",
    "Signed",
    "SignedBlob",
    "Status",
    "TrustedKey",
    "UpdateResult",
    "verify_attestation",
]
