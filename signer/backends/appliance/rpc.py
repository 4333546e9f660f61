"""CBOR calls over the link (docs/appliance.md §2): requests `{id, method, params}`, responses
`{id, result}` or `{id, error: {code, message, …}}`, and the device's error codes as exception
classes.

Every error the device reports becomes a subclass of `ApplianceError` (itself a
`verifier.errors.DeviceError`) carrying the protocol's `code` and `name`; its message says what
happened and what to do ("unlock the appliance: tka appliance unlock"). The device's own
message text is untrusted: it is shown with control characters escaped and cut to a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import cbor2

from signer.backends.appliance.framing import HOST_MAX_MESSAGE, Delivery, Link, TooLarge
from verifier.errors import DeviceError
from verifier.textforms import format_aum_hash

MAX_DEPTH = 16
_DEVICE_TEXT_MAX = 200


def untrusted_text(text: object, limit: int = _DEVICE_TEXT_MAX) -> str:
    """Device-supplied text made safe for one terminal line: control, format and non-ASCII
    whitespace characters escaped, backslashes doubled, cut to `limit` characters."""
    raw = text if isinstance(text, str) else repr(text)
    out: list[str] = []
    for ch in raw:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029) or 0x200B <= code <= 0x200F or 0x202A <= code <= 0x202E \
                or 0x2066 <= code <= 0x2069 or code == 0xFEFF:
            out.append(f"\\u{{{code:04x}}}")
        else:
            out.append(ch)
    clean = "".join(out)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class ApplianceError(DeviceError):
    """An error reply from the appliance. `code`/`name` are the protocol's (docs/appliance.md §2.1);
    `device_message` the device's own text (escaped); `fields` any extra fields."""

    code: ClassVar[int] = 0
    name: ClassVar[str] = "unknown"

    def __init__(
        self, message: str, *, device_message: str = "", fields: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.device_message = device_message
        self.fields: dict[str, Any] = dict(fields or {})

    def advice(self) -> str:
        return ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class ProtocolErrorReply(ApplianceError):
    code, name = 1, "protocol_error"


class UnknownMethod(ApplianceError):
    code, name = 2, "unknown_method"


class Declined(ApplianceError):
    code, name = 3, "declined"


class Locked(ApplianceError):
    code, name = 4, "locked"


class WrongPin(ApplianceError):
    code, name = 5, "wrong_pin"

    @property
    def retries(self) -> int | None:
        value = self.fields.get("retries")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class PolicyRefused(ApplianceError):
    code, name = 6, "policy_refused"


class Busy(ApplianceError):
    code, name = 7, "busy"


class ConfirmTimeout(ApplianceError):
    code, name = 8, "timeout"


class Cancelled(ApplianceError):
    code, name = 9, "cancelled"


class BadState(ApplianceError):
    code, name = 10, "bad_state"


class NotFound(ApplianceError):
    code, name = 11, "not_found"


class InvalidMessage(ApplianceError):
    code, name = 12, "invalid_message"


class StaleAuthority(ApplianceError):
    code, name = 13, "stale_authority"

    @property
    def head(self) -> bytes | None:
        value = self.fields.get("head")
        return value if isinstance(value, bytes) and len(value) == 32 else None


class AuditFull(ApplianceError):
    code, name = 14, "audit_full"


class Wiped(ApplianceError):
    code, name = 15, "wiped"


class StorageFailure(ApplianceError):
    code, name = 16, "storage"


class TooLargeReply(ApplianceError):
    code, name = 17, "too_large"


class UnknownErrorCode(ApplianceError):
    """A code this host does not know (newer firmware)."""


ERROR_CLASSES: dict[int, type[ApplianceError]] = {
    cls.code: cls
    for cls in (
        ProtocolErrorReply, UnknownMethod, Declined, Locked, WrongPin, PolicyRefused, Busy,
        ConfirmTimeout, Cancelled, BadState, NotFound, InvalidMessage, StaleAuthority,
        AuditFull, Wiped, StorageFailure, TooLargeReply,
    )
}


def error_from_reply(error: object, method: str) -> ApplianceError:
    """The exception for an `error` map of a response to `method`."""
    if not isinstance(error, dict):
        return ProtocolErrorReply(
            f"the appliance answered {method} with a malformed error; the firmware and tka "
            "may not match"
        )
    code = error.get("code")
    text = untrusted_text(error.get("message", ""))
    fields = {k: v for k, v in error.items() if k not in ("code", "message")}
    if not isinstance(code, int) or isinstance(code, bool):
        return ProtocolErrorReply(
            f"the appliance answered {method} with an error without a code ({text})"
        )
    cls = ERROR_CLASSES.get(code, UnknownErrorCode)
    message = _message(cls, code, method, text, fields)
    return cls(message, device_message=text, fields=fields)


def _message(
    cls: type[ApplianceError], code: int, method: str, text: str, fields: Mapping[str, Any]
) -> str:
    said = f"({text})" if text else ""
    if cls is Declined:
        return _join("declined on the device", "nothing was signed or changed")
    if cls is Locked:
        return "the appliance is locked; unlock it: tka appliance unlock"
    if cls is WrongPin:
        retries = fields.get("retries")
        left = (
            f"{retries} attempt{'s' if retries != 1 else ''} left before the device erases "
            "its keys"
            if isinstance(retries, int) and not isinstance(retries, bool) else ""
        )
        return _join(
            "wrong PIN for the appliance" + (f" ({left})" if left else ""),
            "check pin-source= / TKA_APPLIANCE_PIN before trying again",
        )
    if cls is PolicyRefused:
        return _join(f"the appliance's policy refused {method} {said}".rstrip(),
                     "see tka appliance policy")
    if cls is Busy:
        return (
            "the appliance is waiting for a person to confirm another request; answer it on "
            "the device (or cancel it) and retry"
        )
    if cls is ConfirmTimeout:
        return _join("nobody confirmed on the device in time", "nothing was signed or changed")
    if cls is Cancelled:
        return _join("cancelled on the appliance", "nothing was signed or changed")
    if cls is BadState:
        return f"the appliance cannot do {method} in its current state {said}".rstrip()
    if cls is NotFound:
        return _join(f"not found on the appliance {said}".rstrip(),
                     "tka appliance keys lists the keys it holds")
    if cls is InvalidMessage:
        return f"the appliance refused the message as invalid {said}".rstrip()
    if cls is StaleAuthority:
        head = fields.get("head")
        theirs = (
            f" (its head is {format_aum_hash(head)})"
            if isinstance(head, bytes) and len(head) == 32 else ""
        )
        return _join(
            f"the appliance's view of the authority differs from this node's{theirs}",
            "bring it up to date or re-enroll it: tka appliance enroll --state DIR",
        )
    if cls is AuditFull:
        return _join(
            "the appliance refuses to sign: its audit log is full of unread entries "
            "(force_audit)",
            "read and acknowledge them: tka appliance log --ack",
        )
    if cls is Wiped:
        return _join(
            "too many wrong PINs: the appliance erased its keys",
            "set it up again: tka appliance setup",
        )
    if cls is StorageFailure:
        return _join(f"the appliance could not write its flash {said}".rstrip(),
                     "nothing changed; retry, and replace the device if it persists")
    if cls is TooLargeReply:
        return _join(
            f"the {method} request is larger than the appliance accepts",
            "send fewer items at once",
        )
    if cls is UnknownMethod:
        return _join(
            f"the appliance's firmware does not know the call {method!r}",
            "update the firmware or use a matching tka",
        )
    if cls is ProtocolErrorReply:
        return _join(
            f"the appliance did not accept the {method} request {said}".rstrip(),
            "the firmware and tka may not match",
        )
    return f"the appliance answered {method} with error {code} {said}".rstrip()


class MalformedReply(DeviceError):
    """A response that is not CBOR of the protocol's shape."""


def _malformed(what: str) -> MalformedReply:
    return MalformedReply(
        f"the appliance sent a malformed reply ({what}); the firmware and tka may not match, "
        "or the device is faulty"
    )


def encode_request(request_id: int, method: str, params: Mapping[str, Any] | None) -> bytes:
    body: dict[str, Any] = {"id": request_id, "method": method}
    if params:
        body["params"] = dict(params)
    return bytes(cbor2.dumps(body))


def decode_response(data: bytes) -> dict[str, Any]:
    """Parse one response; MalformedReply for anything that is not `{id, result|error}`."""
    try:
        value = cbor2.loads(
            data, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_DEPTH
        )
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise _malformed(f"not CBOR: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise _malformed("not a map")
    if "id" not in value:
        raise _malformed("no id")
    rid = value["id"]
    if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool) or rid < 0):
        raise _malformed("id is not an unsigned integer")
    if ("result" in value) == ("error" in value):
        raise _malformed("neither or both of result and error")
    extra = set(value) - {"id", "result", "error"}
    if extra:
        raise _malformed(f"unexpected keys {sorted(map(str, extra))}")
    return value


_NOT_AN_ANSWER = object()


def _peek_id(delivered: Delivery) -> object:
    """The `id` of a message from the device (None for id-null), or _NOT_AN_ANSWER for a
    message that is not a well-formed response. Used only to tell whether a request arrived;
    the response itself is read again, in full, by `wait`."""
    if isinstance(delivered, TooLarge):
        return _NOT_AN_ANSWER
    try:
        return decode_response(delivered)["id"]
    except ApplianceError:
        return _NOT_AN_ANSWER


class RpcClient:
    """Numbers requests, sends them, and matches responses by id.

    A response with `id` null (the device could not read the request, or it was too large) is
    taken as the answer to the oldest outstanding request. Responses to requests nobody waits
    for any more (after a cancel) are dropped."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._next_id = 1
        self._outstanding: dict[int, str] = {}
        self._stash: dict[int, dict[str, Any]] = {}

    def send(
        self, method: str, params: Mapping[str, Any] | None = None, *,
        deadline: float | None = None,
    ) -> int:
        """Send a request; returns its id once the device has all of it."""
        request_id = self._next_id
        self._next_id += 1
        self._outstanding[request_id] = method

        def answers(delivered: Delivery) -> bool:
            # An answer to this request (or an id-null one to the oldest, if that is this one)
            # proves the device has all of it even when its final ACK was lost.
            rid = _peek_id(delivered)
            return rid == request_id or (rid is None and min(self._outstanding) == request_id)

        self.link.send(encode_request(request_id, method, params), deadline, answers)
        return request_id

    def forget(self, request_id: int) -> None:
        self._outstanding.pop(request_id, None)
        self._stash.pop(request_id, None)

    def wait(self, request_id: int, deadline: float | None) -> Any:
        """The result of request `request_id`, or its error raised. `deadline` is a
        `time.monotonic()` value; `framing.WaitExpired` when it passes."""
        method = self._outstanding.get(request_id, "?")
        while True:
            stashed = self._stash.pop(request_id, None)
            if stashed is not None:
                return self._finish(request_id, method, stashed)
            delivered = self.link.receive(deadline)
            if isinstance(delivered, TooLarge):
                self.forget(request_id)
                raise _malformed(f"a reply larger than {HOST_MAX_MESSAGE} bytes")
            response = decode_response(delivered)
            rid = response["id"]
            if rid is None:
                rid = min(self._outstanding) if self._outstanding else None
                if rid is None:
                    continue
            if rid == request_id:
                return self._finish(request_id, method, response)
            if rid in self._outstanding:
                self._stash[rid] = response
            # else: a late answer to a request we gave up on

    def _finish(self, request_id: int, method: str, response: dict[str, Any]) -> Any:
        self.forget(request_id)
        if "error" in response:
            raise error_from_reply(response["error"], method)
        return response["result"]

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, deadline: float | None = None
    ) -> Any:
        return self.wait(self.send(method, params), deadline)
