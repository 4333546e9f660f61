"""Malformed input sent raw through pyserial: line noise, broken frames, CBOR that is not a call.
The stub answers what it can with error replies and keeps working."""

from __future__ import annotations

import os
import time
from typing import Any

import cbor2
import serial
from appliance_harness import open_device

from signer.appliance_stub import ApplianceStub
from signer.backends.appliance.framing import (
    Frame,
    FrameReader,
    FrameType,
    Receiver,
    ack_frame,
    data_frame,
)


class RawLine:
    """Frames by hand over a pyserial port: the test chooses every byte sent."""

    def __init__(self, path: str) -> None:
        self.port: Any = serial.serial_for_url(path, timeout=0.05)
        self.reader = FrameReader()
        self.receiver = Receiver()
        self.seq = 0
        self.frames: list[Frame] = []
        self.noise = 0

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read_frames(self, until: float) -> None:
        while time.monotonic() < until:
            data = self.port.read(4096)
            if not data:
                return
            for item in self.reader.feed(data):
                if isinstance(item, Frame):
                    self.frames.append(item)
                else:
                    self.noise += 1

    def reset(self) -> None:
        self.write(Frame(FrameType.RESET).wire())
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.read_frames(time.monotonic() + 0.1)
            if any(f.type == FrameType.RESET and f.reply for f in self.frames):
                self.frames.clear()
                self.seq = 0
                self.receiver.reset()
                return
        raise AssertionError("no RESET answer")

    def message(self, payload: bytes, timeout: float = 5.0) -> dict[str, Any]:
        """Send one message (one frame per 200 bytes) and return the decoded reply."""
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        chunks = [payload[i : i + 200] for i in range(0, len(payload), 200)] or [b""]
        offset = 0
        for i, chunk in enumerate(chunks):
            self.write(data_frame(seq, offset, chunk, fin=i == len(chunks) - 1).wire())
            offset += len(chunk)
        deadline = time.monotonic() + timeout
        acked = False
        while time.monotonic() < deadline:
            self.read_frames(time.monotonic() + 0.1)
            while self.frames:
                frame = self.frames.pop(0)
                if frame.type == FrameType.ACK and frame.seq == seq and frame.fin:
                    acked = True
                elif frame.type == FrameType.DATA:
                    replies, delivered = self.receiver.on_data(frame)
                    self.write(b"".join(f.wire() for f in replies))
                    if delivered is not None:
                        assert acked, "a reply before our message was acknowledged"
                        assert isinstance(delivered, bytes)
                        reply = cbor2.loads(delivered)
                        assert isinstance(reply, dict)
                        return reply
        raise AssertionError(f"no reply to message seq {seq}")

    def close(self) -> None:
        self.port.close()


def _error(reply: dict[str, Any]) -> int:
    assert "error" in reply, reply
    code = reply["error"]["code"]
    assert isinstance(reply["error"]["message"], str)
    return int(code)


def test_malformed_frames_and_cbor_get_error_replies(stub: ApplianceStub) -> None:
    line = RawLine(stub.serial)
    try:
        # Line noise first: random bytes, a frame with a bad CRC, an overlong run, a frame of
        # another version; none of them may wedge the device.
        line.write(bytes(b or 1 for b in os.urandom(300)) + b"\x00")
        bad = bytearray(Frame(FrameType.DATA, 0, 0, b"x", 1).wire())
        bad[3] ^= 0x10
        line.write(bytes(bad))
        line.write(b"\x55" * 3000 + b"\x00")
        line.write(b"\x00\x00\x00")
        line.reset()

        # Not CBOR at all: protocol_error, id null.
        reply = line.message(b"\xff\xfe\xfd")
        assert _error(reply) == 1 and reply["id"] is None
        # CBOR, but not a request map.
        reply = line.message(cbor2.dumps([1, 2, 3]))
        assert _error(reply) == 1
        # Trailing bytes after a valid request.
        reply = line.message(cbor2.dumps({"id": 3, "method": "info"}) + b"\x00")
        assert _error(reply) == 1
        # An unknown parameter is refused, not ignored.
        reply = line.message(cbor2.dumps({"id": 4, "method": "info", "params": {"x": 1}}))
        assert _error(reply) == 1 and reply["id"] == 4
        # Wrong parameter type.
        reply = line.message(cbor2.dumps({"id": 5, "method": "unlock", "params": {"pin": 7}}))
        assert _error(reply) in (1, 10) and reply["id"] == 5
        # Indefinite-length map, a float id, a tag, nesting beyond 16 levels.
        reply = line.message(bytes.fromhex("bf626964 06 666d6574686f64 64696e666f ff"
                                           .replace(" ", "")))
        assert _error(reply) == 1
        reply = line.message(cbor2.dumps({"id": 7.5, "method": "info"}))
        assert _error(reply) == 1
        reply = line.message(cbor2.dumps({"id": 8, "method": "info",
                                          "params": {"a": cbor2.CBORTag(1, 0)}}))
        assert _error(reply) == 1
        nested: Any = 0
        for _ in range(20):
            nested = [nested]
        reply = line.message(cbor2.dumps({"id": 9, "method": "info", "params": {"a": nested}}))
        assert _error(reply) == 1
        # A method that does not exist.
        reply = line.message(cbor2.dumps({"id": 10, "method": "give_me_the_keys"}))
        assert _error(reply) == 2 and reply["id"] == 10
        # A gap: a fragment not at offset 0 of a new message draws a NAK(seq, 0).
        line.write(data_frame(line.seq, 50, b"zz", fin=True).wire())
        line.read_frames(time.monotonic() + 0.5)
        assert any(f.type == FrameType.NAK and f.offset == 0 for f in line.frames)
        line.frames.clear()
        # Still a working device.
        reply = line.message(cbor2.dumps({"id": 11, "method": "info"}))
        assert reply["id"] == 11 and reply["result"]["protocol"] == 1
        # A duplicate of a delivered message is acknowledged again (FIN), not answered twice.
        line.write(data_frame((line.seq - 1) % 256, 0, cbor2.dumps({"id": 11, "method": "info"}),
                              fin=True).wire())
        line.read_frames(time.monotonic() + 0.5)
        assert any(f.type == FrameType.ACK and f.fin for f in line.frames)
        assert not any(f.type == FrameType.DATA for f in line.frames)
        line.write(ack_frame(0, 0).wire())  # a stray ACK for nothing: ignored
    finally:
        line.close()
    with open_device(stub) as dev:
        assert dev.info().state == "blank"


def test_too_large_request(stub: ApplianceStub) -> None:
    with open_device(stub) as dev:
        limit = dev.info().max_message
    line = RawLine(stub.serial)
    try:
        line.reset()
        # Claim a huge message: the device stops us with ACK+FIN once past its limit and
        # answers too_large with id null. Fragments are sent at their real offsets.
        seq = line.seq
        line.seq += 1
        chunk = b"\x41" * 1024
        offset = 0
        stopped = False
        while offset <= limit + 1024 and not stopped:
            line.write(data_frame(seq, offset, chunk, fin=False).wire())
            offset += len(chunk)
            if offset % (64 * 1024) == 0 or offset > limit:
                line.read_frames(time.monotonic() + 0.02)
                stopped = any(f.type == FrameType.ACK and f.fin and f.seq == seq
                              for f in line.frames)
        deadline = time.monotonic() + 5
        reply: dict[str, Any] | None = None
        while reply is None and time.monotonic() < deadline:
            line.read_frames(time.monotonic() + 0.1)
            for frame in line.frames:
                if frame.type == FrameType.DATA:
                    replies, delivered = line.receiver.on_data(frame)
                    line.write(b"".join(f.wire() for f in replies))
                    if isinstance(delivered, bytes):
                        reply = cbor2.loads(delivered)
            line.frames.clear()
        assert reply is not None and _error(reply) == 17 and reply["id"] is None
    finally:
        line.close()
