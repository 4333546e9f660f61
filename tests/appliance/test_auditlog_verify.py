"""Unit tests of the audit-log verification (docs/appliance.md §6) on logs built here with an
identity key, then manipulated: gaps, rewrites, bad signatures, wrong heads, rollbacks."""

from __future__ import annotations

import dataclasses
import os

import cbor2
import nacl.signing
import pytest

from signer.backends.appliance.api import SignedBlob
from signer.backends.appliance.auditlog import (
    AUDIT_CONTEXT,
    HEAD_CONTEXT,
    verify_log,
)
from signer.backends.appliance.identity import IdentityPins, LogCheckpoint
from verifier.errors import DeviceError, StorageError
from verifier.hashes import blake2s256


class Log:
    """An audit log as a device would keep it (the most recent `keep` entries)."""

    def __init__(self, n: int, keep: int = 256, key: nacl.signing.SigningKey | None = None) -> None:
        self.key = key or nacl.signing.SigningKey.generate()
        self.bodies: list[bytes] = []
        prev = bytes(32)
        for seq in range(n):
            body = cbor2.dumps({
                "seq": seq, "prev": prev, "time": 1_700_000_000 + seq, "event": "sign_nks",
                "verdict": "approved", "key": bytes([seq % 256]) * 32,
                "sighash": bytes([255 - seq % 256]) * 32, "summary": f"entry {seq}",
            })
            self.bodies.append(body)
            prev = blake2s256(body)
        self.oldest = max(0, n - keep)

    @property
    def identity(self) -> bytes:
        return bytes(self.key.verify_key)

    def sign(self, context: bytes, body: bytes) -> bytes:
        return self.key.sign(context + body).signature

    def entries(self) -> list[SignedBlob]:
        return [SignedBlob(b, self.sign(AUDIT_CONTEXT, b)) for b in self.bodies[self.oldest:]]

    def head(self, nonce: bytes, **override: object) -> SignedBlob:
        doc = {
            "count": len(self.bodies),
            "last": blake2s256(self.bodies[-1]) if self.bodies else bytes(32),
            "oldest": self.oldest, "unread": self.oldest, "nonce": nonce,
        }
        doc.update(override)
        body = cbor2.dumps(doc)
        return SignedBlob(body, self.sign(HEAD_CONTEXT, body))


NONCE = os.urandom(16)


def test_intact_log_verifies() -> None:
    log = Log(10)
    report = verify_log(log.identity, log.entries(), log.head(NONCE), NONCE)
    assert report.ok, report.problems
    assert [e.seq for e in report.entries] == list(range(10))
    assert report.entries[3].summary == "entry 3" and report.entries[3].key == bytes([3]) * 32
    assert report.checkpoint() == LogCheckpoint(10, blake2s256(log.bodies[-1]))


def test_window_of_the_most_recent_entries_verifies() -> None:
    log = Log(300, keep=256)
    entries = log.entries()
    assert len(entries) == 256
    report = verify_log(log.identity, entries, log.head(NONCE), NONCE)
    assert report.ok, report.problems


def test_empty_log_verifies() -> None:
    log = Log(0)
    assert verify_log(log.identity, [], log.head(NONCE), NONCE).ok


def test_gap_is_named() -> None:
    log = Log(10)
    entries = log.entries()
    del entries[4:6]
    report = verify_log(log.identity, entries, log.head(NONCE), NONCE)
    assert not report.ok
    assert any("entries 4-5 missing" in p for p in report.problems), report.problems


def test_missing_tail_and_missing_start() -> None:
    log = Log(10)
    report = verify_log(log.identity, log.entries()[:7], log.head(NONCE), NONCE)
    assert any("entries 7-9 missing" in p for p in report.problems), report.problems
    report = verify_log(log.identity, log.entries()[1:], log.head(NONCE), NONCE)
    assert any("entry 0 missing" in p for p in report.problems), report.problems


def test_rewritten_entry_resigned_breaks_the_chain() -> None:
    """The device (or flash) rewrote entry 3 and signed it again: the signature is fine, the
    chain is not."""
    log = Log(8)
    doc = cbor2.loads(log.bodies[3])
    doc["verdict"] = "declined"
    log.bodies[3] = cbor2.dumps(doc)
    report = verify_log(log.identity, log.entries(), log.head(NONCE), NONCE)
    assert report.problems == [
        "entry 4 does not chain onto entry 3: entry 3 was rewritten (or 4 was)"
    ]


def test_rewritten_newest_entry_against_head() -> None:
    log = Log(5)
    head = log.head(NONCE)
    doc = cbor2.loads(log.bodies[4])
    doc["summary"] = "something else"
    log.bodies[4] = cbor2.dumps(doc)
    report = verify_log(log.identity, log.entries(), head, NONCE)
    assert any("newest entry (4) does not match the hash in the signed head" in p
               for p in report.problems), report.problems


def test_bad_entry_signature() -> None:
    log = Log(5)
    entries = log.entries()
    sig = bytearray(entries[2].sig)
    sig[10] ^= 1
    entries[2] = SignedBlob(entries[2].body, bytes(sig))
    report = verify_log(log.identity, entries, log.head(NONCE), NONCE)
    assert report.problems == [
        "entry 2 is not signed by the device's identity key (forged or altered)"
    ]


def test_entries_signed_by_another_key() -> None:
    log = Log(3)
    other = Log(3)
    report = verify_log(other.identity, log.entries(), other.head(NONCE), NONCE)
    assert len([p for p in report.problems if "not signed" in p]) == 3


def test_head_problems() -> None:
    log = Log(4)
    # Head not signed by the identity.
    forged = SignedBlob(log.head(NONCE).body, bytes(64))
    report = verify_log(log.identity, log.entries(), forged, NONCE)
    assert not report.ok and "head is not signed" in report.problems[0]
    # A replayed head (another nonce).
    report = verify_log(log.identity, log.entries(), log.head(b"old-nonce"), NONCE)
    assert any("replayed" in p for p in report.problems)
    # A head claiming more entries than returned, or fewer.
    report = verify_log(log.identity, log.entries(), log.head(NONCE, count=6), NONCE)
    assert any("entries 4-5 missing" in p for p in report.problems), report.problems
    report = verify_log(log.identity, log.entries(), log.head(NONCE, count=3), NONCE)
    assert any("head says only 3" in p for p in report.problems), report.problems
    report = verify_log(log.identity, log.entries(), log.head(NONCE, unread=9), NONCE)
    assert any("inconsistent" in p for p in report.problems)


def test_duplicated_entry() -> None:
    log = Log(4)
    entries = log.entries()
    entries.insert(2, entries[1])
    report = verify_log(log.identity, entries, log.head(NONCE), NONCE)
    assert any("out of order" in p for p in report.problems), report.problems


def test_rollback_and_rewrite_since_last_read() -> None:
    log = Log(6)
    seen = LogCheckpoint(count=8, last=bytes(32))
    report = verify_log(log.identity, log.entries(), log.head(NONCE), NONCE, previous=seen)
    assert any("went backwards" in p for p in report.problems), report.problems
    # Last time the newest entry was #5 with another hash: #5 changed since.
    seen = LogCheckpoint(count=6, last=blake2s256(b"what it was"))
    report = verify_log(log.identity, log.entries(), log.head(NONCE), NONCE, previous=seen)
    assert report.problems == ["entry 5 changed since this host last read the log: it was "
                               "rewritten"]
    # Unchanged history verifies.
    seen = LogCheckpoint(count=6, last=blake2s256(log.bodies[5]))
    assert verify_log(log.identity, log.entries(), log.head(NONCE), NONCE, previous=seen).ok


def test_unparseable_entry() -> None:
    log = Log(3)
    entries = log.entries()
    bad = cbor2.dumps({"seq": 1})
    entries[1] = SignedBlob(bad, log.sign(AUDIT_CONTEXT, bad))
    report = verify_log(log.identity, entries, log.head(NONCE), NONCE)
    assert any("2nd entry returned does not parse" in p for p in report.problems)


# --------------------------------------------------------------------------------------------
# Identity pins


def test_identity_pinning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pins = IdentityPins(tmp_path / "tka" / "appliance-identities.json")
    a, b = os.urandom(32), os.urandom(32)
    assert pins.check("/dev/ttyACM0", a, board="host") is True
    assert (pins.path.stat().st_mode & 0o777) == 0o600
    assert pins.check("/dev/ttyACM0", a) is False
    with pytest.raises(DeviceError) as info:
        pins.check("/dev/ttyACM0", b)
    assert a.hex() in str(info.value) and b.hex() in str(info.value)
    assert str(pins.path) in str(info.value)
    assert pins.check("/dev/ttyACM1", b) is True
    pins.record_log("/dev/ttyACM0", LogCheckpoint(3, bytes(range(32))))
    pin = pins.get("/dev/ttyACM0")
    assert pin is not None and pin.log == LogCheckpoint(3, bytes(range(32)))
    assert dataclasses.replace(pin, log=None).identity == a
    pins.path.chmod(0o666)
    with pytest.raises(StorageError, match="chmod 600"):
        pins.check("/dev/ttyACM0", a)
