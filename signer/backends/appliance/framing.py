"""The link layer of the appliance protocol (docs/appliance.md §1): COBS, CRC-32, frames, and
the host's end of a reliable, message-oriented link over a byte stream that drops and garbles.

Layers, bottom up:

- `cobs_encode` / `cobs_decode`: Consistent Overhead Byte Stuffing; a frame on the wire is its
  COBS encoding followed by one 0x00, so a receiver finds the next boundary after any noise.
- `Frame`: version, type, flags, seq, offset, payload, CRC-32 (zlib's, little-endian);
  `Frame.encode()` / `Frame.decode()` and `wire()` (COBS + delimiter). `FrameReader` splits a
  byte stream into frames and reports what it had to drop.
- `Receiver`: the receiving half of one direction (cur / got / done, docs/appliance.md §1
  "Receiver").
- `Sender`: go-back-N over bytes with at most 4096 unacknowledged bytes, adaptive retransmission
  timeout (RFC 6298 style, 20 ms-1 s, Karn's rule) and adaptive fragment size (256 → halved on
  loss down to 32, doubled after 16 clean fragments up to 1024).
- `Link`: both halves over a `Transport`: the RESET handshake, `send(message)`,
  `receive(deadline)` with ALIVE every second, BUSY notifications, and the give-up rules
  (12 retransmission timeouts in a row without progress, or 5 s without a valid frame).

Everything below `Link` is pure (no I/O, no clock), so it is tested frame by frame.
"""

from __future__ import annotations

import collections
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from verifier.errors import DeviceError

VERSION = 1
HEADER_SIZE = 8
CRC_SIZE = 4
MAX_PAYLOAD = 1024
MIN_FRAME = HEADER_SIZE + CRC_SIZE  # 12
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 1036
# COBS adds one byte per started block of 254, plus one: the longest encoded frame.
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1

FLAG_FIN = 0x01
FLAG_REPLY = 0x02
_KNOWN_FLAGS = FLAG_FIN | FLAG_REPLY

WINDOW = 4096  # most unacknowledged bytes in flight
FRAGMENT_START = 256
FRAGMENT_MIN = 32
FRAGMENT_MAX = 1024
CLEAN_TO_GROW = 16  # clean fragments before the fragment size doubles
RTO_START = 0.100
RTO_MIN = 0.020
RTO_MAX = 1.0
MAX_TIMEOUTS = 12  # retransmission timeouts in a row without progress before giving up
SILENCE_LIMIT = 5.0  # seconds without a valid frame from the device before giving up
ALIVE_INTERVAL = 1.0
RESET_INTERVAL = 0.2
RESET_TIMEOUT = 2.0
HOST_MAX_MESSAGE = 8 * 1024 * 1024

BUSY_AWAITING_PERSON = 1
BUSY_WORKING = 2


class FrameType(IntEnum):
    DATA = 1
    ACK = 2
    NAK = 3
    BUSY = 4
    RESET = 5
    ALIVE = 6


class FrameError(ValueError):
    """Bytes that are not a valid frame (dropped by the receiver, never acted on)."""


# --------------------------------------------------------------------------------------------
# COBS


def cobs_encode(data: bytes) -> bytes:
    """COBS encoding of `data` (no zero bytes in the result; the delimiter is not included)."""
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        pos = 0
        while len(chunk) - pos >= 254:
            out.append(0xFF)
            out += chunk[pos : pos + 254]
            pos += 254
        rest = chunk[pos:]
        # A chunk that is a whole number of 254-byte blocks at the very end needs no final
        # code byte (a 0xFF block implies no zero); every other chunk ends with one.
        if rest or i != last or pos == 0:
            out.append(len(rest) + 1)
            out += rest
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Inverse of `cobs_encode`; raises FrameError on a zero byte or a block past the end."""
    out = bytearray()
    i = 0
    n = len(encoded)
    if n == 0:
        raise FrameError("empty COBS block")
    while i < n:
        code = encoded[i]
        if code == 0:
            raise FrameError("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise FrameError("COBS block runs past the end of the frame")
        block = encoded[i + 1 : end]
        if 0 in block:
            raise FrameError("zero byte inside a COBS frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, reflected, as zlib and Ethernet compute it)."""
    return zlib.crc32(data) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    type: FrameType
    seq: int = 0
    offset: int = 0
    payload: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    @property
    def reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    def encode(self) -> bytes:
        """The frame before COBS: header, payload, CRC-32 little-endian."""
        if not 0 <= self.seq <= 255:
            raise ValueError(f"seq {self.seq} out of range")
        if not 0 <= self.offset <= 0xFFFFFFFF:
            raise ValueError(f"offset {self.offset} out of range")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        if self.flags & ~_KNOWN_FLAGS:
            raise ValueError(f"reserved flag bits set: {self.flags:#x}")
        body = struct.pack(">BBBBI", VERSION, int(self.type), self.flags, self.seq, self.offset)
        body += self.payload
        return body + struct.pack("<I", crc32(body))

    @classmethod
    def decode(cls, raw: bytes) -> Frame:
        """Parse a frame (after COBS decoding); FrameError for anything a receiver drops."""
        if len(raw) < MIN_FRAME:
            raise FrameError(f"frame of {len(raw)} bytes is shorter than {MIN_FRAME}")
        if len(raw) > MAX_FRAME:
            raise FrameError(f"frame of {len(raw)} bytes is longer than {MAX_FRAME}")
        body, (crc,) = raw[:-CRC_SIZE], struct.unpack("<I", raw[-CRC_SIZE:])
        if crc32(body) != crc:
            raise FrameError("CRC mismatch")
        version, ftype, flags, seq, offset = struct.unpack(">BBBBI", body[:HEADER_SIZE])
        if version != VERSION:
            raise FrameError(f"frame version {version}, expected {VERSION}")
        try:
            kind = FrameType(ftype)
        except ValueError:
            raise FrameError(f"unknown frame type {ftype}") from None
        if flags & ~_KNOWN_FLAGS:
            raise FrameError(f"reserved flag bits set: {flags:#x}")
        return cls(type=kind, seq=seq, offset=offset, payload=bytes(body[HEADER_SIZE:]),
                   flags=flags)

    def wire(self) -> bytes:
        """What goes on the line: COBS(frame) followed by the 0x00 delimiter."""
        return cobs_encode(self.encode()) + b"\x00"


def data_frame(seq: int, offset: int, payload: bytes, fin: bool) -> Frame:
    return Frame(FrameType.DATA, seq, offset, payload, FLAG_FIN if fin else 0)


def ack_frame(seq: int, offset: int, fin: bool = False) -> Frame:
    return Frame(FrameType.ACK, seq, offset, b"", FLAG_FIN if fin else 0)


def nak_frame(seq: int, offset: int) -> Frame:
    return Frame(FrameType.NAK, seq, offset)


class FrameReader:
    """Splits a byte stream at 0x00 delimiters into frames.

    `feed(data)` yields a `Frame` for every valid frame and a `FrameError` for every piece of
    line noise it dropped (bad COBS, bad CRC, wrong length, version, type or flags). Runs of
    delimiters (empty pieces) are not frames and are skipped silently; a piece that grows past
    the longest possible frame is dropped as soon as its delimiter arrives.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> Iterator[Frame | FrameError]:
        start = 0
        while True:
            zero = data.find(b"\x00", start)
            if zero < 0:
                piece = data[start:]
                if len(self._buf) + len(piece) > MAX_ENCODED:
                    self._overlong = True
                    self._buf.clear()
                else:
                    self._buf += piece
                return
            piece = data[start:zero]
            start = zero + 1
            if self._overlong or len(self._buf) + len(piece) > MAX_ENCODED:
                self._overlong = False
                self._buf.clear()
                yield FrameError("frame longer than the longest valid frame")
                continue
            encoded = bytes(self._buf + piece)
            self._buf.clear()
            if not encoded:
                continue
            try:
                yield Frame.decode(cobs_decode(encoded))
            except FrameError as err:
                yield err


# --------------------------------------------------------------------------------------------
# Receiver: one direction's receiving half (pure)


class TooLarge:
    """Delivered in place of a message that exceeded the receiver's limit."""

    def __init__(self, size_seen: int) -> None:
        self.size_seen = size_seen


Delivery = bytes | TooLarge


class Receiver:
    """The receiver of docs/appliance.md §1 (`cur`, `got`, `done`)."""

    def __init__(self, limit: int = HOST_MAX_MESSAGE) -> None:
        self.limit = limit
        self.cur: int | None = None
        self.got = 0
        self.done = False
        self._buf = bytearray()
        self._too_large = False

    def reset(self) -> None:
        self.cur = None
        self.got = 0
        self.done = False
        self._buf = bytearray()
        self._too_large = False

    @property
    def receiving(self) -> bool:
        """A message has started and is not complete (a dropped frame then earns a NAK)."""
        return self.cur is not None and not self.done

    @property
    def next_seq(self) -> int:
        """The seq the sender's next message will carry."""
        return 0 if self.cur is None else (self.cur + 1) % 256

    def on_bad_frame(self, expecting: bool = False) -> list[Frame]:
        """A frame was dropped: NAK the message being received, if any. With `expecting` (a
        reply is awaited and none has started), the dropped frame may have been the reply's
        first fragment: NAK(next seq, 0), so the sender need not wait for its timer."""
        if self.receiving:
            assert self.cur is not None
            return [nak_frame(self.cur, self.got)]
        if expecting:
            return [nak_frame(self.next_seq, 0)]
        return []

    def on_data(self, frame: Frame) -> tuple[list[Frame], Delivery | None]:
        """Handle one DATA frame: the frames to answer with and a delivered message, if any."""
        seq, offset, payload = frame.seq, frame.offset, frame.payload
        if seq != self.cur:
            if offset != 0:
                return [nak_frame(seq, 0)], None
            self.cur, self.got, self.done = seq, 0, False
            self._buf = bytearray()
            self._too_large = False
        if self.done:
            return [ack_frame(seq, self.got, fin=True)], None
        if offset > self.got:
            return [nak_frame(seq, self.got)], None
        end = offset + len(payload)
        if end < self.got or (end == self.got and not frame.fin):
            # A duplicate (or a FIN that ends before bytes we hold): say what we hold.
            return [ack_frame(seq, self.got)], None
        if end > self.limit:
            # Stop the sender (ACK with FIN) and deliver "too large" instead of the message.
            self.done = True
            self._buf = bytearray()
            return [ack_frame(seq, self.got, fin=True)], TooLarge(end)
        # A retransmission may start before `got` (another fragment size): take the new part.
        self._buf += payload[self.got - offset :]
        self.got = end
        if frame.fin:
            self.done = True
            message = bytes(self._buf)
            self._buf = bytearray()
            return [ack_frame(seq, self.got, fin=True)], message
        return [ack_frame(seq, self.got)], None


# --------------------------------------------------------------------------------------------
# Sender: go-back-N over bytes (pure; the caller supplies the time)


@dataclass
class _InFlight:
    start: int
    end: int
    sent_at: float
    retransmitted: bool


@dataclass
class SenderStats:
    fragments: int = 0
    retransmitted_fragments: int = 0
    timeouts: int = 0
    naks: int = 0


class RttEstimator:
    """Smoothed round trip and retransmission timeout (RFC 6298), clamped to 20 ms-1 s."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = RTO_START

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(RTO_MAX, max(RTO_MIN, self.srtt + 4 * self.rttvar))

    def back_off(self) -> None:
        self.rto = min(RTO_MAX, self.rto * 2)


class Sender:
    """Sends one message at a time. The caller feeds it ACK/NAK frames and the time, and writes
    the frames it returns. `fragment` and `rtt` persist across messages (the line's quality
    does not change with each message)."""

    def __init__(self) -> None:
        self.next_seq = 0
        self.rtt = RttEstimator()
        self.fragment = FRAGMENT_START
        self._clean = 0
        self.stats = SenderStats()
        self._msg = b""
        self.seq = 0
        self.active = False
        self.complete = False
        self.refused = False  # the receiver stopped us with FIN before the end (too large)
        self._base = 0
        self._next = 0
        self._high = 0  # highest byte ever sent of this message (Karn's rule)
        self._sent_empty = False
        self._empty_sends = 0
        self._inflight: collections.deque[_InFlight] = collections.deque()
        self.deadline: float | None = None  # retransmission timer
        self.timeouts_in_row = 0
        self._stale_naks = 0  # NAKs for the acknowledged point still due from an old flight

    def reset(self) -> None:
        """After a RESET handshake: numbering starts at 0, nothing in progress."""
        self.next_seq = 0
        self.active = False
        self.complete = False
        self.deadline = None

    def start(self, message: bytes, now: float) -> list[Frame]:
        """Begin sending `message` (abandoning any incomplete one) under the next seq."""
        self._msg = bytes(message)
        self.seq = self.next_seq
        self.next_seq = (self.next_seq + 1) % 256
        self.active = True
        self.complete = False
        self.refused = False
        self._base = self._next = self._high = 0
        self._sent_empty = False
        self._empty_sends = 0
        self._inflight.clear()
        self.deadline = None
        self.timeouts_in_row = 0
        self._stale_naks = 0
        return self._fill(now)

    @property
    def acked(self) -> int:
        return self._base

    def _fill(self, now: float) -> list[Frame]:
        frames: list[Frame] = []
        total = len(self._msg)
        if total == 0:
            if not self._sent_empty:
                self._sent_empty = True
                frames.append(data_frame(self.seq, 0, b"", fin=True))
                self._note_sent(0, 0, now)
            return frames
        while self._next < total and self._next - self._base < WINDOW:
            end = min(self._next + self.fragment, total, self._base + WINDOW)
            frames.append(
                data_frame(self.seq, self._next, self._msg[self._next : end], fin=end == total)
            )
            self._note_sent(self._next, end, now)
            self._next = end
        return frames

    def _note_sent(self, start: int, end: int, now: float) -> None:
        retransmitted = start < self._high or (start == end and self._empty_sends > 0)
        if start == end:
            self._empty_sends += 1
        self._inflight.append(_InFlight(start, end, now, retransmitted))
        self._high = max(self._high, end)
        self.stats.fragments += 1
        if retransmitted:
            self.stats.retransmitted_fragments += 1
        if self.deadline is None:
            self.deadline = now + self.rtt.rto

    def _loss(self) -> None:
        self.fragment = max(FRAGMENT_MIN, self.fragment // 2)
        self._clean = 0

    def _go_back(self, now: float, stale_naks: int = 0) -> list[Frame]:
        self._inflight.clear()
        self._stale_naks = stale_naks
        total = len(self._msg)
        if total == 0:
            self._sent_empty = False
        elif self._base >= total:
            # Everything was acknowledged but the FIN acknowledgement went missing: send the
            # last fragment again so that the receiver repeats its ACK with FIN.
            self._next = max(0, total - min(self.fragment, total))
            self._base = self._next
        else:
            self._next = self._base
        self.deadline = None
        return self._fill(now)

    def on_bad_frame(self, now: float) -> list[Frame]:
        """A damaged frame arrived while we wait for acknowledgements: the device sends only in
        answer to us, so it was most likely the ACK or NAK for what is in flight. Act as on a
        NAK for the acknowledged point (with the same accounting of an old flight's NAKs)
        instead of waiting for the timer."""
        if not self.active or not self._inflight:
            return []
        return self.on_nak(nak_frame(self.seq, self._base), now)

    def delivered(self) -> None:
        """The receiver showed it holds the whole message another way (a BUSY for it, or an
        answer to it): done, as if its ACK with FIN, lost on the line, had arrived."""
        if self.active:
            self.active = False
            self.complete = True
            self.deadline = None
            self._base = len(self._msg)

    def on_ack(self, frame: Frame, now: float) -> list[Frame]:
        if not self.active or frame.seq != self.seq:
            return []
        total = len(self._msg)
        if frame.fin:
            self.active = False
            self.complete = True
            self.refused = frame.offset != total
            self.deadline = None
            self._sample(min(frame.offset, total), now)
            self._base = max(self._base, min(frame.offset, total))
            return []
        if frame.offset > total or frame.offset <= self._base:
            return []
        self._sample(frame.offset, now)
        self._advance(frame.offset, now)
        return self._fill(now)

    def on_nak(self, frame: Frame, now: float) -> list[Frame]:
        if not self.active or frame.seq != self.seq:
            return []
        self.stats.naks += 1
        total = len(self._msg)
        if frame.offset > total:
            return []  # names bytes this message does not have: not about it
        if self._base < frame.offset:
            self._advance(frame.offset, now)
        if frame.offset < self._base:
            return []  # a NAK from before an ACK we already have
        if frame.offset == self._base and self._stale_naks > 0:
            # Each frame of the flight before our last go-back from this point earns one NAK
            # for the same gap (the line keeps order, so they all arrive before any answer to
            # the retransmission); only a NAK beyond those means the retransmission was lost.
            self._stale_naks -= 1
            return []
        self._loss()
        return self._go_back(now, stale_naks=max(0, len(self._inflight) - 1))

    def _advance(self, offset: int, now: float) -> None:
        acked = 0
        while self._inflight and self._inflight[0].end <= offset:
            self._inflight.popleft()
            acked += 1
        self._base = offset
        self._next = max(self._next, offset)
        self._stale_naks = 0
        self.timeouts_in_row = 0
        self._clean += max(acked, 1)
        if self._clean >= CLEAN_TO_GROW:
            self.fragment = min(FRAGMENT_MAX, self.fragment * 2)
            self._clean = 0
        self.deadline = now + self.rtt.rto if self._outstanding() else None

    def _outstanding(self) -> bool:
        return self.active and (self._next > self._base or self._next < len(self._msg))

    def _sample(self, offset: int, now: float) -> None:
        for f in self._inflight:
            if f.end == offset:
                if not f.retransmitted:
                    self.rtt.sample(now - f.sent_at)
                return

    def on_timer(self, now: float) -> list[Frame]:
        """Call when `deadline` has passed: go back and count the timeout."""
        if not self.active or self.deadline is None or now < self.deadline:
            return []
        self.timeouts_in_row += 1
        self.stats.timeouts += 1
        self.rtt.back_off()
        self._loss()
        return self._go_back(now)


# --------------------------------------------------------------------------------------------
# The link over a transport


class Transport(Protocol):
    """What the link needs from the byte transport (`transport.SerialTransport`)."""

    name: str

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class LinkError(DeviceError):
    """The serial link failed: no answer, or the appliance stopped responding."""


class NoAppliance(LinkError):
    """Nothing answered the RESET handshake."""


class StoppedResponding(LinkError):
    """12 retransmission timeouts without progress, or 5 s without a valid frame."""


class WaitExpired(Exception):
    """The caller's deadline passed while the device was still working (not a link failure)."""


@dataclass
class LinkStats:
    frames_out: int = 0
    frames_in: int = 0
    bad_frames: int = 0
    naks_sent: int = 0
    messages_out: int = 0
    messages_in: int = 0
    sender: SenderStats = field(default_factory=SenderStats)

    @property
    def retransmissions(self) -> int:
        return self.sender.retransmitted_fragments


class Link:
    """The host's end of the link. Single-threaded: every method drives the line itself."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_message: int = HOST_MAX_MESSAGE,
        on_busy: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.on_busy = on_busy
        self._clock = clock
        self._reader = FrameReader()
        self._receiver = Receiver(max_message)
        self._sender = Sender()
        self._inbox: collections.deque[Delivery] = collections.deque()
        self._reset_reply = False
        self._in_handshake = False
        self._expecting = False  # receive() is waiting for a message
        self.last_heard = 0.0
        self.busy_reason: int | None = None  # last BUSY reason for the message waited on
        self.stats = LinkStats(sender=self._sender.stats)

    @property
    def name(self) -> str:
        return self.transport.name

    # -- plumbing --------------------------------------------------------------------------

    def _write(self, frames: list[Frame]) -> None:
        if not frames:
            return
        self.stats.frames_out += len(frames)
        self.transport.write(b"".join(f.wire() for f in frames))

    def _pump(self, until: float) -> None:
        """Read what arrives before `until` (at least one read) and act on every frame."""
        data = self.transport.read(max(0.0, until - self._clock()))
        if not data:
            return
        out: list[Frame] = []
        for item in self._reader.feed(data):
            if isinstance(item, FrameError):
                self.stats.bad_frames += 1
                naks = self._receiver.on_bad_frame(self._expecting)
                self.stats.naks_sent += len(naks)
                out += naks
                out += self._sender.on_bad_frame(self._clock())
                continue
            self.stats.frames_in += 1
            self.last_heard = self._clock()
            out += self._dispatch(item)
        self._write(out)

    def _dispatch(self, frame: Frame) -> list[Frame]:
        now = self._clock()
        if self._in_handshake:
            if frame.type == FrameType.RESET and frame.reply:
                self._reset_reply = True
            return []  # nothing before the handshake's answer belongs to this session
        if frame.type == FrameType.DATA:
            replies, delivered = self._receiver.on_data(frame)
            self.stats.naks_sent += sum(1 for f in replies if f.type == FrameType.NAK)
            if delivered is not None:
                self.stats.messages_in += 1
                self._inbox.append(delivered)
            return replies
        if frame.type == FrameType.ACK:
            return self._sender.on_ack(frame, now)
        if frame.type == FrameType.NAK:
            return self._sender.on_nak(frame, now)
        if frame.type == FrameType.BUSY:
            reason = frame.payload[0] if frame.payload else 0
            if frame.seq == self._sender.seq:
                # The device works on a request only once it holds all of it: a BUSY for the
                # message still being sent means its final ACK was lost.
                self._sender.delivered()
                first = self.busy_reason != reason
                self.busy_reason = reason
                if first and self.on_busy is not None:
                    self.on_busy(reason)
            return []
        return []  # ALIVE from the device, stray RESET replies: heard, nothing to do

    # -- the session -----------------------------------------------------------------------

    def reset(self) -> None:
        """The RESET handshake (docs/appliance.md §1): every 200 ms for 2 s until the device
        answers."""
        self.transport.discard_input()
        self._reader = FrameReader()
        self._in_handshake = True
        self._reset_reply = False
        start = self._clock()
        next_send = start
        try:
            while not self._reset_reply:
                now = self._clock()
                if now - start >= RESET_TIMEOUT:
                    raise NoAppliance(
                        f"no appliance answered on {self.name} within {RESET_TIMEOUT:g} s; "
                        "check the device path, that it is plugged in and powered, and that "
                        "no other program is using it"
                    )
                if now >= next_send:
                    self._write([Frame(FrameType.RESET)])
                    next_send = now + RESET_INTERVAL
                self._pump(min(next_send, start + RESET_TIMEOUT))
        finally:
            self._in_handshake = False
        self.last_heard = self._clock()
        self._sender.reset()
        self._receiver.reset()
        self._inbox.clear()
        self.busy_reason = None

    def send(
        self,
        message: bytes,
        deadline: float | None = None,
        answers: Callable[[Delivery], bool] | None = None,
    ) -> None:
        """Deliver one message; returns when the device acknowledged all of it (ACK with FIN),
        or showed it holds all of it: a BUSY for it, or a message from the device for which
        `answers` is true (the caller knows which replies only a delivered request gets).

        Gives up (StoppedResponding) after 12 retransmission timeouts in a row without progress,
        or 5 s without any valid frame from the device; WaitExpired at `deadline`."""
        now = self._clock()
        self.busy_reason = None
        self.stats.messages_out += 1
        started = now
        self._write(self._sender.start(message, now))
        while not self._sender.complete:
            if answers is not None and any(answers(m) for m in self._inbox):
                self._sender.delivered()
                break
            now = self._clock()
            if self._sender.deadline is not None and now >= self._sender.deadline:
                self._write(self._sender.on_timer(now))
                if self._sender.timeouts_in_row >= MAX_TIMEOUTS:
                    raise self._stopped(f"{MAX_TIMEOUTS} retransmissions went unanswered")
            if now - max(self.last_heard, started) >= SILENCE_LIMIT:
                raise self._stopped(f"nothing heard for {SILENCE_LIMIT:g} s")
            if deadline is not None and now >= deadline:
                raise WaitExpired
            wake = now + 0.05
            if self._sender.deadline is not None:
                wake = min(wake, self._sender.deadline)
            if deadline is not None:
                wake = min(wake, deadline)
            self._pump(wake)

    def receive(self, deadline: float | None = None) -> Delivery:
        """The next message from the device. Sends ALIVE every second while waiting; raises
        StoppedResponding after 5 s without a valid frame, WaitExpired at `deadline`."""
        started = self._clock()
        next_alive = started + ALIVE_INTERVAL
        self._expecting = True
        try:
            return self._receive(deadline, started, next_alive)
        finally:
            self._expecting = False

    def _receive(self, deadline: float | None, started: float, next_alive: float) -> Delivery:
        while not self._inbox:
            now = self._clock()
            if deadline is not None and now >= deadline:
                raise WaitExpired
            if now - max(self.last_heard, started) >= SILENCE_LIMIT:
                raise self._stopped(f"nothing heard for {SILENCE_LIMIT:g} s")
            if now >= next_alive:
                self._write([Frame(FrameType.ALIVE)])
                next_alive = now + ALIVE_INTERVAL
            wake = min(next_alive, max(self.last_heard, started) + SILENCE_LIMIT)
            if deadline is not None:
                wake = min(wake, deadline)
            self._pump(wake)
        return self._inbox.popleft()

    def _stopped(self, why: str) -> StoppedResponding:
        return StoppedResponding(
            f"the appliance on {self.name} stopped responding ({why}); check the cable and "
            "that the device is powered, then retry"
        )

    def close(self) -> None:
        self.transport.close()
