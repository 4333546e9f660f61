"""The tailnet-lock story with the signer appliance as the admin's lock key, end to end: the
firmware stub on its pseudo-terminal, `tka` as a subprocess reaching it through pyserial, the
embedded coordination service in SQLite, a SoftHSM key as the second person's, and the person
at the device played by the test through the stub's screen channel.

What it shows: init signs the genesis and every node on the device; signing a node shows its
key; a declined request signs and submits nothing; with the policy's cosigner threshold the
device refuses to add or remove a key alone and signs once a second key has; a revocation is
co-signed on the device; the device's audit log has every decision."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from tailnet_harness import REPO, Tailnet

from signer.appliance_stub import ApplianceStub, Screen


class Person:
    """Answers the device's screens in the order the test expects them; anything unexpected
    is declined (the safe answer) and recorded."""

    def __init__(self, stub: ApplianceStub) -> None:
        assert stub.ui is not None
        self.screens: list[Screen] = []
        self._answers: collections.deque[bool] = collections.deque()
        self._lock = threading.Lock()
        stub.ui.auto(self._decide)

    def will(self, *answers: bool) -> None:
        with self._lock:
            self._answers.extend(answers)

    def _decide(self, screen: Screen) -> bool:
        with self._lock:
            self.screens.append(screen)
            return self._answers.popleft() if self._answers else False

    def done(self) -> None:
        with self._lock:
            assert not self._answers, f"the device asked fewer times than expected: {self.screens}"

    def last(self) -> str:
        return self.screens[-1].text


@pytest.fixture
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApplianceStub]:
    # Outside the tailnet's directory: the device's flash is not the host's storage.
    stub = ApplianceStub(tmp_path_factory.mktemp("device")).start()
    try:
        yield stub
    finally:
        stub.kill()


def _tka(net: Tailnet, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", *args], cwd=REPO, env=net.env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_lifecycle_with_the_appliance(
    tailnet: Tailnet, softhsm_token: object, appliance: ApplianceStub
) -> None:
    net = tailnet
    person = Person(appliance)
    net.env["TKA_APPLIANCE_PIN"] = "correct horse 42"
    net.env["TKA_APPLIANCE_DEVICE"] = appliance.serial
    device_key = appliance.key_uri("admin")

    # Set up the device and make the admin's lock key on it.
    person.will(True)
    proc = _tka(net, "appliance", "setup")
    assert proc.returncode == 0, proc.stderr
    person.will(True)
    proc = _tka(net, "appliance", "generate", "admin")
    assert proc.returncode == 0, proc.stderr
    assert "admin" in person.last()

    hsm = softhsm_token.uri(object="second-person")  # type: ignore[attr-defined]
    assert _tka(net, "key", "generate", hsm).returncode == 0
    net.ok("admin", "node", "register", "--name", "admin", "--lock-key", device_key)
    net.ok("second", "node", "register", "--name", "second", "--lock-key", hsm)
    net.ok("laptop", "node", "register", "--name", "laptop")
    admin, second, laptop = (net.lock_public(n) for n in ("admin", "second", "laptop"))

    # init: the genesis on the device (its keys shown), then every node in one batch.
    person.will(True, True)
    net.ok("admin", "init", "--gen-disablements", "2", "--confirm", admin, second, laptop)
    genesis_screen, batch_screen = (s.text for s in person.screens[-2:])
    for key in (admin, second, laptop):
        assert key in genesis_screen
    assert "3" in batch_screen
    person.done()
    for node in ("admin", "second", "laptop"):
        assert net.status(node)["NodeKeySigned"] is True

    # A new node signed on the device, which shows its key in full and in short form.
    net.ok("phone", "node", "register", "--name", "phone")
    phone = net.node_key("phone")
    person.will(True)
    net.ok("admin", "sign", "--yes", phone, net.lock_public("phone"))
    assert phone in person.last()
    assert net.status("phone")["NodeKeySigned"] is True

    # Declined on the device: nothing signed, nothing submitted, storage byte-identical.
    net.ok("tablet", "node", "register", "--name", "tablet")
    person.will(False)
    err = net.fails("admin", "sign", "--yes", net.node_key("tablet"))
    assert "declined" in err
    assert net.status("tablet")["NodeKeySigned"] is False

    # The laptop's key is compromised: a recovery started on the HSM, co-signed on the device
    # (it forks from the genesis, where nothing competes with it yet).
    out = net.ok("second", "revoke-keys", laptop)
    blob = out.split("--cosign ")[1].split()[0]
    person.will(True)
    out = net.ok("admin", "revoke-keys", "--cosign", "--yes", blob)
    assert laptop in person.last()
    cosigned = out.split("--finish ")[1].split()[0]
    net.ok("admin", "revoke-keys", "--finish", "--yes", cosigned)
    trusted = [k["Public"] for k in net.status("phone")["TrustedKeys"]]  # type: ignore[index]
    assert laptop not in trusted and admin in trusted
    person.done()

    # Two people for every key change.
    person.will(True)
    proc = _tka(net, "appliance", "policy", "--set", "cosigners=2")
    assert proc.returncode == 0, proc.stderr
    net.ok("extra", "node", "register", "--name", "extra")
    extra = net.lock_public("extra")
    err = net.fails("admin", "add", "--yes", extra)  # the device alone: refused, never shown
    assert "policy refused" in err and "needs 1 first" in err
    person.will(True)
    net.ok("admin", "add", "--yes", "--key", hsm, "--key", device_key, extra)
    assert extra in person.last()
    trusted = [k["Public"] for k in net.status("admin")["TrustedKeys"]]  # type: ignore[index]
    assert extra in trusted
    person.will(True)
    net.ok("admin", "remove", "--yes", "--re-sign=false", "--key", hsm, "--key", device_key,
           extra)
    trusted = [k["Public"] for k in net.status("admin")["TrustedKeys"]]  # type: ignore[index]
    assert extra not in trusted

    # The device's own record: every decision, signed and chained, verified by the host.
    proc = _tka(net, "appliance", "log", "--json")
    assert proc.returncode == 0, proc.stderr
    log = json.loads(proc.stdout)
    verdicts = [e["verdict"] for e in log["entries"]]
    assert "declined" in verdicts and "refused" in verdicts
    assert verdicts.count("approved") >= 8
