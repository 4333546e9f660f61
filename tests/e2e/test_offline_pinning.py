"""The air-gapped side pins its authority: what a compromised online host can hand it (an
authority of its own that lists the victim's key, the real chain cut back to before a key was
removed) is refused, and only requests that extend the pin are signed, advancing it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.signing
from tailnet_harness import Tailnet, enable
from test_offline_signing import enroll, offline, refused, tree_digest, trusted_head

from signer.offline import SigningRequest, verify_chain
from verifier.authority import Authority
from verifier.key import Key
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage, MemoryStorage
from verifier.textforms import parse_nl_public, parse_node_public


def _pin_head(pin: Path) -> str:
    return str(Authority.open(FilesystemStorage(pin)).head)


def _setup(net: Tailnet, softhsm_token: Any, tmp_path: Path) -> tuple[str, Path]:
    hsm_uri = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm_uri)
    net.ok("phone", "node", "register", "--name", "phone")
    (tmp_path / "airgap").mkdir()
    return hsm_uri, tmp_path / "airgap" / "authority"


def test_enroll_refuses_a_head_the_authority_does_not_end_at(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    _hsm, pin = _setup(net, softhsm_token, tmp_path)
    genesis = trusted_head(net)
    net.ok("admin", "add", "--yes", net.lock_public("laptop"))
    export = tmp_path / "authority.json"
    net.ok("laptop", "offline", "export-authority", "--out", str(export))
    assert "Head" not in json.loads(export.read_text())  # nothing there to copy blindly
    head = trusted_head(net)
    assert head != genesis

    base = ("enroll", "--authority", str(pin), "--in", str(export), "--head")
    wrong = "A" * 52
    assert "not at " + wrong in refused(net, pin, *base, wrong)
    assert "not at " + genesis in refused(net, pin, *base, genesis)  # an older real head
    assert "52 base32" in refused(net, pin, *base, head[:-1], code=2)
    assert "canonical" in refused(net, pin, *base, head[:-1] + "Z", code=2)
    assert not pin.exists() and list(pin.parent.iterdir()) == []

    (pin / "stray").mkdir(parents=True)
    assert "not empty" in refused(net, pin, *base, head)
    (pin / "stray").rmdir()

    # The right head, from a request file as well as an export; pasted in lower case is fine.
    req = tmp_path / "req.json"
    net.ok("laptop", "offline", "request", net.node_key("phone"), "--out", str(req))
    proc = offline(net, "enroll", "--authority", str(pin), "--in", str(req),
                   "--head", f" {head.lower()}\n")
    assert proc.returncode == 0, proc.stderr
    assert _pin_head(pin) == head
    assert "already exists" in refused(net, pin, *base, head)


def test_foreign_authority_listing_the_victims_key_is_refused(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm_uri, pin = _setup(net, softhsm_token, tmp_path)
    enroll(net, pin, tmp_path)
    victim = net.lock_public("admin")
    phone = net.node_key("phone")

    # The attacker's own tailnet: a genesis signed by mallory that trusts the victim's key.
    evil = Tailnet(tmp_path / "evil", str(tmp_path / "evil" / "control.db"), net.env)
    evil.ok("mallory", "node", "register", "--name", "mallory")
    evil.ok("mallory", "init", "--gen-disablements", "1", "--confirm",
            evil.lock_public("mallory"), victim)
    req, resp = tmp_path / "evil-req.json", tmp_path / "resp.json"
    evil.ok("mallory", "offline", "request", phone, "--out", str(req))
    line = refused(net, pin, "sign", "--authority", str(pin), "--in", str(req),
                   "--out", str(resp), "--key", hsm_uri, "--yes")
    assert "another authority" in line, line
    theirs = Authority.open(FilesystemStorage(evil.root / "mallory" / "tka"))
    pinned = Authority.open(FilesystemStorage(pin))
    assert theirs.key_trusted(parse_nl_public(victim))  # what made the old check pass
    for authority in (theirs, pinned):  # both named, by state ID and head
        assert f"state ID {authority.state.state_id()}, head {authority.head}" in line, line

    # The same attack copying the victim's state ID: the pinned head is still missing.
    mallory = nacl.signing.SigningKey.generate()
    state = State(
        disablement_values=(bytes(32),),
        keys=(Key(public=bytes(mallory.verify_key)), Key(public=parse_nl_public(victim))),
        state_id1=pinned.state.state_id1,
        state_id2=pinned.state.state_id2,
    )
    signer = AUMSigner.over_digest(bytes(mallory.verify_key),
                                   lambda digest: mallory.sign(digest).signature)
    _forged, genesis = Authority.create(MemoryStorage(), state, signer)
    forged = tmp_path / "forged-req.json"
    forged.write_text(SigningRequest(parse_node_public(phone), b"", (genesis,)).to_json())
    line = refused(net, pin, "sign", "--authority", str(pin), "--in", str(forged),
                   "--out", str(resp), "--key", hsm_uri, "--yes")
    assert f"does not contain the pinned head {pinned.head}" in line, line
    assert net.status("phone")["NodeKeySigned"] is False


def test_rollback_to_before_a_key_was_removed_is_refused(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    _hsm, pin = _setup(net, softhsm_token, tmp_path)
    k = net.lock_public("laptop")
    k_uri = f"file:{net.root / 'laptop' / 'lock.key'}"
    net.ok("admin", "add", "--yes", k)
    net.ok("admin", "remove", "--yes", k)
    enroll(net, pin, tmp_path)  # pinned after K was removed

    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    net.ok("laptop", "offline", "request", net.node_key("phone"), "--out", str(req))
    sign = ("sign", "--authority", str(pin), "--out", str(resp), "--key", k_uri, "--yes")
    assert "is not trusted" in refused(net, pin, *sign, "--in", str(req))

    # The compromised host cuts the chain back to when K was trusted: it verifies, but it
    # ends one AUM before the pinned head.
    doc = json.loads(req.read_text())
    doc["Authority"] = doc["Authority"][:-1]
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(doc))
    cut_chain = SigningRequest.from_json(cut.read_text()).chain
    assert verify_chain(cut_chain, "cut").key_trusted(parse_nl_public(k))  # K signs there
    line = refused(net, pin, *sign, "--in", str(cut))
    assert line.startswith("tka: rollback:") and "1 AUM before the pinned head" in line, line
    assert _pin_head(pin) == trusted_head(net)
    assert net.status("phone")["NodeKeySigned"] is False


def test_request_extending_the_pin_is_accepted_and_the_pin_advances(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm_uri, pin = _setup(net, softhsm_token, tmp_path)
    enroll(net, pin, tmp_path)
    pinned = trusted_head(net)
    phone = net.node_key("phone")
    old, req, resp = tmp_path / "old.json", tmp_path / "req.json", tmp_path / "resp.json"
    net.ok("laptop", "offline", "request", phone, "--out", str(old))

    net.ok("admin", "add", "--yes", net.lock_public("laptop"))
    head = trusted_head(net)
    net.ok("laptop", "offline", "request", phone, "--out", str(req))

    # A new AUM after the pin that does not verify there (its signature damaged): refused.
    doc = json.loads(req.read_text())
    raw = bytearray(base64.b64decode(doc["Authority"][-1]))
    raw[-1] ^= 1
    doc["Authority"][-1] = base64.b64encode(bytes(raw)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    sign = ("sign", "--authority", str(pin), "--out", str(resp), "--key", hsm_uri, "--yes")
    assert "does not verify" in refused(net, pin, *sign, "--in", str(bad))

    # Declined (no --yes, no terminal), or a key not trusted at the new head: the pin stays.
    refused(net, pin, *sign[:-1], "--in", str(req), code=2)
    phone_key = f"file:{net.root / 'phone' / 'lock.key'}"
    assert "is not trusted" in refused(net, pin, *sign[:-2], phone_key, "--yes", "--in",
                                        str(req))

    proc = offline(net, *sign, "--in", str(req))
    assert proc.returncode == 0, proc.stderr
    shown = proc.stderr.splitlines()
    assert f"at head {head}" in shown[0]
    assert shown[1] == f"the request adds 1 AUM after the pinned head {pinned}"
    assert f"the pinned authority is now at head {head}" in proc.stderr
    assert _pin_head(pin) == head
    net.ok("laptop", "offline", "submit", "--in", str(resp))
    assert net.status("phone")["NodeKeySigned"] is True

    # The request made before the change no longer reaches the (advanced) pin.
    resp.unlink()
    assert "1 AUM before the pinned head" in refused(net, pin, *sign, "--in", str(old))
    before = tree_digest(pin)
    proc = offline(net, *sign, "--in", str(req))  # the same head again: nothing to add
    assert proc.returncode == 0 and "the request is at the pinned head" in proc.stderr
    assert tree_digest(pin) == before
