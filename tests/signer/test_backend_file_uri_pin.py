"""File keys, key URIs and PIN sources (no token needed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nacl.signing
import pytest

from signer.backends import open_backend
from signer.backends.file import FileBackend, format_nlpriv, write_new_key_file
from signer.pin import PIN_ENV, read_pin_file, resolve_pin
from signer.uri import DEFAULT_PKCS11_MODULE, parse_file_uri, parse_pkcs11_uri
from verifier import ed25519
from verifier.errors import SignerError

# -- file backend -----------------------------------------------------------------------------


def test_generated_key_file_is_0600_nlpriv_and_signs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        public = write_new_key_file(tmp_path / "k")
    finally:
        os.umask(old)
    path = tmp_path / "k"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("nlpriv:") and len(text.strip()) == len("nlpriv:") + 128
    assert text.strip().endswith(public.hex())  # seed ‖ public layout
    with open_backend(f"file:{path}") as backend:
        digest = os.urandom(32)
        sig = backend.sign(digest)
        nacl.signing.VerifyKey(public).verify(digest, sig)
        assert ed25519.verify(public, digest, sig, rule="zip215")
        assert ed25519.verify(public, digest, sig, rule="cofactorless")


def test_key_file_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_new_key_file(path)
    before = path.read_bytes()
    with pytest.raises(SignerError, match="already exists"):
        write_new_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o666])
def test_group_or_world_accessible_key_file_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    write_new_key_file(path)
    path.chmod(mode)
    with pytest.raises(SignerError, match=f"mode {mode:04o}.*chmod 600"):
        FileBackend(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_file_modes_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    public = write_new_key_file(path)
    path.chmod(mode)
    with FileBackend(path) as backend:
        assert backend.public_key() == public


def test_nlpriv_with_wrong_public_half_refused(tmp_path: Path) -> None:
    seed = os.urandom(32)
    other = bytes(nacl.signing.SigningKey.generate().verify_key)
    path = tmp_path / "k"
    path.write_text("nlpriv:" + (seed + other).hex() + "\n")
    path.chmod(0o600)
    with pytest.raises(SignerError, match="does not match its seed"):
        FileBackend(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("privkey:" + "00" * 32, "does not hold an 'nlpriv:'"),
        ("nlpriv:" + "00" * 32, "128 hex digits, got 64"),
        ("nlpriv:" + "zz" * 64, "not valid hex"),
        ("", "does not hold"),
    ],
)
def test_malformed_key_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "k"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(SignerError, match=message):
        FileBackend(path)


def test_go_style_nlpriv_text_is_accepted(tmp_path: Path) -> None:
    """A key written by Tailscale (`nlpriv:` + seed‖public) signs exactly like PyNaCl's key."""
    sk = nacl.signing.SigningKey.generate()
    path = tmp_path / "k"
    path.write_text(format_nlpriv(bytes(sk)))
    path.chmod(0o600)
    with FileBackend(path) as backend:
        digest = os.urandom(32)
        assert backend.sign(digest) == sk.sign(digest).signature


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="does not exist"):
        open_backend(f"file:{tmp_path}/absent")


# -- URIs -------------------------------------------------------------------------------------


def test_pkcs11_uri_rfc7512_attributes_and_percent_encoding() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=My%20Token;object=tl%3Bkey;id=%01%ff;serial=ab12;type=private"
        "?module-path=/opt/lib%20x/p11.so&pin-source=file:/run/pin",
        env={},
    )
    assert uri.token == "My Token"
    assert uri.object == "tl;key"
    assert uri.id == b"\x01\xff"
    assert uri.serial == "ab12"
    assert uri.type == "private"
    assert uri.module_path == "/opt/lib x/p11.so"
    assert uri.pin_source == "file:/run/pin"
    again = parse_pkcs11_uri(uri.to_string(with_module=True), env={})
    assert again == uri


def test_pkcs11_uri_module_precedence() -> None:
    assert parse_pkcs11_uri("pkcs11:token=t", env={}).module_path == DEFAULT_PKCS11_MODULE
    env = {"TKA_PKCS11_MODULE": "/env/mod.so"}
    assert parse_pkcs11_uri("pkcs11:token=t", env=env).module_path == "/env/mod.so"
    assert parse_pkcs11_uri("pkcs11:token=t?module-path=/q.so", env=env).module_path == "/q.so"


@pytest.mark.parametrize(
    "uri, message",
    [
        ("pkcs11:token=a;token=b", "repeats the attribute 'token'"),
        ("pkcs11:tokn=a", "unknown path attribute 'tokn'"),
        ("pkcs11:token=a?pin-file=x", "unknown query attribute 'pin-file'"),
        ("pkcs11:token=a;type=secret", "type='secret' is not one of"),
        ("pkcs11:token=a;slot-id=x1", "slot-id must be a decimal number"),
        ("pkcs11:token", "has no '=value'"),
        ("pkcs12:token=a", "must start with 'pkcs11:'"),
        ("pkcs11:token=%ff%fe", "not valid UTF-8"),
    ],
)
def test_pkcs11_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(SignerError, match=message):
        parse_pkcs11_uri(uri, env={})


def test_pin_value_refused_without_echoing_it() -> None:
    with pytest.raises(SignerError) as info:
        parse_pkcs11_uri("pkcs11:token=a?pin-value=s3cr3t-4711", env={})
    assert "s3cr3t-4711" not in str(info.value)
    assert "pin-source" in str(info.value)


def test_vendor_attributes_ignored() -> None:
    assert parse_pkcs11_uri("pkcs11:token=a;x-vendor=1?x-other=2", env={}).token == "a"


@pytest.mark.parametrize(
    "uri, path",
    [
        ("file:/a/b", "/a/b"),
        ("file:///a/b", "/a/b"),
        ("file://localhost/a/b", "/a/b"),
        ("file:rel/k", "rel/k"),
        ("file:/a%20b", "/a b"),
    ],
)
def test_file_uris(uri: str, path: str) -> None:
    assert str(parse_file_uri(uri)) == path


def test_file_uri_remote_host_refused() -> None:
    with pytest.raises(SignerError, match="remote host"):
        parse_file_uri("file://server/k")


def test_unknown_scheme() -> None:
    with pytest.raises(SignerError, match="unknown key URI scheme 'appliances'"):
        open_backend("appliances:/dev/x")
    with pytest.raises(SignerError, match="is not a URI"):
        open_backend("/just/a/path")


# -- PIN sources ------------------------------------------------------------------------------


def test_pin_order_uri_file_then_env_then_callback(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file\n")
    pin_file.chmod(0o600)
    asked: list[str] = []

    def ask(what: str) -> str:
        asked.append(what)
        return "from-callback"

    env = {PIN_ENV: "from-env"}
    assert resolve_pin("t", uri_pin_source=f"file:{pin_file}", callback=ask, env=env) == "from-file"
    assert resolve_pin("t", uri_pin_source=str(pin_file), callback=ask, env=env) == "from-file"
    assert resolve_pin("t", uri_pin_source=None, callback=ask, env=env) == "from-env"
    assert resolve_pin("token 'x'", uri_pin_source=None, callback=ask, env={}) == "from-callback"
    assert asked == ["token 'x'"]


def test_pin_file_errors_never_show_the_pin(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("p1n-0987\n")
    for mode in (0o644, 0o640, 0o620, 0o604, 0o602, 0o610):  # any bit for group or others
        pin_file.chmod(mode)
        with pytest.raises(SignerError, match="accessible by group or others") as info:
            read_pin_file(str(pin_file))
        assert "p1n-0987" not in str(info.value)
    with pytest.raises(SignerError, match="cannot read PIN file"):
        read_pin_file(str(tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(SignerError, match="is empty"):
        read_pin_file(str(empty))
    with pytest.raises(SignerError, match="not supported"):
        read_pin_file("|cat /x")


def test_no_terminal_no_pin_is_a_clear_error() -> None:
    """In a session with no controlling terminal (as under cron or CI) nothing can be asked."""
    import subprocess
    import sys

    code = (
        "from signer.pin import resolve_pin\n"
        "from verifier.errors import SignerError\n"
        "try:\n"
        "    resolve_pin(\"token 'x'\", uri_pin_source=None, env={})\n"
        "except SignerError as err:\n"
        "    print(err)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, start_new_session=True, stdin=subprocess.DEVNULL,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"no terminal to ask on.*pin-source", proc.stdout), proc.stdout
