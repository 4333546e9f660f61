"""An active attacker on the line: a relay that rewrites the device's replies (with valid CRCs)
so that they name another key, sighash or batch digest, or carry a bad signature. The host must
refuse every such reply; and it passes a signing deeplink through for the device to check."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Iterator

import nacl.signing
import pytest
from appliance_harness import wait_screen

from signer.backends.appliance.api import Appliance
from signer.backends.appliance.backend import ApplianceBackend
from signer.backends.appliance.framing import Frame, FrameError, FrameType, cobs_decode
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.rpc import InvalidMessage
from signer.backends.appliance.stubkit import (
    Provisioned,
    approve_all,
    nks_context,
    unsigned_direct_nks,
)
from signer.backends.appliance.uri import ApplianceUri
from signer.verified import VerifiedBackend
from verifier import ed25519
from verifier.deeplink import new_deeplink
from verifier.errors import DeviceError, SignerError
from verifier.textforms import format_node_public, format_tlpub

MARKERS = {
    "key": b"\x63key\x58\x20",
    "sighash": b"\x67sighash\x58\x20",
    "digest": b"\x66digest\x58\x20",
    "signature": b"\x69signature\x58\x40",
}


class TamperLine:
    """Relays host ↔ device; in replies, flips one byte of the field named by `target`."""

    def __init__(self, device_path: str) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.host_path = os.ttyname(self.slave)
        self.device = os.open(device_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.device)
        self.target: str | None = None
        self.tampered = 0
        self._buf = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rewrite(self, wire: bytes) -> bytes:
        try:
            frame = Frame.decode(cobs_decode(wire))
        except FrameError:
            return wire
        marker = MARKERS.get(self.target or "")
        if frame.type != FrameType.DATA or marker is None or marker not in frame.payload:
            return wire
        at = frame.payload.index(marker) + len(marker) + 5
        payload = bytearray(frame.payload)
        payload[at] ^= 0x01
        self.tampered += 1
        forged = Frame(frame.type, frame.seq, frame.offset, bytes(payload), frame.flags)
        return forged.wire()[:-1]

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master, self.device], [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return
                if fd == self.master:
                    os.write(self.device, data)
                    continue
                self._buf += data
                *frames, self._buf = self._buf.split(b"\x00")
                out = b"".join(self._rewrite(f) + b"\x00" for f in frames)
                if out:
                    os.write(self.master, out)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self.slave, self.device):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def tampered(
    ready: Provisioned, pins: IdentityPins
) -> Iterator[tuple[TamperLine, VerifiedBackend]]:
    ready.backend.close()
    line = TamperLine(ready.stub.serial)
    dev = Appliance.open(line.host_path, notify=None)
    backend = ApplianceBackend(ApplianceUri(device=line.host_path, key=ready.key),
                               appliance=dev, pins=pins, notify=None)
    assert ready.stub.ui is not None
    ready.stub.ui.auto(approve_all)
    try:
        backend.track(ready.authority)
        yield line, VerifiedBackend(backend)
    finally:
        backend.close()
        line.close()


@pytest.mark.parametrize(("target", "message"), [
    ("key", "signed with key"),
    ("sighash", "signed sighash"),
    ("signature", "does not verify with its public key"),
])
def test_forged_replies_are_refused(ready: Provisioned, tampered: tuple[TamperLine,
                                    VerifiedBackend], target: str, message: str) -> None:
    line, backend = tampered
    nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
    assert ed25519.verify(ready.public, digest, backend.sign(digest, nks_context(nks)))
    line.target = target
    nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
    with pytest.raises(SignerError, match=message):
        backend.sign(digest, nks_context(nks))
    assert line.tampered >= 1


def test_forged_batch_digest_is_refused(ready: Provisioned,
                                        tampered: tuple[TamperLine, VerifiedBackend]) -> None:
    line, backend = tampered
    line.target = "digest"
    items = [unsigned_direct_nks(ready.public, os.urandom(32)) for _ in range(3)]
    with pytest.raises(DeviceError, match="signed batch digest"):
        backend.sign_many([(d, nks_context(n)) for n, d in items])
    assert line.tampered == 1


def test_deeplink_goes_to_the_device(ready: Provisioned) -> None:
    assert ready.stub.ui is not None
    node_key = os.urandom(32)
    rotation = bytes(nacl.signing.SigningKey.generate().verify_key)
    nks, digest = unsigned_direct_nks(ready.public, node_key, rotation)
    state_id1 = ready.authority.state.state_id1
    link = new_deeplink(state_id1, format_node_public(node_key), format_tlpub(rotation),
                        "build-runner-7", "linux", "alice@example.com")
    ready.stub.ui.auto(approve_all)
    signature = ready.backend.sign(digest, nks_context(nks, deeplink=link))
    assert ed25519.verify(ready.public, digest, signature)
    shown = ready.stub.ui.shown[-1].text
    assert "build-runner-7" in shown and "alice@example.com" in shown
    # A deeplink made for another authority (its MAC does not verify) is refused.
    forged = new_deeplink(state_id1 ^ 1, format_node_public(node_key), format_tlpub(rotation),
                          "build-runner-7", "linux", "alice@example.com")
    ready.stub.ui.auto(None)
    with pytest.raises(InvalidMessage):
        ready.backend.sign(digest, nks_context(nks, deeplink=forged))
    with pytest.raises(DeviceError):
        wait_screen(ready.stub, timeout=0.5)  # refused before any screen
