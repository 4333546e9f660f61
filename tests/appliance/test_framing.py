"""Unit tests of the link layer (docs/appliance.md §1): COBS, CRC-32, frames, the receiver's
rules, and the sender's go-back-N driven frame by frame (no device, no serial port)."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

import pytest

from signer.backends.appliance.framing import (
    FLAG_FIN,
    FRAGMENT_MAX,
    FRAGMENT_MIN,
    FRAGMENT_START,
    MAX_FRAME,
    MAX_PAYLOAD,
    WINDOW,
    Frame,
    FrameError,
    FrameReader,
    FrameType,
    Link,
    Receiver,
    Sender,
    StoppedResponding,
    TooLarge,
    ack_frame,
    cobs_decode,
    cobs_encode,
    crc32,
    data_frame,
    nak_frame,
)

# --------------------------------------------------------------------------------------------
# COBS: the published examples (Cheshire & Baker; the examples table on Wikipedia)

_RUN_254 = bytes(range(1, 255))  # 01 02 … FE

COBS_EXAMPLES = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (_RUN_254, b"\xff" + _RUN_254),
    (b"\x00" + _RUN_254, b"\x01\xff" + _RUN_254),
    (_RUN_254 + b"\xff", b"\xff" + _RUN_254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_EXAMPLES)
def test_cobs_published_examples(raw: bytes, encoded: bytes) -> None:
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


def test_cobs_round_trip_random_and_no_zeros() -> None:
    rng = random.Random(7)
    for n in [*range(0, 600), 1036, 5000]:
        data = bytes(rng.choice((0, 0, 1, 255, rng.randrange(256))) for _ in range(n))
        enc = cobs_encode(data)
        assert 0 not in enc
        assert len(enc) <= n + n // 254 + 1
        assert cobs_decode(enc) == data


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x02\x00", b"\x05\x11\x22\x00\x33"])
def test_cobs_decode_rejects(bad: bytes) -> None:
    with pytest.raises(FrameError):
        cobs_decode(bad)


# --------------------------------------------------------------------------------------------
# CRC-32


def test_crc32_check_value_and_zlib() -> None:
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value
    rng = random.Random(1)
    for n in (0, 1, 7, 100, 1032):
        data = rng.randbytes(n)
        assert crc32(data) == zlib.crc32(data)


# --------------------------------------------------------------------------------------------
# Frames


def test_frame_layout() -> None:
    f = Frame(FrameType.DATA, seq=7, offset=0x01020304, payload=b"hello", flags=FLAG_FIN)
    raw = f.encode()
    assert raw[:8] == bytes([1, 1, 1, 7, 1, 2, 3, 4])
    assert raw[8:13] == b"hello"
    assert raw[13:] == struct.pack("<I", zlib.crc32(raw[:13]))
    assert Frame.decode(raw) == f
    wire = f.wire()
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert Frame.decode(cobs_decode(wire[:-1])) == f


def test_frame_sizes() -> None:
    assert len(Frame(FrameType.ACK).encode()) == 12
    full = Frame(FrameType.DATA, payload=bytes(MAX_PAYLOAD))
    assert len(full.encode()) == MAX_FRAME
    with pytest.raises(ValueError):
        Frame(FrameType.DATA, payload=bytes(MAX_PAYLOAD + 1)).encode()


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x01\x02\x00\x00\x00\x00\x00", "shorter"),
        (_with_crc(bytes([1, 1, 0, 0, 0, 0, 0, 0]) + bytes(1025)), "longer"),
        (bytes([1, 2, 0, 0, 0, 0, 0, 0]) + b"\x00\x00\x00\x00", "CRC"),
        (_with_crc(bytes([2, 2, 0, 0, 0, 0, 0, 0])), "version"),
        (_with_crc(bytes([1, 7, 0, 0, 0, 0, 0, 0])), "type"),
        (_with_crc(bytes([1, 0, 0, 0, 0, 0, 0, 0])), "type"),
        (_with_crc(bytes([1, 2, 4, 0, 0, 0, 0, 0])), "reserved"),
    ],
)
def test_frame_decode_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        Frame.decode(raw)


def test_frame_reader_splits_and_reports_noise() -> None:
    a = ack_frame(3, 100)
    b = data_frame(4, 0, b"\x00\x01\x00", fin=True)
    corrupted = bytearray(b.wire())
    corrupted[5] ^= 0x40
    stream = b"\x00\x00" + a.wire() + bytes(corrupted) + b"\x00" + b.wire()
    reader = FrameReader()
    out: list[Frame | FrameError] = []
    # Byte by byte: frames may arrive in any split.
    for i in range(len(stream)):
        out += reader.feed(stream[i : i + 1])
    frames = [x for x in out if isinstance(x, Frame)]
    errors = [x for x in out if isinstance(x, FrameError)]
    assert frames == [a, b]
    assert len(errors) == 1


def test_frame_reader_drops_overlong_garbage() -> None:
    reader = FrameReader()
    out = list(reader.feed(b"\x55" * 5000))
    assert out == []
    out = list(reader.feed(b"\x00" + ack_frame(1, 2).wire()))
    assert isinstance(out[0], FrameError)
    assert out[1] == ack_frame(1, 2)


# --------------------------------------------------------------------------------------------
# Receiver


def test_receiver_in_order_message() -> None:
    r = Receiver()
    replies, got = r.on_data(data_frame(0, 0, b"abc", fin=False))
    assert replies == [ack_frame(0, 3)] and got is None
    replies, got = r.on_data(data_frame(0, 3, b"de", fin=True))
    assert replies == [ack_frame(0, 5, fin=True)] and got == b"abcde"
    # A retransmission of a delivered message is acknowledged with FIN, not delivered again.
    replies, got = r.on_data(data_frame(0, 3, b"de", fin=True))
    assert replies == [ack_frame(0, 5, fin=True)] and got is None
    replies, got = r.on_data(data_frame(0, 0, b"abc", fin=False))
    assert replies == [ack_frame(0, 5, fin=True)] and got is None


def test_receiver_gap_duplicate_overlap_and_new_message() -> None:
    r = Receiver()
    r.on_data(data_frame(5, 0, b"0123", fin=False))
    assert r.on_data(data_frame(5, 8, b"89", fin=False)) == ([nak_frame(5, 4)], None)
    assert r.on_data(data_frame(5, 0, b"01", fin=False)) == ([ack_frame(5, 4)], None)
    # A retransmission with another fragment size overlaps what we hold: the new part counts.
    assert r.on_data(data_frame(5, 2, b"234567", fin=False)) == ([ack_frame(5, 8)], None)
    # Another seq not at offset 0: NAK(seq, 0); at offset 0: a new message replaces this one.
    assert r.on_data(data_frame(6, 4, b"x", fin=True)) == ([nak_frame(6, 0)], None)
    assert r.cur == 5
    replies, got = r.on_data(data_frame(6, 0, b"new", fin=True))
    assert got == b"new" and replies == [ack_frame(6, 3, fin=True)]


def test_receiver_empty_message_and_nak_on_bad_frame() -> None:
    r = Receiver()
    assert r.on_bad_frame() == []  # not receiving: nothing to NAK
    r.on_data(data_frame(1, 0, b"ab", fin=False))
    assert r.on_bad_frame() == [nak_frame(1, 2)]
    replies, got = r.on_data(data_frame(2, 0, b"", fin=True))
    assert got == b"" and replies == [ack_frame(2, 0, fin=True)]
    assert r.on_bad_frame() == []  # done: nothing to NAK


def test_receiver_too_large() -> None:
    r = Receiver(limit=10)
    r.on_data(data_frame(0, 0, b"12345678", fin=False))
    replies, got = r.on_data(data_frame(0, 8, b"9abc", fin=False))
    assert replies == [ack_frame(0, 8, fin=True)]
    assert isinstance(got, TooLarge)
    # The sender was told to stop; later fragments are acknowledged with FIN again.
    assert r.on_data(data_frame(0, 12, b"d", fin=True))[0] == [ack_frame(0, 8, fin=True)]


# --------------------------------------------------------------------------------------------
# Sender


def _drain(sender: Sender, receiver: Receiver, frames: list[Frame], now: float,
           lose: set[int] | None = None) -> tuple[list[bytes | TooLarge], int]:
    """Deliver `frames` (dropping those whose index is in `lose`), feed the answers back."""
    delivered: list[bytes | TooLarge] = []
    answers: list[Frame] = []
    for i, frame in enumerate(frames):
        if lose and i in lose:
            answers += receiver.on_bad_frame()
            continue
        replies, got = receiver.on_data(frame)
        answers += replies
        if got is not None:
            delivered.append(got)
    more: list[Frame] = []
    for a in answers:
        more += sender.on_ack(a, now) if a.type == FrameType.ACK else sender.on_nak(a, now)
    frames[:] = more
    return delivered, len(answers)


def test_sender_window_and_fragments() -> None:
    s, r = Sender(), Receiver()
    message = bytes(range(256)) * 40  # 10240 bytes
    frames = s.start(message, 0.0)
    assert sum(len(f.payload) for f in frames) == WINDOW  # the window, no more
    assert all(len(f.payload) == FRAGMENT_START for f in frames)
    assert [f.offset for f in frames] == list(range(0, WINDOW, FRAGMENT_START))
    got: list[bytes | TooLarge] = []
    t = 0.0
    while frames:
        t += 0.001
        delivered, _ = _drain(s, r, frames, t)
        got += delivered
    assert got == [message]
    assert s.complete and not s.refused
    assert s.fragment > FRAGMENT_START  # 16 clean fragments grow it


def test_sender_goes_back_once_per_loss() -> None:
    s, r = Sender(), Receiver()
    message = bytes(4000)
    frames = s.start(message, 0.0)
    n = len(frames)
    delivered, _ = _drain(s, r, frames, 0.01, lose={2})
    assert delivered == []
    # One NAK for the lost frame, one per later frame: only one rewind, from the gap.
    assert frames and frames[0].offset == 2 * FRAGMENT_START
    assert s.fragment == FRAGMENT_START // 2
    assert s.stats.naks == n - 2
    while frames:
        delivered, _ = _drain(s, r, frames, 0.02)
        if delivered:
            assert delivered == [message]
    assert s.complete


def test_sender_timeout_backoff_and_give_up_counter() -> None:
    s = Sender()
    frames = s.start(b"x" * 100, 0.0)
    assert frames and s.deadline is not None
    rto0 = s.rtt.rto
    now = 0.0
    for i in range(1, 13):
        now = s.deadline
        again = s.on_timer(now)
        assert again and again[0].offset == 0  # everything again from the acknowledged point
        assert s.timeouts_in_row == i
    assert s.rtt.rto == 1.0 > rto0
    assert s.fragment == FRAGMENT_MIN


def test_sender_lost_fin_ack_resends_last_fragment() -> None:
    s, r = Sender(), Receiver()
    frames = s.start(b"abcdef", 0.0)
    for f in frames:
        r.on_data(f)  # delivered, but every ACK is lost
    assert s.deadline is not None
    again = s.on_timer(s.deadline)
    assert again and again[-1].fin
    replies, got = r.on_data(again[-1])
    assert got is None and replies[0].fin
    s.on_ack(replies[0], s.deadline + 0.01)
    assert s.complete


def test_a_damaged_frame_while_waiting_for_acks_is_taken_for_a_lost_nak() -> None:
    s = Sender()
    s.start(b"z" * 600, 0.0)  # three 256-byte fragments in flight
    again = s.on_bad_frame(0.01)
    assert again and again[0].offset == 0  # back to the acknowledged point at once
    # The old flight's NAKs for the same point are absorbed, as after a real NAK.
    assert s.on_nak(nak_frame(0, 0), 0.02) == []
    s.on_ack(ack_frame(0, 600, fin=True), 0.03)
    assert s.on_bad_frame(0.04) == []  # nothing in flight: nothing to do


def test_sender_refused_by_receiver_too_large() -> None:
    s, r = Sender(), Receiver(limit=300)
    frames = s.start(bytes(1000), 0.0)
    delivered, _ = _drain(s, r, frames, 0.01)
    assert s.complete and s.refused
    assert len(delivered) == 1 and isinstance(delivered[0], TooLarge)


def test_sender_seq_wraps_and_ignores_stale_acks() -> None:
    s = Sender()
    for i in range(300):
        frames = s.start(b"m", float(i))
        assert frames[0].seq == i % 256
        assert s.on_ack(ack_frame((i - 1) % 256, 1, fin=True), float(i)) == []
        assert not s.complete
        s.on_ack(ack_frame(i % 256, 1, fin=True), float(i))
        assert s.complete


def test_sender_and_receiver_over_a_lossy_channel() -> None:
    """Random loss of 20 % of frames both ways: every message arrives whole, once."""
    rng = random.Random(11)
    s, r = Sender(), Receiver()
    for size in (0, 1, 31, 32, 255, 1024, 3000, 20000):
        message = rng.randbytes(size)
        now = 0.0
        out = s.start(message, now)
        got: list[bytes | TooLarge] = []
        for _ in range(10000):
            if s.complete:
                break
            answers: list[Frame] = []
            for f in out:
                if rng.random() < 0.2:
                    answers += r.on_bad_frame()
                    continue
                replies, delivered = r.on_data(f)
                answers += replies
                if delivered is not None:
                    got.append(delivered)
            out = []
            now += 0.005
            for a in answers:
                if rng.random() < 0.2:
                    continue
                out += s.on_ack(a, now) if a.type == FrameType.ACK else s.on_nak(a, now)
            if not out and s.deadline is not None and not s.complete:
                now = max(now, s.deadline)
                out = s.on_timer(now)
        assert s.complete, size
        assert got == [message]
        assert FRAGMENT_MIN <= s.fragment <= FRAGMENT_MAX


class _DeviceThatLosesFinalAcks:
    """The device's end, scripted in memory: takes the host's frames, answers with a real
    Receiver, but every ACK with FIN is lost on the line; once a message is whole it answers
    with `reply(message)` (BUSY frames and/or a response message)."""

    name = "scripted"

    def __init__(self, reply: Callable[[bytes], list[Frame]]) -> None:
        self._receiver = Receiver()
        self._reader = FrameReader()
        self._reply = reply
        self._out = bytearray()
        self.final_acks_lost = 0

    def write(self, data: bytes) -> None:
        for item in self._reader.feed(data):
            if isinstance(item, FrameError) or item.type != FrameType.DATA:
                continue
            replies, delivered = self._receiver.on_data(item)
            for frame in replies:
                if frame.type == FrameType.ACK and frame.fin:
                    self.final_acks_lost += 1
                    continue
                self._out += frame.wire()
            if delivered is not None and not isinstance(delivered, TooLarge):
                for frame in self._reply(delivered):
                    self._out += frame.wire()

    def read(self, timeout: float) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def discard_input(self) -> None:
        self._out.clear()

    def close(self) -> None:
        return None


def test_a_busy_for_the_request_completes_it_when_the_final_ack_is_lost() -> None:
    device = _DeviceThatLosesFinalAcks(lambda _msg: [Frame(FrameType.BUSY, seq=0, payload=b"\x01")])
    link = Link(device)
    link.send(b"x" * 700)  # returns: the BUSY shows the device holds all of it
    assert device.final_acks_lost >= 1
    assert link.stats.sender.timeouts == 0


def test_an_answer_to_the_request_completes_it_when_the_final_ack_is_lost() -> None:
    answer = data_frame(0, 0, b"reply-to-7", fin=True)
    device = _DeviceThatLosesFinalAcks(lambda _msg: [answer])
    link = Link(device)
    link.send(b"request 7", answers=lambda d: d == b"reply-to-7")
    assert device.final_acks_lost == 1
    assert link.receive() == b"reply-to-7"
    # A message that is not the answer proves nothing: the sender keeps retransmitting until
    # it gives up (here: a fake clock, 12 timeouts).
    clock = [0.0]

    def tick() -> float:
        clock[0] += 0.5
        return clock[0]

    other = _DeviceThatLosesFinalAcks(lambda _msg: [data_frame(0, 0, b"unrelated", fin=True)])
    with pytest.raises(StoppedResponding):
        Link(other, clock=tick).send(b"request 8", answers=lambda d: d == b"reply-to-8")
