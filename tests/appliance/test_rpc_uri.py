"""Unit tests: error replies → exception classes and messages, response parsing, URIs and PIN
sources of the appliance backend."""

from __future__ import annotations

import os
from pathlib import Path

import cbor2
import pytest

from signer.backends import open_backend
from signer.backends.appliance.rpc import (
    ERROR_CLASSES,
    ApplianceError,
    AuditFull,
    Declined,
    Locked,
    MalformedReply,
    StaleAuthority,
    UnknownErrorCode,
    WrongPin,
    decode_response,
    encode_request,
    error_from_reply,
    untrusted_text,
)
from signer.backends.appliance.uri import (
    ApplianceUri,
    parse_appliance_uri,
    read_private_pin_file,
    resolve_pin,
)
from verifier.errors import DeviceError, SignerError

NAMES = {
    1: "protocol_error", 2: "unknown_method", 3: "declined", 4: "locked", 5: "wrong_pin",
    6: "policy_refused", 7: "busy", 8: "timeout", 9: "cancelled", 10: "bad_state",
    11: "not_found", 12: "invalid_message", 13: "stale_authority", 14: "audit_full",
    15: "wiped", 16: "storage", 17: "too_large",
}


@pytest.mark.parametrize("code", sorted(NAMES))
def test_every_code_has_a_class(code: int) -> None:
    err = error_from_reply({"code": code, "message": "m"}, "sign_nks")
    assert type(err) is ERROR_CLASSES[code]
    assert err.code == code and err.name == NAMES[code]
    assert isinstance(err, DeviceError) and isinstance(err, ApplianceError)
    text = str(err)
    assert "\n" not in text and text


def test_messages_say_what_to_do() -> None:
    assert "tka appliance unlock" in str(error_from_reply({"code": 4, "message": ""}, "x"))
    declined = error_from_reply({"code": 3, "message": "no"}, "sign_nks")
    assert isinstance(declined, Declined)
    assert "declined on the device" in str(declined) and "nothing was signed" in str(declined)
    wrong = error_from_reply({"code": 5, "message": "wrong", "retries": 3}, "unlock")
    assert isinstance(wrong, WrongPin) and wrong.retries == 3
    assert "3 attempts left" in str(wrong)
    one = error_from_reply({"code": 5, "message": "wrong", "retries": 1}, "unlock")
    assert "1 attempt left" in str(one)
    head = bytes(range(32))
    stale = error_from_reply({"code": 13, "message": "", "head": head}, "sign_nks")
    assert isinstance(stale, StaleAuthority) and stale.head == head
    assert "tka appliance enroll" in str(stale)
    assert "tka appliance log --ack" in str(error_from_reply({"code": 14}, "sign_nks"))
    assert isinstance(error_from_reply({"code": 14}, "x"), AuditFull)
    assert "tka appliance setup" in str(error_from_reply({"code": 15}, "unlock"))
    unknown = error_from_reply({"code": 99, "message": "future"}, "x")
    assert isinstance(unknown, UnknownErrorCode) and "99" in str(unknown)


def test_device_text_is_escaped_and_cut() -> None:
    err = error_from_reply({"code": 6, "message": "evil\x1b[2Jline\nnext\u202e" + "x" * 500},
                           "sign_aum")
    text = str(err)
    assert "\x1b" not in text and "\n" not in text and "\u202e" not in text
    assert "\\x1b" in text and "\\u{202e}" in text
    assert len(err.device_message) <= 200
    assert untrusted_text("a\\b") == "a\\\\b"


def test_malformed_error_maps() -> None:
    assert "malformed" in str(error_from_reply("nope", "x"))
    assert "without a code" in str(error_from_reply({"message": "m"}, "x"))
    assert "without a code" in str(error_from_reply({"code": True}, "x"))


def test_request_encoding() -> None:
    req = cbor2.loads(encode_request(7, "sign_nks", {"key": "a", "nks": b"\x01"}))
    assert req == {"id": 7, "method": "sign_nks", "params": {"key": "a", "nks": b"\x01"}}
    assert cbor2.loads(encode_request(8, "info", None)) == {"id": 8, "method": "info"}


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",  # not CBOR
        cbor2.dumps([1, 2]),
        cbor2.dumps({"result": 1}),
        cbor2.dumps({"id": -1, "result": 1}),
        cbor2.dumps({"id": 1}),
        cbor2.dumps({"id": 1, "result": 1, "error": {}}),
        cbor2.dumps({"id": 1, "result": 1, "log": "x"}),
        bytes.fromhex("a2626964016269640201"),  # duplicate key "id"
        bytes.fromhex("bf626964 01 ff".replace(" ", "")),  # indefinite-length map
    ],
)
def test_decode_response_rejects(data: bytes) -> None:
    with pytest.raises(MalformedReply):
        decode_response(data)


def test_decode_response_accepts() -> None:
    assert decode_response(cbor2.dumps({"id": 3, "result": {}}))["id"] == 3
    assert decode_response(cbor2.dumps({"id": None, "error": {"code": 17}}))["id"] is None


# --------------------------------------------------------------------------------------------
# URIs


def test_uri_forms() -> None:
    u = parse_appliance_uri("appliance:device=/dev/ttyACM0;key=admin", env={})
    assert u == ApplianceUri(device="/dev/ttyACM0", key="admin")
    u = parse_appliance_uri(
        "appliance:device=socket://127.0.0.1:7000;key=a.b;pin-source=file:/p%20q;timeout=30",
        env={})
    assert u.device == "socket://127.0.0.1:7000" and u.key == "a.b"
    assert u.pin_source == "file:/p q" and u.timeout == 30.0
    assert parse_appliance_uri("appliance:/dev/pts/3;key=k", env={}).device == "/dev/pts/3"
    assert parse_appliance_uri("APPLIANCE:key=k", env={"TKA_APPLIANCE_DEVICE": "/dev/x"}) \
        .device == "/dev/x"
    again = parse_appliance_uri(u.to_string(), env={})
    assert again == u


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("appliance:device=/dev/x", "names no key"),
        ("appliance:key=k", "names no device"),
        ("appliance:device=/dev/x;key=k;pin-value=123456", "pin-value"),
        ("appliance:device=/dev/x;key=k;color=red", "unknown attribute 'color'"),
        ("appliance:device=/dev/x;key=k;key=j", "repeats"),
        ("appliance:device=/dev/x;key=k;timeout=soon", "number of seconds"),
        ("appliance:device=/dev/x;key=k;timeout=0", "1-3600"),
        ("appliance:device=/dev/x;key", "no '=value'"),
        ("pkcs11:token=x", "not an appliance URI"),
    ],
)
def test_uri_errors(uri: str, match: str) -> None:
    with pytest.raises(SignerError, match=match) as info:
        parse_appliance_uri(uri, env={})
    assert "123456" not in str(info.value)


def test_open_backend_knows_the_scheme(tmp_path: Path) -> None:
    # The scheme is dispatched to the appliance backend, which then fails on the missing port.
    with pytest.raises(DeviceError, match="no appliance at"):
        open_backend(f"appliance:device={tmp_path}/nope;key=k")
    with pytest.raises(SignerError, match="unknown key URI scheme 'appliances'"):
        open_backend("appliances:/dev/x")


def test_pin_sources(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file-123\n")
    pin_file.chmod(0o600)
    asked: list[str] = []

    def ask(what: str) -> str:
        asked.append(what)
        return "from-prompt"

    env = {"TKA_APPLIANCE_PIN": "from-env-123"}
    assert resolve_pin("d", pin_source=f"file:{pin_file}", callback=ask, env=env) == \
        "from-file-123"
    assert resolve_pin("d", pin_source=None, callback=ask, env=env) == "from-env-123"
    assert resolve_pin("d", pin_source=None, callback=ask, env={}) == "from-prompt"
    assert asked == ["d"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_pin_file_must_be_private(tmp_path: Path, mode: int) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("secret-pin-4711\n")
    os.chmod(pin_file, mode)
    with pytest.raises(SignerError, match="chmod 600") as info:
        read_private_pin_file(f"file:{pin_file}")
    assert "secret-pin-4711" not in str(info.value)


def test_pin_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="cannot read PIN file"):
        read_private_pin_file(str(tmp_path / "absent"))


def test_locked_is_a_device_error() -> None:
    assert issubclass(Locked, DeviceError)
