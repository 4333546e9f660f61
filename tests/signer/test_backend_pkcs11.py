"""The PKCS#11 backend against a real SoftHSM2 token (in-process)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nacl.signing
import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from signer.backends import open_backend
from signer.backends import pkcs11 as p11
from signer.backends.base import SigningContext
from signer.uri import parse_pkcs11_uri
from signer.verified import VerifiedBackend
from verifier import ed25519
from verifier.errors import DeviceError, SignerError

pytestmark = pytest.mark.softhsm


@pytest.fixture(autouse=True)
def no_leaked_sessions() -> Iterator[None]:
    """Every test must release its sessions; a leak would also break the next test's token."""
    yield
    leaked = dict(p11._SESSIONS)
    p11._SESSIONS.clear()
    assert not leaked, f"sessions left open: {list(leaked)}"


@pytest.fixture
def pin_env(softhsm_token: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TKA_PKCS11_PIN", softhsm_token.pin)
    return softhsm_token


def generate(token: Any, label: str = "tl-key", key_id: bytes | None = None) -> bytes:
    ts = p11.open_token(parse_pkcs11_uri(token.uri(object=label)))
    try:
        return p11.generate_key(ts, label, key_id if key_id is not None else p11.free_key_id(ts))
    finally:
        ts.close()


def raw_session(token: Any) -> Any:
    """A plain python-pkcs11 session (for inspecting what the token really stored)."""
    lib = p11.load_module(token.module_path)
    return lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin)


def test_generated_key_is_sensitive_non_extractable_sign_only(pin_env: Any) -> None:
    public = generate(pin_env, "gen", b"\x05")
    with p11.P11_LOCK:
        session = raw_session(pin_env)
        try:
            priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="gen")
            assert priv[Attribute.SENSITIVE] is True
            assert priv[Attribute.EXTRACTABLE] is False
            assert priv[Attribute.ALWAYS_SENSITIVE] is True
            assert priv[Attribute.NEVER_EXTRACTABLE] is True
            assert priv[Attribute.TOKEN] is True
            assert priv[Attribute.PRIVATE] is True
            assert priv[Attribute.SIGN] is True
            assert priv[Attribute.DECRYPT] is False
            assert priv[Attribute.DERIVE] is False
            assert priv[Attribute.UNWRAP] is False
            assert priv[Attribute.ID] == b"\x05"
            assert priv[Attribute.KEY_TYPE] == KeyType.EC_EDWARDS
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                priv[Attribute.VALUE]
            pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=b"\x05")
            assert pub[Attribute.EC_PARAMS] == p11.ED25519_PARAMS_PRINTABLE
            assert pub[Attribute.EC_POINT] == b"\x04\x20" + public
        finally:
            session.close()


def test_generate_refuses_existing_label_and_id(pin_env: Any) -> None:
    generate(pin_env, "taken", b"\x09")
    uri = parse_pkcs11_uri(pin_env.uri(object="taken"))
    ts = p11.open_token(uri)
    try:
        with pytest.raises(SignerError, match="already has an object with label 'taken'"):
            p11.generate_key(ts, "taken", b"\x0a")
        with pytest.raises(SignerError, match="already has an object with id 09"):
            p11.generate_key(ts, "other", b"\x09")
        assert len(p11.list_public_keys(ts)) == 1
    finally:
        ts.close()


def test_signatures_verify_with_pynacl_and_both_rules(pin_env: Any) -> None:
    public = generate(pin_env)
    with open_backend(pin_env.uri(object="tl-key")) as backend:
        assert isinstance(backend, VerifiedBackend)
        assert backend.public_key() == public
        for i in range(20):
            digest = os.urandom(32)
            sig = backend.sign(digest, SigningContext(purpose="test", summary=f"#{i}"))
            assert len(sig) == 64
            nacl.signing.VerifyKey(public).verify(digest, sig)
            assert ed25519.verify(public, digest, sig, rule="zip215")
            assert ed25519.verify(public, digest, sig, rule="cofactorless")
            assert not ed25519.verify(public, os.urandom(32), sig, rule="zip215")


def test_sign_refuses_non_digest_lengths(pin_env: Any) -> None:
    generate(pin_env)
    with open_backend(pin_env.uri(object="tl-key")) as backend:
        for size in (0, 31, 33, 64):
            with pytest.raises(SignerError, match=f"refusing to sign a {size}-byte message"):
                backend.sign(b"\x01" * size)


def test_key_found_by_id_alone(pin_env: Any) -> None:
    public = generate(pin_env, "by-id", b"\x42")
    with open_backend(pin_env.uri(id=b"\x42")) as backend:
        assert backend.public_key() == public


def test_two_backends_share_one_login(pin_env: Any) -> None:
    a = generate(pin_env, "a", b"\x01")
    b = generate(pin_env, "b", b"\x02")
    with open_backend(pin_env.uri(object="a")) as ka, open_backend(pin_env.uri(object="b")) as kb:
        assert len(p11._SESSIONS) == 1
        assert ka.public_key() == a and kb.public_key() == b
        digest = os.urandom(32)
        assert ed25519.verify(a, digest, ka.sign(digest))
        assert ed25519.verify(b, digest, kb.sign(digest))
    assert not p11._SESSIONS


def test_concurrent_signing_is_serialized_on_the_shared_session(pin_env: Any) -> None:
    """Eight threads signing through two backends at once all get valid signatures, from one
    shared logged-in session (signing calls are serialized by the module lock)."""
    keys = {"a": generate(pin_env, "a", b"\x01"), "b": generate(pin_env, "b", b"\x02")}
    with open_backend(pin_env.uri(object="a")) as ka, open_backend(pin_env.uri(object="b")) as kb:
        backends = {"a": ka, "b": kb}

        def work(worker: int) -> list[tuple[str, bytes, bytes]]:
            name = "ab"[worker % 2]
            out = []
            for _ in range(40):
                digest = os.urandom(32)
                out.append((name, digest, backends[name].sign(digest)))
            return out

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [item for batch in pool.map(work, range(8)) for item in batch]
        assert len(p11._SESSIONS) == 1
    assert len(results) == 320
    for name, digest, signature in results:
        nacl.signing.VerifyKey(keys[name]).verify(digest, signature)


def test_verified_wrapper_rejects_key_that_is_not_the_public_object(pin_env: Any) -> None:
    """A token whose public object belongs to another key: caught before the signature is used."""
    real = nacl.signing.SigningKey.generate()
    other = nacl.signing.SigningKey.generate()
    with p11.P11_LOCK:
        session = raw_session(pin_env)
        try:
            session.create_object({
                Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.LABEL: "mixed",
                Attribute.ID: b"\x33", Attribute.EC_PARAMS: p11.ED25519_PARAMS_PRINTABLE,
                Attribute.VALUE: bytes(real),
            })
            session.create_object({
                Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                Attribute.TOKEN: True, Attribute.LABEL: "mixed", Attribute.ID: b"\x33",
                Attribute.EC_PARAMS: p11.ED25519_PARAMS_PRINTABLE,
                Attribute.EC_POINT: b"\x04\x20" + bytes(other.verify_key),
            })
        finally:
            session.close()
    with open_backend(pin_env.uri(object="mixed")) as backend:
        with pytest.raises(SignerError, match="returned a signature that does not verify"):
            backend.sign(os.urandom(32))
    # Unverified, the same backend hands out a signature by the *other* key: exactly the danger.
    with open_backend(pin_env.uri(object="mixed"), verify=False) as bare:
        digest = os.urandom(32)
        sig = bare.sign(digest)
        assert sig == real.sign(digest).signature


def test_raw_ec_point_from_softhsm_import_is_accepted(pin_env: Any) -> None:
    """`softhsm2-util --import` stores CKA_EC_POINT raw (32 bytes); both forms must work."""
    assert p11.ec_point_to_public_key(b"\x04\x20" + b"\x07" * 32) == b"\x07" * 32
    assert p11.ec_point_to_public_key(b"\x07" * 32) == b"\x07" * 32
    seven = b"\x07"
    bad_points = (b"", b"\x04\x20" + seven * 31, b"\x04\x39" + seven * 57, b"\x03\x20" + seven * 32)
    for bad in bad_points:
        with pytest.raises(SignerError, match="not an Ed25519 public key"):
            p11.ec_point_to_public_key(bad)


def test_wrong_pin_sets_count_low_and_softhsm_never_locks(
    softhsm_token: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SoftHSM 2.6 reports USER_PIN_COUNT_LOW after a wrong PIN but never locks the PIN (no
    retry limit); a real token would. We assert what SoftHSM really does, and that our message
    names the token and the flag without the PIN."""
    monkeypatch.setenv("TKA_PKCS11_PIN", softhsm_token.pin)
    generate(softhsm_token)
    wrong = softhsm_token.pin[::-1] + "9"
    monkeypatch.setenv("TKA_PKCS11_PIN", wrong)
    for attempt in range(12):
        # The PIN is asked for at the first signature, not when the key is opened.
        with open_backend(softhsm_token.uri(object="tl-key")) as backend, \
                pytest.raises(DeviceError) as info:
            backend.sign(os.urandom(32))
        text = str(info.value)
        assert text.startswith(f"PIN incorrect for token '{softhsm_token.label}' (")
        assert "few tries may remain" in text, (attempt, text)
        assert "\n" not in text
        assert wrong not in text and softhsm_token.pin not in text
        with p11.P11_LOCK:
            flags = p11.load_module(softhsm_token.module_path).get_token(
                token_label=softhsm_token.label
            ).flags
        assert flags & pkcs11.TokenFlag.USER_PIN_COUNT_LOW
        assert not flags & pkcs11.TokenFlag.USER_PIN_LOCKED
        assert not flags & pkcs11.TokenFlag.USER_PIN_FINAL_TRY
    monkeypatch.setenv("TKA_PKCS11_PIN", softhsm_token.pin)
    with open_backend(softhsm_token.uri(object="tl-key")) as backend:
        backend.sign(os.urandom(32))


def test_missing_token_missing_key_wrong_module(pin_env: Any) -> None:
    generate(pin_env)
    with pytest.raises(DeviceError, match="no initialized token matching token='absent'") as e:
        open_backend("pkcs11:token=absent;object=tl-key")
    assert pin_env.label in str(e.value)  # lists what is present
    with pytest.raises(SignerError, match="no Ed25519 private key object='nope'"):
        open_backend(pin_env.uri(object="nope"))
    with pytest.raises(DeviceError, match=r"/no/such/module\.so does not exist"):
        open_backend(pin_env.uri(object="tl-key") + "?module-path=/no/such/module.so")
    with pytest.raises(DeviceError, match="is not a PKCS#11 library"):
        open_backend(pin_env.uri(object="tl-key") + f"?module-path={os.__file__}")
    with pytest.raises(SignerError, match="names no key"):
        open_backend(pin_env.uri())


def test_token_directory_removed_mid_run(pin_env: Any) -> None:
    generate(pin_env)
    backend = open_backend(pin_env.uri(object="tl-key"))
    try:
        backend.sign(os.urandom(32))
        shutil.rmtree(pin_env.token_dir)
        with pytest.raises(DeviceError) as info:
            backend.sign(os.urandom(32))
        text = str(info.value)
        assert text.startswith(f"token '{pin_env.label}' failed while signing (")
        assert "reconnect it and run the command again" in text
        assert "\n" not in text
    finally:
        backend.close()


def test_import_seed_signs_like_the_software_key(pin_env: Any) -> None:
    sk = nacl.signing.SigningKey.generate()
    uri = parse_pkcs11_uri(pin_env.uri(object="imported", id=b"\x11"))
    ts = p11.open_token(uri)
    try:
        p11.import_seed(ts, "imported", b"\x11", bytes(sk), bytes(sk.verify_key))
    finally:
        ts.close()
    with open_backend(pin_env.uri(object="imported")) as backend:
        digest = os.urandom(32)
        assert backend.sign(digest) == sk.sign(digest).signature
    with p11.P11_LOCK:
        session = raw_session(pin_env)
        try:
            priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="imported")
            assert priv[Attribute.SENSITIVE] is True and priv[Attribute.EXTRACTABLE] is False
            assert priv[Attribute.LOCAL] is False  # the audit trail: this key was imported
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                priv[Attribute.VALUE]
        finally:
            session.close()


def test_pin_never_in_logs_or_exceptions(
    softhsm_token: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TKA_PKCS11_PIN", softhsm_token.pin)
    generate(softhsm_token)
    texts: list[str] = []
    for pin in (softhsm_token.pin, softhsm_token.pin + "x"):
        monkeypatch.setenv("TKA_PKCS11_PIN", pin)
        for uri in (softhsm_token.uri(object="tl-key"), softhsm_token.uri(object="none")):
            try:
                with open_backend(uri) as backend:
                    backend.sign(os.urandom(32))  # the login happens here
            except SignerError as exc:
                texts.append(str(exc))
                texts.append(repr(exc))
                texts.append(repr(exc.__cause__) + repr(exc.__context__))
    assert len(texts) == 9  # good PIN: missing key fails; wrong PIN: both fail (3 texts each)
    joined = "\n".join(texts) + caplog.text
    assert softhsm_token.pin not in joined
    assert softhsm_token.so_pin not in joined
