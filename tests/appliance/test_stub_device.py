"""The host side against the real firmware stub, over its pseudo-terminal with pyserial.

Nothing here mocks the serial port or the device: `signer.appliance_stub` runs the stub
process, `ScreenDriver` is the person pressing buttons on its screen channel."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import nacl.signing
import pytest
from appliance_harness import one_line, open_device, run_tka, spawn_tka, wait_screen

from signer.appliance_stub import ApplianceStub
from signer.backends.appliance.api import Appliance, verify_attestation
from signer.backends.appliance.auditlog import fetch_log
from signer.backends.appliance.backend import ApplianceBackend
from signer.backends.appliance.framing import WaitExpired
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.rpc import (
    Busy,
    Cancelled,
    ConfirmTimeout,
    Declined,
    Locked,
    NotFound,
    Wiped,
    WrongPin,
)
from signer.backends.appliance.stubkit import (
    Provisioned,
    approve_all,
    genesis_authority,
    nks_context,
    unsigned_direct_nks,
)
from signer.backends.appliance.uri import ApplianceUri
from signer.backends.base import SigningContext
from signer.verified import VerifiedBackend
from verifier import ed25519
from verifier.aum import AUM, MessageKind
from verifier.builder import UpdateBuilder
from verifier.errors import DeviceError, SignerError
from verifier.key import ed25519_key
from verifier.signing import AUMSigner

PIN = "correct-horse-42"


def _nks(ready: Provisioned) -> tuple[bytes, SigningContext]:
    nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
    return digest, nks_context(nks)


def _signature_count(dev: Appliance, name: str) -> int:
    return next(k.signatures for k in dev.list_keys() if k.name == name)


# --------------------------------------------------------------------------------------------
# Set-up, unlock, keys


def test_info_setup_unlock_generate_and_keys(stub: ApplianceStub, pins: IdentityPins) -> None:
    assert stub.ui is not None
    with open_device(stub) as dev:
        info = dev.info()
        assert (info.protocol, info.state) == (1, "blank")
        assert len(info.identity) == 32 and info.max_message >= 64 * 1024
        with pytest.raises(DeviceError):
            dev.list_keys()  # nothing to list before set-up
        stub.ui.auto(approve_all)
        assert dev.setup(PIN) == info.identity
        assert dev.info().state == "unlocked"
        key = dev.generate_key("admin")
        verify_attestation(info.identity, key)
        with pytest.raises(DeviceError, match="does not match"):
            verify_attestation(info.identity, dataclasses.replace(key, name="other"))
        with pytest.raises(DeviceError, match="does not verify"):
            verify_attestation(os.urandom(32), key)
        keys = dev.list_keys()
        assert [(k.name, k.public, k.signatures) for k in keys] == [("admin", key.public, 0)]
        dev.lock()
        assert dev.info().state == "locked"
        with pytest.raises(Locked, match="tka appliance unlock"):
            dev.list_keys()
        with pytest.raises(WrongPin) as wrong:
            dev.unlock("not-the-pin")
        assert wrong.value.retries == info.pin_retries - 1
        assert PIN not in str(wrong.value) and "not-the-pin" not in str(wrong.value)
        dev.unlock(PIN)
        after = dev.info()
        assert after.state == "unlocked" and after.pin_retries == info.pin_retries
        assert dev.list_keys()[0].public == key.public


def test_cli_setup_info_generate_keys_lock_unlock(stub: ApplianceStub, tka_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    import json

    assert stub.ui is not None
    env = dict(tka_env, TKA_APPLIANCE_DEVICE=stub.serial)
    info = run_tka(["appliance", "info", "--json"], env)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["schema"] == "tka.appliance-info/1" and doc["state"] == "blank"
    assert doc["identity_pin"] == "new"
    pin_file = Path(tka_env["XDG_DATA_HOME"]) / "tka" / "appliance-identities.json"
    assert pin_file.stat().st_mode & 0o777 == 0o600
    # Set-up without a terminal needs the PIN from the environment; the device asks the person.
    no_pin = run_tka(["appliance", "setup"], env)
    assert no_pin.returncode == 1 and "terminal" in one_line(no_pin.stderr)
    stub.ui.auto(approve_all)
    setup = run_tka(["appliance", "setup"], dict(env, TKA_APPLIANCE_PIN=PIN))
    assert setup.returncode == 0, setup.stderr
    assert "confirm on the device" in setup.stderr
    gen = run_tka(["appliance", "generate", "ops.1"], env)
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("tlpub:") and "attestation verified" in gen.stderr
    keys = json.loads(run_tka(["appliance", "keys", "--json"], env).stdout)
    assert keys["schema"] == "tka.appliance-keys/1"
    assert [k["name"] for k in keys["keys"]] == ["ops.1"]
    assert keys["keys"][0]["public_key"] == gen.stdout.strip()
    assert keys["keys"][0]["uri"] == f"appliance:device={stub.serial};key=ops.1"
    assert run_tka(["appliance", "lock"], env).returncode == 0
    locked = run_tka(["appliance", "keys"], env)
    assert locked.returncode == 1 and "terminal" in one_line(locked.stderr)
    pin_source = tmp_path / "pin"
    pin_source.write_text(PIN + "\n")
    pin_source.chmod(0o644)
    loose = run_tka(["appliance", "unlock", "--pin-source", f"file:{pin_source}"], env)
    assert loose.returncode == 1 and "chmod 600" in one_line(loose.stderr)
    pin_source.chmod(0o600)
    ok = run_tka(["appliance", "unlock", "--pin-source", f"file:{pin_source}"], env)
    assert ok.returncode == 0, ok.stderr
    bad_name = run_tka(["appliance", "generate", "Bad Name"], env)
    assert bad_name.returncode == 2 and one_line(bad_name.stderr).startswith("tka: ")
    # The pinned identity protects against a swapped device on the same name.
    pins = json.loads(pin_file.read_text())
    real = pins["devices"][stub.serial]["identity"]
    pins["devices"][stub.serial]["identity"] = "00" * 32
    pin_file.write_text(json.dumps(pins))
    swapped = run_tka(["appliance", "info"], env)
    line = one_line(swapped.stderr)
    assert swapped.returncode == 1 and real in line and "00" * 32 in line


def test_wrong_pin_ten_times_wipes_the_keys(ready: Provisioned) -> None:
    dev = ready.backend.appliance
    identity = dev.info().identity
    dev.lock()
    seen: list[int | None] = []
    final: Exception | None = None
    for _ in range(10):
        try:
            dev.unlock("wrong-pin-000")
        except WrongPin as err:
            seen.append(err.retries)
        except Wiped as err:
            final = err
    assert seen[:9] == list(range(9, 0, -1))
    assert final is not None or seen[-1] == 0
    info = dev.info()
    assert info.state == "blank" and info.identity == identity
    with pytest.raises(DeviceError):
        dev.unlock(ready.pin)  # the old PIN is gone with the keys
    assert ready.stub.ui is not None
    ready.stub.ui.auto(approve_all)
    dev.setup(ready.pin)
    assert dev.list_keys() == []
    assert not dev.authority().enrolled
    report = fetch_log(dev, identity)
    assert report.ok, report.problems
    assert any(e.event == "wipe" for e in report.entries)


# --------------------------------------------------------------------------------------------
# Signing and its refusals


def test_sign_nks_aum_and_batch(ready: Provisioned) -> None:
    backend = VerifiedBackend(ready.backend)
    assert ready.stub.ui is not None
    ready.stub.ui.auto(approve_all)
    digest, context = _nks(ready)
    signature = backend.sign(digest, context)
    assert ed25519.verify(ready.public, digest, signature)
    # A bare digest, or a payload that does not hash to the digest, is refused on the host.
    with pytest.raises(SignerError, match="bare digest"):
        backend.sign(digest)
    with pytest.raises(SignerError, match="does not hash to the digest"):
        backend.sign(os.urandom(32), context)
    # sign_many: one sign_batch per max_batch items, each confirmed once.
    ready.backend.appliance.set_policy({"max_batch": 3})
    ready.backend._policy = None
    shown_before = len(ready.stub.ui.shown)
    items = [_nks(ready) for _ in range(8)]
    progress: list[int] = []
    signatures = backend.sign_many(items, progress.append)
    assert len(signatures) == 8 and progress == [3, 6, 8]
    assert all(ed25519.verify(ready.public, d, s) for (d, _), s in zip(items, signatures,
                                                                        strict=True))
    assert len(ready.stub.ui.shown) - shown_before == 3
    # An AUM (AddKey) signed by the device under its head.
    other = nacl.signing.SigningKey.generate()
    builder = UpdateBuilder(ready.authority, AUMSigner(
        ready.public, lambda aum: backend.sign(aum.sig_hash(), SigningContext(
            purpose="aum", summary="add a key", payload=aum.to_cbor()))))
    aum = builder.add_key(ed25519_key(bytes(other.verify_key)))
    ready.authority.inform(builder.finalize())
    assert aum.signatures[0].key_id == ready.public
    backend.track(ready.authority)  # the device follows its own AddKey


def test_declined_and_timed_out_sign_nothing(ready: Provisioned) -> None:
    dev = ready.backend.appliance
    assert ready.stub.ui is not None
    before = _signature_count(dev, "admin")
    ready.stub.ui.auto(lambda _screen: False)
    digest, context = _nks(ready)
    with pytest.raises(Declined, match="declined on the device"):
        ready.backend.sign(digest, context)
    ready.stub.ui.auto(None)
    nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
    start = time.monotonic()
    with pytest.raises(ConfirmTimeout, match="nobody confirmed"):
        ready.backend.sign(digest, nks_context(nks, timeout_seconds=2))
    screen = wait_screen(ready.stub)
    assert ready.stub.ui.verdict(screen.number) == "timeout"
    assert time.monotonic() - start < 15
    # A timed-out confirmation must not lock the device (auto_lock is 900 s of idleness).
    assert dev.info().state == "unlocked", "the device locked itself after a timeout"
    assert _signature_count(dev, "admin") == before
    report = fetch_log(dev, dev.info().identity)
    assert report.ok, report.problems
    verdicts = [e.verdict for e in report.entries if e.event.startswith("sign")]
    assert verdicts[-2:] == ["declined", "timeout"]


def test_host_gives_up_waiting_and_cancels(ready: Provisioned) -> None:
    dev = ready.backend.appliance
    assert ready.stub.ui is not None
    dev.confirm_wait = 1.5
    digest, context = _nks(ready)
    with pytest.raises(DeviceError, match="nobody confirmed on the device") as info:
        ready.backend.sign(digest, context)
    assert "cancelled" in str(info.value)
    screen = wait_screen(ready.stub)
    assert ready.stub.ui.verdict(screen.number) == "cancelled"
    assert dev.status().state == "idle"


def test_cancel_while_waiting_and_busy(ready: Provisioned) -> None:
    dev = ready.backend.appliance
    assert ready.stub.ui is not None
    nks, _ = unsigned_direct_nks(ready.public, os.urandom(32))
    request = dev.rpc.send("sign_nks", {"key": "admin", "nks": nks.to_cbor(),
                                        "head": bytes(ready.authority.head)})
    screen = wait_screen(ready.stub)
    status = dev.status()
    assert status.state == "confirming" and status.pending is not None
    assert status.pending.method == "sign_nks" and status.pending.id == request
    with pytest.raises(Busy):
        dev.list_keys()
    assert dev.cancel() is True
    with pytest.raises(Cancelled):
        dev.rpc.wait(request, time.monotonic() + 10)
    assert ready.stub.ui.verdict(screen.number) == "cancelled"
    assert dev.cancel() is False
    assert dev.status().state == "idle"


def test_ctrl_c_on_tka_cancels_on_the_device(ready: Provisioned,
                                             tka_env: dict[str, str]) -> None:
    assert ready.stub.ui is not None
    ready.backend.close()  # one program at a time on the port
    env = dict(tka_env, TKA_APPLIANCE_DEVICE=ready.stub.serial, TKA_APPLIANCE_PIN=ready.pin)
    proc = spawn_tka(["appliance", "generate", "second"], env)
    screen = wait_screen(ready.stub)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "tka: interrupted"
    assert ready.stub.ui.verdict(screen.number) == "cancelled"
    with open_device(ready.stub) as dev:
        assert [k.name for k in dev.list_keys()] == ["admin"]


# --------------------------------------------------------------------------------------------
# Authority tracking


def _software_signer() -> tuple[nacl.signing.SigningKey, AUMSigner]:
    key = nacl.signing.SigningKey.generate()
    public = bytes(key.verify_key)
    return key, AUMSigner.over_digest(public, lambda d: key.sign(d).signature)


def test_track_feeds_missing_aums_and_refuses_foreign(stub: ApplianceStub,
                                                      pins: IdentityPins) -> None:
    from signer.backends.appliance.stubkit import provision

    soft, soft_signer = _software_signer()
    ready = provision(stub, pins=pins, extra_keys=(ed25519_key(bytes(soft.verify_key)),))
    try:
        # The host's chain moves on by AUMs the device has not seen (signed by the other key).
        for _ in range(3):
            builder = UpdateBuilder(ready.authority, soft_signer)
            builder.add_key(ed25519_key(os.urandom(32)))
            ready.authority.inform(builder.finalize())
        assert ready.backend.appliance.authority().head != bytes(ready.authority.head)
        ready.backend.track(ready.authority)
        info = ready.backend.appliance.authority()
        assert info.head == bytes(ready.authority.head)
        assert len(info.keys) == 5
        # Signing now goes under the new head.
        assert ready.stub.ui is not None
        ready.stub.ui.auto(approve_all)
        digest, context = _nks(ready)
        assert ed25519.verify(ready.public, digest, ready.backend.sign(digest, context))
        # Another tailnet's authority does not meet the device's chain.
        foreign = genesis_authority_soft()
        with pytest.raises(DeviceError, match="does not meet this node's chain") as err:
            ready.backend.track(foreign)
        assert "tka appliance enroll --state DIR --replace" in str(err.value)
    finally:
        ready.backend.close()


def genesis_authority_soft():  # type: ignore[no-untyped-def]
    from verifier.authority import Authority, new_state_ids
    from verifier.state import State
    from verifier.storage import MemoryStorage

    _key, signer = _software_signer()
    id1, id2 = new_state_ids()
    state = State(keys=(ed25519_key(signer.public_key),), disablement_values=(os.urandom(32),),
                  state_id1=id1, state_id2=id2)
    return Authority.create(MemoryStorage(), state, signer)[0]


def test_track_requires_enrollment_unless_own_genesis(stub: ApplianceStub,
                                                      pins: IdentityPins) -> None:
    assert stub.ui is not None
    stub.ui.auto(approve_all)
    with open_device(stub) as dev:
        dev.setup(PIN)
        dev.generate_key("k")
    backend = ApplianceBackend(ApplianceUri(device=stub.serial, key="k"), pins=pins,
                               notify=None)
    try:
        with pytest.raises(DeviceError, match=r"not enrolled .* tka appliance enroll"):
            backend.track(genesis_authority_soft())
        with pytest.raises(NotFound, match="no key named 'nope'"):
            ApplianceBackend(ApplianceUri(device=stub.serial, key="nope"), pins=pins,
                             appliance=backend.appliance)
        # A genesis this device signed: enrolled without asking again.
        authority = genesis_authority(backend)
        shown = len(stub.ui.shown)
        stub.ui.auto(None)
        backend.track(authority)
        assert len(stub.ui.shown) == shown
        assert backend.appliance.authority().head == bytes(authority.head)
    finally:
        backend.close()


def test_backend_unlocks_with_pin_source(ready: Provisioned, tmp_path: Path,
                                         pins: IdentityPins) -> None:
    ready.backend.appliance.lock()
    ready.backend.close()
    pin_file = tmp_path / "pin"
    pin_file.write_text(ready.pin + "\n")
    pin_file.chmod(0o600)
    uri = f"appliance:device={ready.stub.serial};key=admin;pin-source=file:{pin_file}"
    from signer.backends import open_backend

    with open_backend(uri) as backend:
        assert backend.public_key() == ready.public
        assert "appliance" in backend.describe()


# --------------------------------------------------------------------------------------------
# Power cut


def test_kill_9_mid_request_and_restart_keeps_everything(ready: Provisioned,
                                                         tka_env: dict[str, str]) -> None:
    stub = ready.stub
    dev = ready.backend.appliance
    assert stub.ui is not None
    identity = dev.info().identity
    stub.ui.auto(approve_all)
    policy = dev.set_policy({"max_batch": 77, "cosigners": 1})
    keys = dev.list_keys()
    before = fetch_log(dev, identity)
    assert before.ok, before.problems
    stub.ui.auto(None)

    failure: list[BaseException] = []

    def sign() -> None:
        try:
            digest, context = _nks(ready)
            ready.backend.sign(digest, context)
        except BaseException as exc:  # the test inspects it
            failure.append(exc)

    worker = threading.Thread(target=sign)
    worker.start()
    wait_screen(stub)
    started = time.monotonic()
    stub.kill()  # SIGKILL: a power cut while the person decides
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert time.monotonic() - started < 10
    assert len(failure) == 1 and isinstance(failure[0], DeviceError)
    message = one_line(str(failure[0]))
    assert "appliance" in message and ("disconnected" in message or "stopped" in message)
    ready.backend.close()

    stub.start()
    with open_device(stub) as dev2:
        info = dev2.info()
        assert info.identity == identity and info.state == "locked"
        dev2.unlock(ready.pin)
        assert dev2.list_keys() == keys
        assert dev2.get_policy() == policy
        assert dev2.authority().head == bytes(ready.authority.head)
        after = fetch_log(dev2, identity, previous=before.checkpoint())
        assert after.ok, after.problems
        old = [e.body for e in before.entries]
        assert [e.body for e in after.entries[: len(old)]] == old
        seqs = [e.seq for e in after.entries]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # And the same from a tka process: one line, no traceback, in seconds.
    env = dict(tka_env, TKA_APPLIANCE_DEVICE=stub.serial, TKA_APPLIANCE_PIN=ready.pin)
    proc = spawn_tka(["appliance", "generate", "k3"], env)
    wait_screen(stub)
    stub.kill()
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "Traceback" not in err
    tka_lines = [line for line in err.splitlines() if line.startswith("tka: ")]
    assert len(tka_lines) == 1 and tka_lines[0].startswith("tka: the appliance on"), err


def test_no_device_is_one_line(tka_env: dict[str, str], tmp_path: Path) -> None:
    gone = run_tka(["appliance", "info", "--device", str(tmp_path / "ttyACM9")], tka_env)
    assert gone.returncode == 1
    assert "no appliance at" in one_line(gone.stderr)
    # A port with nothing behind it (an idle pty): the handshake gets no answer.
    master, slave = os.openpty()
    try:
        silent = run_tka(["appliance", "info", "--device", os.ttyname(slave)], tka_env)
    finally:
        os.close(master)
        os.close(slave)
    assert silent.returncode == 1 and "no appliance answered" in one_line(silent.stderr)


def test_wait_expired_is_not_a_device_error() -> None:
    assert not issubclass(WaitExpired, DeviceError)


def test_aum_kind_guard(ready: Provisioned) -> None:
    aum = AUM(kind=MessageKind.NO_OP, prev_aum_hash=bytes(ready.authority.head))
    with pytest.raises(SignerError, match="only AUMs and node-key signatures"):
        ready.backend.sign(aum.sig_hash(), SigningContext(purpose="other", summary="x",
                                                          payload=aum.to_cbor()))


def test_device_refusals_reach_the_host(ready: Provisioned) -> None:
    """The device's rules are another engineer's; here only that their refusals arrive as the
    right exceptions with usable messages, and that the host recovers where it can."""
    from signer.backends.appliance.rpc import PolicyRefused, StaleAuthority

    dev = ready.backend.appliance
    assert ready.stub.ui is not None
    ready.stub.ui.auto(approve_all)
    # A head the device does not have: the backend re-tracks its authority and signs.
    ready.backend._head = os.urandom(32)
    digest, context = _nks(ready)
    assert ed25519.verify(ready.public, digest, ready.backend.sign(digest, context))
    assert ready.backend._head == bytes(ready.authority.head)
    # Without an authority to re-track, the refusal reaches the caller with the device's head.
    ready.backend._head, ready.backend._authority = os.urandom(32), None
    with pytest.raises(StaleAuthority) as stale:
        ready.backend.sign(*_nks(ready))
    assert stale.value.head == bytes(ready.authority.head)
    assert "tka appliance enroll" in str(stale.value)
    # More items than the policy allows in one batch (sent raw: the backend would split them).
    dev.set_policy({"max_batch": 2})
    items = [unsigned_direct_nks(ready.public, os.urandom(32))[0].to_cbor() for _ in range(3)]
    with pytest.raises(PolicyRefused, match="policy refused sign_batch"):
        dev.sign_batch("admin", bytes(ready.authority.head), items)
    # A cosigner threshold: an AddKey signed by this key alone is refused.
    dev.set_policy({"cosigners": 2})
    builder = UpdateBuilder(ready.authority, AUMSigner(
        ready.public, lambda aum: ready.backend.sign(aum.sig_hash(), SigningContext(
            purpose="aum", summary="add a key", payload=aum.to_cbor()))))
    with pytest.raises(PolicyRefused, match="see tka appliance policy"):
        builder.add_key(ed25519_key(os.urandom(32)))

