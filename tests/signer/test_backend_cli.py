"""`tka key …` as a user runs it: `python -m signer.cli` subprocesses against real SoftHSM2."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

pytestmark = pytest.mark.softhsm

CLI = [sys.executable, "-m", "signer.cli"]
REPO = Path(__file__).resolve().parents[2]


def tka(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    # A session of its own: no controlling terminal, so a PIN prompt fails instead of waiting
    # on the terminal of whoever runs the tests.
    return subprocess.run(
        [*CLI, *args], env=env, cwd=REPO, input=stdin, capture_output=True, text=True,
        timeout=120, start_new_session=True,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 1 with exactly one line, `tka: …`, on stderr (no traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tka: ")
    return lines[0]


def generate(token: Any, label: str = "tl-key", id_: bytes | None = None) -> bytes:
    proc = tka("key", "generate", token.uri(object=label, id=id_), env=token.env())
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("tlpub:") and len(line) == 6 + 64
    return bytes.fromhex(line[6:])


def test_generate_show_list_json(softhsm_token: Any) -> None:
    env = softhsm_token.env()
    first = generate(softhsm_token, "first")
    second = generate(softhsm_token, "second", b"\x07")
    assert first != second
    show = tka("key", "show", softhsm_token.uri(object="second"), env=env)
    assert show.returncode == 0 and show.stdout == "tlpub:" + second.hex() + "\n"

    # `key list` needs no PIN: public objects are readable without a login.
    no_pin = {k: v for k, v in env.items() if k != "TKA_PKCS11_PIN"}
    listing = tka("key", "list", "--json", env=no_pin)
    assert listing.returncode == 0, listing.stderr
    doc = json.loads(listing.stdout)
    assert set(doc) == {"schema", "module", "tokens"}
    assert doc["schema"] == "tka.key-list/1"
    assert doc["module"] == softhsm_token.module_path
    assert len(doc["tokens"]) == 1  # SoftHSM's spare uninitialized token is not listed
    token = doc["tokens"][0]
    assert set(token) == {
        "label", "serial", "manufacturer", "model", "slot_id", "ed25519", "flags", "keys"
    }
    assert token["label"] == softhsm_token.label
    assert token["ed25519"] is True
    assert isinstance(token["slot_id"], int) and isinstance(token["serial"], str)
    assert token["flags"] == {
        "login_required": True, "pin_count_low": False, "pin_final_try": False,
        "pin_locked": False, "pin_to_be_changed": False,
    }
    keys = {k["object"]: k for k in token["keys"]}
    assert set(keys) == {"first", "second"}
    for key in token["keys"]:
        assert set(key) == {"object", "id", "public_key", "uri"}
    assert keys["first"]["public_key"] == "tlpub:" + first.hex()
    assert keys["second"]["id"] == "07"
    assert keys["second"]["uri"] == f"pkcs11:token={softhsm_token.label};object=second;id=%07"
    # The printed URI opens the key it lists.
    again = tka("key", "show", keys["first"]["uri"], env=env)
    assert again.stdout.strip() == "tlpub:" + first.hex()

    text = tka("key", "list", env=no_pin)
    assert f"tlpub:{first.hex()}" in text.stdout and softhsm_token.label in text.stdout


def test_list_reports_low_pin_count_after_a_wrong_pin(softhsm_token: Any) -> None:
    generate(softhsm_token)
    bad = {**softhsm_token.env(), "TKA_PKCS11_PIN": "0000"}
    line = one_error_line(tka("key", "generate", softhsm_token.uri(object="x"), env=bad))
    assert line == (
        f"tka: PIN incorrect for token '{softhsm_token.label}' (few tries may remain); check the "
        "PIN in pin-source / TKA_PKCS11_PIN before trying again: repeated failures lock the PIN"
    )
    doc = json.loads(tka("key", "list", "--json", env=bad).stdout)
    assert doc["tokens"][0]["flags"]["pin_count_low"] is True
    assert doc["tokens"][0]["flags"]["pin_locked"] is False
    assert "pin count low" in tka("key", "list", env=bad).stdout


def test_generate_refuses_to_overwrite(softhsm_token: Any) -> None:
    generate(softhsm_token, "dup", b"\x03")
    line = one_error_line(
        tka("key", "generate", softhsm_token.uri(object="dup"), env=softhsm_token.env())
    )
    assert "already has an object with label 'dup'" in line
    line = one_error_line(
        tka("key", "generate", softhsm_token.uri(object="new", id=b"\x03"), env=softhsm_token.env())
    )
    assert "already has an object with id 03" in line


def test_import_file_key_warns_and_signs_like_the_file(softhsm_token: Any, tmp_path: Path) -> None:
    env = softhsm_token.env()
    key_file = tmp_path / "soft.key"
    made = tka("key", "generate", f"file:{key_file}", env=env)
    assert made.returncode == 0, made.stderr
    file_pub = made.stdout.strip()
    proc = tka("key", "import", f"file:{key_file}", softhsm_token.uri(object="imp"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == file_pub
    assert proc.stderr.count("WARNING") >= 3
    shown = tka("key", "show", softhsm_token.uri(object="imp"), env=env)
    assert shown.stdout.strip() == file_pub
    # Importing the same label again is refused, and the token keeps one key of that name.
    again = tka("key", "import", f"file:{key_file}", softhsm_token.uri(object="imp"), env=env)
    assert "already has an object with label 'imp'" in again.stderr.splitlines()[-1]
    assert again.returncode == 1


def test_import_refuses_readable_key_file(softhsm_token: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "soft.key"
    tka("key", "generate", f"file:{key_file}", env=softhsm_token.env())
    key_file.chmod(0o644)
    proc = tka("key", "import", f"file:{key_file}", softhsm_token.uri(object="imp"),
               env=softhsm_token.env())
    assert proc.returncode == 1
    assert "accessible by group or others" in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "case",
    ["wrong-pin", "missing-token", "missing-key", "wrong-module", "bad-uri", "no-pin"],
)
def test_errors_are_one_line_exit_1(softhsm_token: Any, case: str) -> None:
    generate(softhsm_token)
    env = softhsm_token.env()
    uri = softhsm_token.uri(object="tl-key")
    expect = {
        "wrong-pin": "PIN incorrect for token",
        "missing-token": "no initialized token matching token='absent'",
        "missing-key": "no Ed25519 public key object='absent'",
        "wrong-module": "PKCS#11 module /no/such.so does not exist",
        "bad-uri": "unknown path attribute 'tokn'",
        "no-pin": "no terminal to ask on",
    }[case]
    if case == "wrong-pin":
        env["TKA_PKCS11_PIN"] = softhsm_token.pin + "1"
        args = ["key", "sign-nodekeys", "--key", uri, "--in", "-", "--out", "-", "--unchecked",
                "--yes"]
    elif case == "missing-token":
        args = ["key", "show", "pkcs11:token=absent;object=tl-key"]
    elif case == "missing-key":
        args = ["key", "show", softhsm_token.uri(object="absent")]
    elif case == "wrong-module":
        args = ["key", "show", uri + "?module-path=/no/such.so"]
    elif case == "bad-uri":
        args = ["key", "show", "pkcs11:tokn=x"]
    else:
        del env["TKA_PKCS11_PIN"]
        args = ["key", "sign-nodekeys", "--key", uri, "--in", "-", "--out", "-", "--unchecked",
                "--yes"]
    # One node key to sign: the PIN is asked for at the first signature.
    line = one_error_line(tka(*args, env=env, stdin=f"nodekey:{os.urandom(32).hex()}\n"))
    assert expect in line
    assert softhsm_token.pin not in line


def _node_keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


def test_sign_nodekeys_output_verified_line_by_line(softhsm_token: Any, tmp_path: Path) -> None:
    from verifier import NodeKeySignature, ed25519
    from verifier.nks import SigKind

    public = generate(softhsm_token)
    keys = _node_keys(50)
    infile = tmp_path / "in.txt"
    infile.write_text(
        "# node keys to sign\n" + "\n".join(f"nodekey:{k.hex()}" for k in keys) + "\n\n"
    )
    rotation = nacl.signing.SigningKey.generate().verify_key
    rotation_arg = ["--rotation-key", f"tlpub:{bytes(rotation).hex()}"]
    for fmt, extra in (("base64", []), ("hex", rotation_arg)):
        out = tmp_path / f"out.{fmt}"
        proc = tka("key", "sign-nodekeys", "--key", softhsm_token.uri(object="tl-key"),
                   "--in", str(infile), "--out", str(out), "--format", fmt, *extra, "--unchecked",
                   "--yes",
                   env=softhsm_token.env())
        assert proc.returncode == 0, proc.stderr
        lines = out.read_text().splitlines()
        assert len(lines) == len(keys)
        import base64

        for node_key, line in zip(keys, lines, strict=True):
            blob = base64.b64decode(line, validate=True) if fmt == "base64" else bytes.fromhex(line)
            nks = NodeKeySignature.from_cbor(blob)
            assert nks.kind == SigKind.DIRECT
            assert nks.pubkey == b"np" + node_key
            assert nks.key_id == public
            if extra:
                assert nks.wrapping_pubkey == bytes(rotation)
            else:
                assert not nks.wrapping_pubkey  # never the all-zero key (docs/format.md §10 item 1)
            assert nks.to_cbor() == blob
            digest = nks.sig_hash()
            assert ed25519.verify(public, digest, nks.signature, rule="zip215")
            assert ed25519.verify(public, digest, nks.signature, rule="cofactorless")


def test_sign_nodekeys_rejects_bad_input_and_zero_rotation_key(
    softhsm_token: Any, tmp_path: Path
) -> None:
    generate(softhsm_token)
    infile = tmp_path / "in.txt"
    infile.write_text(f"nodekey:{'11' * 32}\nnodekey:abc\n")
    out = tmp_path / "out.txt"
    args = ["key", "sign-nodekeys", "--key", softhsm_token.uri(object="tl-key"),
            "--in", str(infile), "--out", str(out), "--unchecked", "--yes"]
    line = one_error_line(tka(*args, env=softhsm_token.env()))
    assert f"{infile} line 2" in line
    assert not out.exists()
    infile.write_text(f"nodekey:{'11' * 32}\n")
    line = one_error_line(
        tka(*args, "--rotation-key", "tlpub:" + "00" * 32, env=softhsm_token.env())
    )
    assert "all-zero rotation key" in line
    assert not out.exists()


def test_token_removed_mid_run_and_pin_never_on_argv(softhsm_token: Any, tmp_path: Path) -> None:
    """A long bulk run: while it signs, its argv holds no PIN; then the token directory is
    removed under it, and it stops with one line and exit 1, leaving no partial output."""
    generate(softhsm_token)
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm_token.pin + "\n")
    pin_file.chmod(0o600)
    env = softhsm_token.env()
    del env["TKA_PKCS11_PIN"]  # this time the PIN comes from pin-source=
    infile = tmp_path / "in.txt"
    infile.write_text("".join(f"nodekey:{k.hex()}\n" for k in _node_keys(40000)))
    out = tmp_path / "out.txt"
    uri = softhsm_token.uri(object="tl-key") + f"?pin-source=file:{pin_file}"
    master, slave = pty.openpty()  # stderr on a terminal: progress is shown
    proc = subprocess.Popen(
        [*CLI, "key", "sign-nodekeys", "--key", uri, "--in", str(infile), "--out", str(out),
         "--unchecked", "--yes"],
        env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"signed " not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                seen += os.read(master, 4096)
        assert b"signed " in seen, seen
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert softhsm_token.pin.encode() not in cmdline
        assert b"signer.cli" in cmdline  # we did read the right process
        shutil.rmtree(softhsm_token.token_dir)
        stdout, _ = proc.communicate(timeout=120)
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 1
    text = seen.decode()
    assert "Traceback" not in text
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"tka: token '{softhsm_token.label}' failed while signing ("), text
    assert "reconnect it and run the command again" in last
    assert softhsm_token.pin not in text and softhsm_token.pin.encode() not in stdout
    assert not out.exists()


def _set_token_flags(token: Any, extra: int) -> None:
    """SoftHSM never sets USER_PIN_FINAL_TRY or USER_PIN_LOCKED itself (it has no retry limit),
    but it reports whatever token flags its token file stores (attribute CKA_OS_TOKENFLAGS,
    vendor type 0x8000534B, an unsigned long). OR `extra` into it, as a token near lockout
    would report."""
    (path,) = token.token_dir.glob("*/token.object")
    data = bytearray(path.read_bytes())
    at = data.find(bytes.fromhex("000000008000534b") + (2).to_bytes(8, "big"))
    assert at >= 0, "SoftHSM token file layout changed"
    value = at + 16
    flags = int.from_bytes(data[value : value + 8], "big")
    data[value : value + 8] = (flags | extra).to_bytes(8, "big")
    path.write_bytes(bytes(data))


CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000


def test_final_try_and_locked_pin_are_surfaced(softhsm_token: Any) -> None:
    generate(softhsm_token)
    env = softhsm_token.env()
    _set_token_flags(softhsm_token, CKF_USER_PIN_FINAL_TRY)
    flags = json.loads(tka("key", "list", "--json", env=env).stdout)["tokens"][0]["flags"]
    assert flags["pin_final_try"] is True and flags["pin_locked"] is False
    assert "pin final try" in tka("key", "list", env=env).stdout
    bad = {**env, "TKA_PKCS11_PIN": "0000"}
    line = one_error_line(tka("key", "generate", softhsm_token.uri(object="x"), env=bad))
    assert "(1 try may remain before the PIN locks)" in line

    _set_token_flags(softhsm_token, CKF_USER_PIN_LOCKED)
    flags = json.loads(tka("key", "list", "--json", env=env).stdout)["tokens"][0]["flags"]
    assert flags["pin_locked"] is True
    # Even the right PIN is not tried against a locked token: one line saying how to unlock.
    line = one_error_line(tka("key", "generate", softhsm_token.uri(object="x"), env=env))
    assert line == (
        f"tka: the user PIN of token '{softhsm_token.label}' is locked after too many wrong "
        "PINs; unlock it with the SO PIN / PUK (YubiKey: ykman piv access unblock-pin) and retry"
    )
    assert softhsm_token.pin not in line
