"""Every other `tka` path that signs, with the appliance's key: a pre-approved auth key (its
AddKey shown and signed on the device), bulk signing (one screen for the whole batch), the
air-gapped side (the device checks the request's authority against its own), `remove --re-sign`,
a recovery started on the device, and a confirmation nobody answers (nothing changes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tailnet_harness import REPO, Tailnet, create_auth_key, secret_file
from test_appliance_story import Person

from signer.appliance_stub import ApplianceStub


@pytest.fixture
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApplianceStub]:
    stub = ApplianceStub(tmp_path_factory.mktemp("device")).start()
    try:
        yield stub
    finally:
        stub.kill()


def _tka(net: Tailnet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", *args], cwd=REPO, env=net.env,
                          capture_output=True, text=True, timeout=120)


def _enabled_with_the_device(net: Tailnet, device: ApplianceStub, person: Person) -> str:
    net.env["TKA_APPLIANCE_PIN"] = "paths-pin-1234"
    net.env["TKA_APPLIANCE_DEVICE"] = device.serial
    person.will(True, True)
    assert _tka(net, "appliance", "setup").returncode == 0
    assert _tka(net, "appliance", "generate", "admin").returncode == 0
    key = device.key_uri("admin")
    net.ok("admin", "node", "register", "--name", "admin", "--lock-key", key)
    net.ok("laptop", "node", "register", "--name", "laptop")
    person.will(True, True)  # the genesis, then the batch of both nodes
    net.ok("admin", "init", "--gen-disablements", "1", "--confirm", net.lock_public("admin"),
           net.lock_public("laptop"))
    person.done()
    return key


def test_every_signing_path_through_the_appliance(
    tailnet: Tailnet, device: ApplianceStub, tmp_path: Path
) -> None:
    net = tailnet
    person = Person(device)
    key = _enabled_with_the_device(net, device, person)

    # A pre-approved auth key: the fresh credential key's AddKey, with its metadata, on screen.
    person.will(True)
    plain = create_auth_key(Path(net.control))
    wrapped = net.ok("admin", "sign", "--yes", secret_file(tmp_path / "plain.key", plain)).strip()
    screen = person.last()
    assert "Sign an authority update: add-key" in screen and "Add key tlpub:" in screen
    assert "purpose" in screen and "pre-auth key" in screen and plain.split("-")[2] in screen
    net.ok("server", "node", "register", "--name", "server", "--auth-key", "-", stdin=wrapped)
    assert net.status("server")["NodeKeySigned"] is True

    # Bulk signing: twelve node keys, one screen, signatures that authorize them.
    nodes = [f"n{i}" for i in range(12)]
    for node in nodes:
        net.ok(node, "node", "register", "--name", node)
    listing = tmp_path / "nodes.txt"
    listing.write_text("".join(net.node_key(n) + "\n" for n in nodes))
    out = tmp_path / "sigs.txt"
    shown = len(person.screens)
    person.will(True)
    proc = _tka(net, "key", "sign-nodekeys", "--key", key, "--in", str(listing), "--out",
                str(out), "--authority", str(net.root / "admin" / "tka"), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert len(person.screens) == shown + 1
    assert "Authorize 12 nodes (direct node-key signatures)" in person.last()
    assert len(out.read_text().splitlines()) == 12

    # The air-gapped side: the device is the offline key; a request's authority is fed to it.
    net.ok("phone", "node", "register", "--name", "phone")
    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    export, pin = tmp_path / "authority.json", tmp_path / "pinned"
    net.ok("laptop", "offline", "export-authority", "--out", str(export))
    enrolled = _tka(net, "offline", "enroll", "--authority", str(pin), "--in", str(export),
                    "--head", str(net.status("admin")["Head"]))
    assert enrolled.returncode == 0, enrolled.stderr
    net.ok("laptop", "offline", "request", net.node_key("phone"), "--out", str(req))
    person.will(True)
    proc = _tka(net, "offline", "sign", "--in", str(req), "--out", str(resp), "--key", key,
                "--authority", str(pin), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert net.node_key("phone") in person.last()
    net.ok("laptop", "offline", "submit", "--in", str(resp))
    assert net.status("phone")["NodeKeySigned"] is True

    # Nobody answers the device: it gives up by itself, nothing is signed or changed.
    net.ok("tablet", "node", "register", "--name", "tablet")
    assert device.ui is not None
    device.ui.auto(None)  # the person looks away
    err = net.fails("admin", "sign", "--yes", "--key", f"{key};timeout=2",
                    net.node_key("tablet"))
    assert "nobody confirmed on the device in time" in err, err
    assert net.status("tablet")["NodeKeySigned"] is False
    device.ui.next_screen(timeout=1)  # the screen that went unanswered
    device.ui.auto(person._decide)

    # remove --re-sign: what the laptop's (file) key signed is re-signed on the device first.
    net.ok("laptop", "sign", "--yes", net.node_key("tablet"))
    assert net.status("tablet")["NodeKeySigned"] is True
    person.will(True, True)  # the tablet's new signature, then the RemoveKey
    net.ok("admin", "remove", "--yes", net.lock_public("laptop"))
    assert net.status("tablet")["NodeKeySigned"] is True
    trusted = [k["Public"] for k in net.status("admin")["TrustedKeys"]]  # type: ignore[index]
    assert net.lock_public("laptop") not in trusted

    # A recovery started on the device: the revoked key on its screen.
    net.ok("extra", "node", "register", "--name", "extra")
    person.will(True)
    net.ok("admin", "add", "--yes", net.lock_public("extra"))
    person.will(True)
    out_text = net.ok("admin", "revoke-keys", net.lock_public("extra"))
    recovery = person.last()
    assert "--cosign" in out_text and "checkpoint" in recovery
    assert f"remove {net.lock_public('extra')}" in recovery
    assert "Forks from an older AUM" in recovery
    person.done()
