"""Every kind of air-gapped request through the real CLI, each carried by file and by QR-code
PNG images (decoded with zxing-cpp): a genesis (`tka init` offline, disablement secrets made on
the offline side), a chain of additions, removals and updates, a recovery started offline, a
revocable auth key, and node keys, co-signatures and direct auth keys in one request. The
hostile cases (tampered responses, a foreign authority, broken QR parts) are at the end and in
test_offline_qr.py."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tailnet_harness import REPO, Tailnet, create_auth_key, enable, secret_file
from test_offline_signing import enroll, offline, refused, tree_digest, trusted_head

from verifier.authority import Authority
from verifier.storage import FilesystemStorage

VIA = pytest.mark.parametrize("via", ["file", "qr"])


def _pin_head(pin: Path) -> str:
    return str(Authority.open(FilesystemStorage(pin)).head)


def _trusted(net: Tailnet, node: str = "admin") -> dict[str, dict[str, Any]]:
    keys: list[dict[str, Any]] = net.status(node)["TrustedKeys"]  # type: ignore[assignment]
    return {str(k["Public"]): k for k in keys}


def _setup(net: Tailnet, softhsm_token: Any, tmp_path: Path) -> tuple[str, Path]:
    hsm_uri = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm_uri)
    (tmp_path / "airgap").mkdir()
    return hsm_uri, tmp_path / "airgap" / "authority"


def request(net: Tailnet, node: str, via: str, where: Path, *args: str) -> list[str]:
    """`tka offline request ARGS` written by file or as QR images; the `sign` input flags."""
    if via == "file":
        net.ok(node, "offline", "request", *args, "--out", str(where.with_suffix(".json")))
        return ["--in", str(where.with_suffix(".json"))]
    out = net.ok(node, "offline", "request", *args, "--qr", str(where))
    images = sorted(where.glob("part-*.png"))
    assert images and f"as {len(images)} QR code" in out, out
    return ["--in-qr", str(where)]


def sign(net: Tailnet, pin: Path, via: str, inputs: list[str], where: Path, key: str,
         *extra: str) -> tuple[str, list[str]]:
    """`tka offline sign` on the air-gapped side; what it showed and the `submit` input flags."""
    outputs = ["--out", str(where.with_suffix(".json"))] if via == "file" else \
        ["--qr", str(where)]
    proc = offline(net, "sign", "--authority", str(pin), *inputs, *outputs, "--key", key,
                   "--yes", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if via == "qr":
        assert sorted(where.glob("part-*.png"))
        return proc.stderr + proc.stdout, ["--in-qr", str(where)]
    return proc.stderr + proc.stdout, ["--in", str(where.with_suffix(".json"))]


def _response_text(via: str, inputs: list[str]) -> str:
    """The response's JSON, decoded from its images when it travelled as QR codes."""
    if via == "file":
        return Path(inputs[1]).read_text()
    from signer import qr

    return qr.read_sources([inputs[1]]).decode()


# -- genesis -------------------------------------------------------------------------------------


def _hsm_public(net: Tailnet, uri: str) -> str:
    for args in (["key", "generate", uri], ["key", "show", uri]):
        proc = subprocess.run([sys.executable, "-m", "signer.cli", *args], cwd=REPO,
                              env=net.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@VIA
def test_genesis_offline_enables_lock_and_pins_it(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path, via: str
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="offline-key")
    hsm = _hsm_public(net, hsm_uri)
    for node in ("admin", "laptop"):
        net.ok(node, "node", "register", "--name", node)
    admin = net.lock_public("admin")
    (tmp_path / "airgap").mkdir()
    pin = tmp_path / "airgap" / "authority"
    nodes = [net.node_key("admin"), admin, net.node_key("laptop"), net.lock_public("laptop")]

    inputs = request(net, "admin", via, tmp_path / "req", "--genesis", f"{hsm}?2", "--genesis",
                     admin, "--gen-disablements", "2", *nodes)
    if via == "file":
        doc = json.loads(Path(inputs[1]).read_text())
        assert doc["Version"] == 3 and doc["Authority"] == []
        assert [i["Type"] for i in doc["Items"]] == ["genesis", "node-key", "node-key"]
    assert net.status("admin")["Enabled"] is False

    secrets_file = tmp_path / "airgap" / "secrets.txt"
    shown, response = sign(net, pin, via, inputs, tmp_path / "resp", hsm_uri,
                           "--secrets-out", str(secrets_file))
    assert "1. will create a new authority (tailnet lock init) trusting 2 keys" in shown
    assert f"{hsm} (2 votes)" in shown and "2 disablement secret(s) generated here" in shown
    assert "2. will sign node key" in shown and "under the new authority" in shown
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets = re.findall(r"^disablement-secret:([0-9A-F]{64})$", secrets_file.read_text(), re.M)
    assert len(secrets) == 2 and not any(s in shown for s in secrets)
    text = _response_text(via, response)
    assert not any(s in text or s.lower() in text for s in secrets)  # never in the response
    assert stat.S_IMODE(pin.stat().st_mode) == 0o700

    out = net.ok("admin", "offline", "submit", *response)
    assert "enabled tailnet lock with the genesis of authority" in out, out
    assert out.count("submitted the signature for node key") == 2
    status = net.status("admin")
    assert status["Enabled"] is True and _pin_head(pin) == status["Head"]
    assert {k: v["Votes"] for k, v in _trusted(net).items()} == {hsm: 2, admin: 1}
    assert net.status("laptop")["NodeKeySigned"] is True
    assert net.status("admin")["NodeKeySigned"] is True

    # The pin made from the genesis takes the next request; a secret made offline disables.
    net.ok("phone", "node", "register", "--name", "phone")
    inputs = request(net, "laptop", via, tmp_path / "next", net.node_key("phone"))
    _, response = sign(net, pin, via, inputs, tmp_path / "next-resp", hsm_uri)
    net.ok("laptop", "offline", "submit", *response)
    assert net.status("phone")["NodeKeySigned"] is True
    proc = net.tka("laptop", "disable", "--yes", stdin=f"disablement-secret:{secrets[0]}\n")
    assert proc.returncode == 0, proc.stderr
    assert net.status("laptop")["Enabled"] is False


def test_genesis_secrets_on_screen_and_refusals(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="offline-key")
    hsm = _hsm_public(net, hsm_uri)
    net.ok("admin", "node", "register", "--name", "admin")
    admin = net.lock_public("admin")
    (tmp_path / "airgap").mkdir()
    pin = tmp_path / "airgap" / "authority"
    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    base = ("sign", "--authority", str(pin), "--in", str(req), "--out", str(resp), "--key",
            hsm_uri, "--yes")

    # The offline key is not among the trusted keys: refused, nothing created.
    net.ok("admin", "offline", "request", "--genesis", admin, "--gen-disablements", "1",
           "--out", str(req))
    assert "is not one of the genesis's trusted keys" in refused(net, pin, *base)
    assert not pin.exists()
    # An all-zero (small-order) key slipped into the file: refused offline.
    doc = json.loads(req.read_text())
    doc["Items"][0]["Keys"] = [{"Key": hsm, "Votes": 1}, {"Key": "tlpub:" + "00" * 32,
                                                         "Votes": 1}]
    req.write_text(json.dumps(doc))
    assert "small-order" in refused(net, pin, *base)
    # No disablement at all: refused.
    doc["Items"][0]["Keys"] = [{"Key": hsm, "Votes": 1}]
    doc["Items"][0]["Disablements"] = 0
    req.write_text(json.dumps(doc))
    assert "at least one disablement secret" in refused(net, pin, *base)
    # A directory that already holds a pin is never replaced.
    doc["Items"][0]["Disablements"] = 1
    req.write_text(json.dumps(doc))
    (pin / "old").mkdir(parents=True)
    assert "already holds a pinned authority" in refused(net, pin, *base)
    (pin / "old").rmdir()
    pin.rmdir()
    # --secrets-out names an existing file: refused before anything is signed.
    taken = tmp_path / "taken.txt"
    taken.write_text("keep\n")
    assert "cannot create" in refused(net, pin, *base, "--secrets-out", str(taken))
    assert taken.read_text() == "keep\n" and not pin.exists()

    # Without --secrets-out the secret is shown once, on the offline screen, not in the file.
    proc = offline(net, *base)
    assert proc.returncode == 0, proc.stderr
    secrets = re.findall(r"^\tdisablement-secret:([0-9A-F]{64})$", proc.stdout, re.M)
    assert len(secrets) == 1 and "WILL NOT be shown again" in proc.stdout
    assert secrets[0] not in resp.read_text() and secrets[0].lower() not in resp.read_text()

    # The genesis tampered with on the way back: refused online, lock stays off.
    good = json.loads(resp.read_text())
    raw = bytearray(base64.b64decode(good["Items"][0]["AUM"]))
    raw[-1] ^= 1
    good["Items"][0]["AUM"] = base64.b64encode(bytes(raw)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(good))
    line = net.fails("admin", "offline", "submit", "--in", str(bad))
    assert "genesis does not verify" in line, line
    assert net.status("admin")["Enabled"] is False
    net.ok("admin", "offline", "submit", "--in", str(resp))
    assert net.status("admin")["Enabled"] is True
    # Once enabled, neither a genesis request nor a genesis response is taken again.
    line = net.fails("admin", "offline", "request", "--genesis", hsm, "--gen-disablements", "1",
                     "--out", str(tmp_path / "again.json"))
    assert "already enabled" in line
    assert "already enabled" in net.fails("admin", "offline", "submit", "--in", str(resp))


# -- one chain of key changes ---------------------------------------------------------------------


@VIA
def test_add_remove_and_update_as_one_chain(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path, via: str
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    laptop = net.lock_public("laptop")
    admin = net.lock_public("admin")
    net.ok("admin", "add", "--yes", laptop)
    net.ok("extra", "node", "register", "--name", "extra")
    extra = net.lock_public("extra")
    enroll(net, pin, tmp_path)
    pinned = trusted_head(net)

    inputs = request(net, "laptop", via, tmp_path / "req", "--add", f"{extra}?2",
                     "--update", f"{admin}?votes=3&meta.role=root&meta.site=vault",
                     "--update", f"{extra}?4", "--remove", laptop)
    shown, response = sign(net, pin, via, inputs, tmp_path / "resp", hsm)
    assert f"1. will trust {extra} (2 votes)" in shown
    assert f"2. will stop trusting {laptop}" in shown
    assert f"3. will update {admin}: votes 1 -> 3; metadata replaced by " \
        "{role=root, site=vault}" in shown
    assert f"4. will update {extra}: votes 2 -> 4" in shown
    assert _pin_head(pin) == pinned
    if via == "file":
        assert json.loads(Path(inputs[1]).read_text())["Version"] == 3

    out = net.ok("laptop", "offline", "submit", *response)
    assert "submitted 5 update(s): add-key, remove-key, update-key, update-key, update-key" \
        in out, out
    trusted = _trusted(net)
    assert laptop not in trusted and trusted[extra]["Votes"] == 4
    assert trusted[admin]["Votes"] == 3
    assert trusted[admin]["Meta"] == {"role": "root", "site": "vault"}

    # Refused offline: updating a key that is not trusted, adding a trusted one.
    inputs = request(net, "admin", "file", tmp_path / "bad", "--update", f"{laptop}?2")
    assert "is not trusted" in refused(net, pin, "sign", "--authority", str(pin), *inputs,
                                       "--out", str(tmp_path / "bad-resp.json"), "--key", hsm,
                                       "--yes")
    # Online usage errors, nothing written.
    for bad in (f"{admin}", f"{admin}?colour=red", f"{admin}?votes=x"):
        proc = net.tka("admin", "offline", "request", "--update", bad, "--out",
                       str(tmp_path / "none.json"))
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "none.json").exists()


# -- recoveries ----------------------------------------------------------------------------------


@VIA
def test_revoke_start_offline_then_cosign_and_finish_online(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path, via: str
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    laptop = net.lock_public("laptop")
    net.ok("extra", "node", "register", "--name", "extra")
    extra = net.lock_public("extra")
    net.ok("admin", "add", "--yes", laptop)
    before_extra = trusted_head(net)
    net.ok("admin", "add", "--yes", extra)
    enroll(net, pin, tmp_path)

    inputs = request(net, "laptop", via, tmp_path / "req", "--revoke-start", extra)
    shown, response = sign(net, pin, via, inputs, tmp_path / "resp", hsm)
    assert f"1. will start a recovery forking from {before_extra}" in shown, shown
    assert f"it revokes {extra}" in shown

    out = net.ok("laptop", "offline", "submit", *response)
    assert len(out.strip().splitlines()) == 1 and f"revoking {extra}, 1 vote(s)" in out, out
    blob = re.findall(r"revoke-keys --cosign ([0-9A-F]+)", out)[0]
    assert extra in _trusted(net)  # starting changes nothing by itself
    cosigned = net.ok("laptop", "revoke-keys", "--cosign", "--yes", blob)
    finish = re.findall(r"revoke-keys --finish ([0-9A-F]+)", cosigned)[0]
    net.ok("laptop", "revoke-keys", "--finish", "--yes", finish)
    trusted = _trusted(net)
    assert extra not in trusted and laptop in trusted

    # The recovery forked behind the pin: the pinned history lost, so the next request is
    # refused until the pin is enrolled again from a trusted node.
    net.ok("other", "node", "register", "--name", "other")
    other = net.lock_public("other")
    net.ok("admin", "add", "--yes", other)
    inputs = request(net, "laptop", "file", tmp_path / "after", net.node_key("other"))
    assert "a rollback or another history" in refused(
        net, pin, "sign", "--authority", str(pin), *inputs, "--out",
        str(tmp_path / "after-resp.json"), "--key", hsm, "--yes")
    shutil.rmtree(pin)
    enroll(net, pin, tmp_path)

    # --fork-from: the recovery forks exactly there (here: the genesis, where only the
    # hardware key was trusted), and a hash the authority lacks is refused offline.
    log = json.loads(net.ok("admin", "log", "--json", "--limit", "50"))
    genesis = str(log["Messages"][-1]["Hash"])
    inputs = request(net, "laptop", "file", tmp_path / "fork", "--revoke-start", other,
                     "--fork-from", genesis)
    shown, _ = sign(net, pin, "file", inputs, tmp_path / "fork-resp", hsm)
    assert f"forking from {genesis} (--fork-from)" in shown
    inputs = request(net, "laptop", "file", tmp_path / "nowhere", "--revoke-start", other,
                     "--fork-from", "A" * 52)
    assert "holds no AUM" in refused(net, pin, "sign", "--authority", str(pin), *inputs,
                                     "--out", str(tmp_path / "nowhere-resp.json"), "--key",
                                     hsm, "--yes")
    proc = net.tka("laptop", "offline", "request", "--revoke-start", other, "--fork-from",
                   "nothex", "--out", str(tmp_path / "none.json"))
    assert proc.returncode == 2 and "fork-from" in proc.stderr


# -- auth keys -----------------------------------------------------------------------------------


@VIA
def test_revocable_auth_key_adds_its_credential_key(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path, via: str
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    enroll(net, pin, tmp_path)
    plain = create_auth_key(Path(net.control))
    inputs = request(net, "laptop", via, tmp_path / "req", "--mode", "revocable", "--auth-key",
                     secret_file(tmp_path / "plain.key", plain))
    for path in Path(inputs[1]).glob("*") if via == "qr" else [Path(inputs[1])]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the auth key
    shown, response = sign(net, pin, via, inputs, tmp_path / "resp", hsm)
    assert "1. will wrap auth key" in shown and "revocable mode" in shown
    assert plain not in shown
    for path in Path(response[1]).glob("*") if via == "qr" else [Path(response[1])]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys_before = set(_trusted(net))

    out = net.ok("laptop", "offline", "submit", *response)
    assert "submitted 1 update(s): add-key" in out, out
    wrapped = re.findall(r"(tskey-auth-\S+--TL\S+)", out)
    assert len(wrapped) == 1 and "(wrapped, revocable)" in out
    new = {k: v for k, v in _trusted(net).items() if k not in keys_before}
    assert len(new) == 1
    (credential,) = new.values()
    assert credential["Votes"] == 1 and credential["Meta"]["purpose"] == "pre-auth key"
    laptop_config = json.loads((net.root / "laptop" / "node.json").read_text())
    assert credential["Meta"]["wrapper_stableid"] == laptop_config["StableID"] != ""
    net.ok("server", "node", "register", "--name", "server", "--auth-key", "-",
           stdin=wrapped[0] + "\n")
    assert net.status("server")["NodeKeySigned"] is True


@VIA
def test_node_keys_cosign_and_direct_auth_key_in_one_request(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path, via: str
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    laptop = net.lock_public("laptop")
    net.ok("extra", "node", "register", "--name", "extra")
    extra = net.lock_public("extra")
    net.ok("admin", "add", "--yes", laptop)
    net.ok("admin", "add", "--yes", extra)
    nodes = ["phone", "tablet", "tv", "radio"]
    for node in nodes:
        net.ok(node, "node", "register", "--name", node)
    enroll(net, pin, tmp_path)
    started = net.ok("laptop", "revoke-keys", extra)
    blob = re.findall(r"--cosign ([0-9A-F]+)", started)[0]
    plain = create_auth_key(Path(net.control))

    keys = [net.node_key(n) for n in nodes]
    inputs = request(net, "laptop", via, tmp_path / "req", *keys, "--cosign", blob,
                     "--auth-key", secret_file(tmp_path / "plain.key", plain))
    if via == "file":
        assert json.loads(Path(inputs[1]).read_text())["Version"] == 2  # v2 kinds only
    shown, response = sign(net, pin, via, inputs, tmp_path / "resp", hsm)
    assert all(f"will sign node key {k}" in shown for k in keys)
    assert "5. will co-sign recovery" in shown and "direct mode" in shown

    out = net.ok("laptop", "offline", "submit", *response)
    assert out.count("submitted the signature for node key") == 4
    assert all(net.status(n)["NodeKeySigned"] is True for n in nodes)
    finish = re.findall(r"tka revoke-keys --finish ([0-9A-F]+)", out)[0]
    net.ok("laptop", "revoke-keys", "--finish", "--yes", finish)
    assert extra not in _trusted(net)
    wrapped = re.findall(r"(tskey-auth-\S+--TL\S+)", out)[0]
    net.ok("server", "node", "register", "--name", "server", "--auth-key", "-",
           stdin=wrapped + "\n")
    assert net.status("server")["NodeKeySigned"] is True


# -- hostile -------------------------------------------------------------------------------------


def test_tampered_v3_items_are_refused_before_anything_is_submitted(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    laptop = net.lock_public("laptop")
    net.ok("admin", "add", "--yes", laptop)
    net.ok("phone", "node", "register", "--name", "phone")
    enroll(net, pin, tmp_path)
    plain = create_auth_key(Path(net.control))
    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    net.ok("laptop", "offline", "request", net.node_key("phone"), "--update", f"{laptop}?2",
           "--revoke-start", laptop, "--mode", "revocable", "--auth-key",
           secret_file(tmp_path / "plain.key", plain), "--out", str(req))
    proc = offline(net, "sign", "--authority", str(pin), "--in", str(req), "--out", str(resp),
                   "--key", hsm, "--yes")
    assert proc.returncode == 0, proc.stderr
    good = json.loads(resp.read_text())
    assert [i["Type"] for i in good["Items"]] == ["node-key", "updates", "revoke-start",
                                                 "auth-key"]
    bad = tmp_path / "bad.json"

    def refused_online(doc: dict[str, Any]) -> str:
        bad.write_text(json.dumps(doc))
        line = net.fails("laptop", "offline", "submit", "--in", str(bad))
        assert net.status("phone")["NodeKeySigned"] is False
        assert _trusted(net)[laptop]["Votes"] == 1
        return line

    # The recovery re-signed as another AUM (its signature no longer matches).
    doc = json.loads(resp.read_text())
    blob = bytearray(bytes.fromhex(doc["Items"][2]["Recovery"]))
    blob[-1] ^= 1
    doc["Items"][2]["Recovery"] = blob.hex().upper()
    assert "response item 3 does not verify" in refused_online(doc)
    # The wrapped key's credential swapped for one the updates do not add.
    doc = json.loads(resp.read_text())
    text = doc["Items"][3]["WrappedAuthKey"]
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from signer.signing import revocable_auth_key; "
         "print(revocable_auth_key(sys.argv[1], '')[1])", plain],
        cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()
    assert other.startswith("tskey-auth-") and other != text
    doc["Items"][3]["WrappedAuthKey"] = other
    assert "response item 4 does not verify" in refused_online(doc)
    # The updates dropped: the revocable key's credential key is then not trusted.
    doc = json.loads(resp.read_text())
    del doc["Items"][1]
    assert "response item 3 does not verify" in refused_online(doc)
    # A v3-only type in a version-2 response is not read.
    doc = json.loads(resp.read_text())
    doc["Version"] = 2
    assert "unknown Type 'revoke-start'" in refused_online(doc)

    out = net.ok("laptop", "offline", "submit", "--in", str(resp))  # the real one still works
    assert "submitted 2 update(s): update-key, add-key" in out, out
    assert net.status("phone")["NodeKeySigned"] is True


def test_v3_request_for_another_authority_is_refused(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm, pin = _setup(net, softhsm_token, tmp_path)
    enroll(net, pin, tmp_path)
    # A second tailnet whose authority also trusts a key on the same token.
    other = Tailnet(tmp_path / "other", str(tmp_path / "other" / "control.db"), net.env)
    (tmp_path / "other").mkdir()
    enable(other, softhsm_token.uri(object="other-lock-key"))
    for via in ("file", "qr"):
        inputs = request(other, "laptop", via, tmp_path / f"foreign-{via}", "--update",
                         f"{other.lock_public('laptop')}?votes=1", "--revoke-start",
                         other.lock_public("admin"))
        before = tree_digest(pin)
        out = tmp_path / f"foreign-resp-{via}"
        proc = offline(net, "sign", "--authority", str(pin), *inputs, "--qr", str(out),
                       "--key", hsm, "--yes")
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
        assert "the request is for another authority" in proc.stderr, proc.stderr
        assert tree_digest(pin) == before and not out.exists()
