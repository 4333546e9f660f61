"""signer/qr.py without a tailnet: base45 against RFC 9285's examples, splitting and joining,
and what a broken or hostile set of parts is told."""

from __future__ import annotations

import os
import zlib

import pytest

from signer import qr
from verifier.errors import DecodeError


@pytest.mark.parametrize(("raw", "text"), [
    (b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"), (b"", ""),
])
def test_base45_matches_rfc_9285(raw: bytes, text: str) -> None:
    assert qr.b45encode(raw) == text
    assert qr.b45decode(text) == raw


@pytest.mark.parametrize("bad", ["GGW", "A", "ab", "::::"])
def test_base45_refuses_what_no_encoder_writes(bad: str) -> None:
    with pytest.raises(DecodeError):
        qr.b45decode(bad)


def test_parts_rejoin_in_any_order() -> None:
    data = os.urandom(5000)
    parts = qr.split(data, chunk_chars=900)
    assert len(parts) > 5
    assert qr.join((f"p{i}", p) for i, p in enumerate(reversed(parts))) == data
    assert all(len(p.split(":")[-1]) <= 900 for p in parts)


def test_a_compression_bomb_is_refused() -> None:
    bomb = zlib.compress(b"\0" * (qr.MAX_PAYLOAD + 1), 9)
    encoded = qr.b45encode(bomb)
    digest = qr.payload_digest(b"")
    head = f"TKA1:1/1:{digest}:"
    part = f"{head}{qr._part_digest(head, encoded)}:{encoded}"
    with pytest.raises(DecodeError, match="truncated or too large"):
        qr.join([("p", part)])


def test_a_part_rewritten_with_its_own_digest_still_fails_the_payload_digest() -> None:
    data = b"{}" * 2000 + os.urandom(600)
    parts = qr.split(data, chunk_chars=300)
    prefix, number, digest, _, chunk = parts[1].split(":", 4)
    changed = chunk[:-3] + ("000" if chunk[-3:] != "000" else "111")
    head = f"{prefix}:{number}:{digest}:"
    parts[1] = f"{head}{qr._part_digest(head, changed)}:{changed}"
    with pytest.raises(DecodeError, match=r"reassemble|does not match its digest"):
        qr.join((str(i), p) for i, p in enumerate(parts))
