"""`tka appliance enroll|log|policy|wipe` as subprocesses against the stub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nacl.signing
from appliance_harness import error_line, one_line, open_device, run_on_terminal, run_tka

from signer.appliance_stub import ApplianceStub
from signer.backends.appliance.backend import chain_of
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.stubkit import approve_all, provision
from signer.node import NodeConfig, NodeState
from verifier.authority import Authority
from verifier.builder import UpdateBuilder
from verifier.key import ed25519_key
from verifier.signing import AUMSigner
from verifier.storage import FilesystemStorage
from verifier.textforms import format_aum_hash


def test_enroll_log_policy_wipe(stub: ApplianceStub, pins: IdentityPins, tmp_path: Path,
                                tka_env: dict[str, str]) -> None:
    assert stub.ui is not None
    soft = nacl.signing.SigningKey.generate()
    signer = AUMSigner.over_digest(bytes(soft.verify_key), lambda d: soft.sign(d).signature)
    ready = provision(stub, pins=pins, extra_keys=(ed25519_key(bytes(soft.verify_key)),))
    ready.backend.close()
    # A node whose authority is two AUMs ahead of the device.
    node = NodeState(tmp_path / "node")
    node.create(NodeConfig(name="n1"))
    authority = Authority.bootstrap(FilesystemStorage(node.tka_dir),
                                    chain_of(ready.authority)[0])
    for _ in range(2):
        builder = UpdateBuilder(authority, signer)
        builder.add_key(ed25519_key(os.urandom(32)))
        authority.inform(builder.finalize())
    head = format_aum_hash(authority.head)
    env = dict(tka_env, TKA_APPLIANCE_DEVICE=stub.serial, TKA_APPLIANCE_PIN=ready.pin)

    done = run_tka(["appliance", "enroll", "--authority", str(node.tka_dir)], env)
    assert done.returncode == 0, done.stderr
    assert "already enrolled" in done.stdout and head in done.stdout

    stub.ui.auto(approve_all)
    wiped = run_tka(["appliance", "wipe"], env)
    assert wiped.returncode == 0, wiped.stderr
    with open_device(stub) as dev:
        assert dev.info().state == "blank"
        dev.setup(ready.pin)
    shown = len(stub.ui.shown)
    enrolled = run_tka(["appliance", "enroll", "--authority", str(node.tka_dir)], env)
    assert enrolled.returncode == 0, enrolled.stderr
    assert head in enrolled.stdout
    assert "compare this hash on the device" in enrolled.stderr
    screens = stub.ui.shown[shown:]
    assert len(screens) == 1  # the person confirmed the checkpoint; the rest was fed
    genesis_hash = format_aum_hash(chain_of(authority)[0].hash())
    assert any(genesis_hash in line for line in screens[0].lines)
    with open_device(stub) as dev:
        assert dev.authority().head == bytes(authority.head)

    log = run_tka(["appliance", "log", "--json"], env)
    assert log.returncode == 0, log.stderr
    doc = json.loads(log.stdout)
    assert doc["schema"] == "tka.appliance-log/1" and doc["verified"] is True
    events = [e["event"] for e in doc["entries"]]
    assert "wipe" in events and "enroll" in events
    assert doc["entries"][-1]["seq"] == doc["count"] - 1
    acked = run_tka(["appliance", "log", "--ack"], env)
    assert acked.returncode == 0, acked.stderr
    assert "verified:" in acked.stdout and "acknowledged up to" in acked.stdout
    after = json.loads(run_tka(["appliance", "log", "--json"], env).stdout)
    assert after["unread"] > doc["unread"]
    # The host remembers the log: a device whose log went backwards is reported.
    pin_path = Path(tka_env["XDG_DATA_HOME"]) / "tka" / "appliance-identities.json"
    pinned = json.loads(pin_path.read_text())
    pinned["devices"][stub.serial]["log"]["count"] += 10
    pin_path.write_text(json.dumps(pinned))
    rolled = run_tka(["appliance", "log"], env)
    assert rolled.returncode == 1
    assert "PROBLEM: the log went backwards" in rolled.stdout
    assert "does not verify" in one_line(rolled.stderr)

    policy = json.loads(run_tka(["appliance", "policy", "--json"], env).stdout)
    assert policy["schema"] == "tka.appliance-policy/1"
    assert policy["policy"]["max_batch"] == 5000
    changed = run_tka(["appliance", "policy", "--set", "max_batch=100",
                       "--set", "force_audit=true", "--json"], env)
    assert changed.returncode == 0, changed.stderr
    new = json.loads(changed.stdout)["policy"]
    assert new["max_batch"] == 100 and new["force_audit"] is True
    bad = run_tka(["appliance", "policy", "--set", "colour=blue"], env)
    assert bad.returncode == 2 and "FIELD one of" in one_line(bad.stderr)
    out_of_range = run_tka(["appliance", "policy", "--set", "max_batch=0"], env)
    assert out_of_range.returncode == 1 and error_line(out_of_range.stderr)
    stub.ui.auto(lambda _screen: False)
    declined = run_tka(["appliance", "policy", "--set", "cosigners=2"], env)
    assert declined.returncode == 1
    assert "declined on the device" in error_line(declined.stderr)
    assert json.loads(run_tka(["appliance", "policy", "--json"], env).stdout)["policy"][
        "cosigners"] == 1


def test_setup_asks_the_pin_twice_on_the_terminal(stub: ApplianceStub,
                                                  tka_env: dict[str, str]) -> None:
    assert stub.ui is not None
    stub.ui.auto(approve_all)
    env = dict(tka_env, TKA_APPLIANCE_DEVICE=stub.serial)
    code, out = run_on_terminal(["appliance", "setup"], env, [
        ("new appliance PIN: ", "first-pin-123"), ("the same PIN again: ", "other-pin-456")])
    assert code == 1 and "tka: the two PINs differ; nothing was changed" in out
    assert "first-pin-123" not in out and "other-pin-456" not in out  # no echo
    code, out = run_on_terminal(["appliance", "setup"], env, [
        ("new appliance PIN: ", "short"), ("the same PIN again: ", "short")])
    assert code == 1 and "6-64 bytes" in out
    code, out = run_on_terminal(["appliance", "setup"], env, [
        ("new appliance PIN: ", "terminal-pin-42"), ("the same PIN again: ", "terminal-pin-42")])
    assert code == 0, out
    assert "is set up and unlocked" in out and "terminal-pin-42" not in out
    with open_device(stub) as dev:
        dev.lock()
        dev.unlock("terminal-pin-42")
        assert dev.info().state == "unlocked"
    # unlock on the terminal: the PIN is asked once, without echo.
    with open_device(stub) as dev:
        dev.lock()
    code, out = run_on_terminal(["appliance", "unlock"], env, [
        ("PIN for the appliance", "terminal-pin-42")])
    assert code == 0 and "is unlocked" in out and "terminal-pin-42" not in out
