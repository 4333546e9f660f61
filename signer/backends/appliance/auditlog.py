"""Fetching and verifying the appliance's audit log (docs/appliance.md §6).

Each entry's `body` is CBOR `{seq, prev, time, event, verdict, key?, sighash?, summary}`, signed
by the device's identity key over `"tka-appliance audit v1\\0" ‖ body`; `prev` is BLAKE2s-256 of
the previous body (zeros for entry 0). The head `{count, last, oldest, unread, nonce}` is signed
over `"tka-appliance log-head v1\\0" ‖ body` and carries the nonce the host sent, so an old head
cannot be replayed.

`verify_log` checks, and reports each failure precisely (by seq):
- every signature, by the *pinned* identity key;
- the head's nonce is the one just sent;
- entries are consecutive from the head's `oldest` to `count - 1` (gaps are named);
- every `prev` is the hash of the entry before it (a rewritten entry breaks the link after it);
- the newest entry hashes to the head's `last` (a rewritten newest entry);
- against what this host saw last time (`LogCheckpoint`): the count never goes down, and the
  entry it last saw as newest, if still kept, is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from signer.backends.appliance.api import Appliance, SignedBlob
from signer.backends.appliance.identity import LogCheckpoint
from verifier import ed25519
from verifier.errors import DeviceError
from verifier.hashes import blake2s256

AUDIT_CONTEXT = b"tka-appliance audit v1\x00"
HEAD_CONTEXT = b"tka-appliance log-head v1\x00"
PAGE = 64
NONCE_SIZE = 16
ZERO_HASH = bytes(32)


class AuditFormatError(ValueError):
    pass


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    prev: bytes
    time: int
    event: str
    verdict: str
    key: bytes | None
    sighash: bytes | None
    summary: str
    body: bytes
    sig: bytes

    @property
    def hash(self) -> bytes:
        return blake2s256(self.body)


@dataclass(frozen=True)
class LogHead:
    count: int
    last: bytes
    oldest: int
    unread: int
    nonce: bytes


@dataclass
class AuditReport:
    entries: list[AuditEntry]
    head: LogHead | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.head is not None

    def checkpoint(self) -> LogCheckpoint | None:
        if not self.ok or self.head is None:
            return None
        return LogCheckpoint(count=self.head.count, last=self.head.last)


def _decode_map(body: bytes) -> dict[str, Any]:
    try:
        value = cbor2.loads(body, allow_indefinite=False, allow_duplicate_keys=False,
                            max_depth=4)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise AuditFormatError(f"not CBOR ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise AuditFormatError("not a map")
    return value


def _uint(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AuditFormatError(f"{name!r} is missing or not an unsigned integer")
    return value


def _bytes(doc: dict[str, Any], name: str, size: int | None, optional: bool = False
           ) -> bytes | None:
    if name not in doc and optional:
        return None
    value = doc.get(name)
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise AuditFormatError(f"{name!r} is missing or not {size} bytes")
    return value


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise AuditFormatError(f"{name!r} is missing or not text")
    return value


def parse_entry(blob: SignedBlob) -> AuditEntry:
    doc = _decode_map(blob.body)
    prev = _bytes(doc, "prev", 32)
    assert prev is not None
    return AuditEntry(
        seq=_uint(doc, "seq"),
        prev=prev,
        time=_uint(doc, "time"),
        event=_text(doc, "event"),
        verdict=_text(doc, "verdict"),
        key=_bytes(doc, "key", 32, optional=True),
        sighash=_bytes(doc, "sighash", 32, optional=True),
        summary=_text(doc, "summary"),
        body=blob.body,
        sig=blob.sig,
    )


def parse_head(blob: SignedBlob) -> LogHead:
    doc = _decode_map(blob.body)
    last = _bytes(doc, "last", 32)
    nonce = _bytes(doc, "nonce", None)
    assert last is not None and nonce is not None
    return LogHead(count=_uint(doc, "count"), last=last, oldest=_uint(doc, "oldest"),
                   unread=_uint(doc, "unread"), nonce=nonce)


def _signed(identity: bytes, context: bytes, blob: SignedBlob) -> bool:
    return len(blob.sig) == 64 and ed25519.verify(identity, context + blob.body, blob.sig,
                                                  rule="cofactorless")


def _span(a: int, b: int) -> str:
    return f"entry {a}" if a == b else f"entries {a}-{b}"


def verify_log(
    identity: bytes,
    blobs: Sequence[SignedBlob],
    head_blob: SignedBlob,
    nonce: bytes,
    *,
    previous: LogCheckpoint | None = None,
) -> AuditReport:
    """Verify entries (oldest first, meant to be all the device keeps) against a head."""
    problems: list[str] = []
    if not _signed(identity, HEAD_CONTEXT, head_blob):
        return AuditReport([], None, [
            "the log head is not signed by the device's identity key: nothing in this log can "
            "be trusted"
        ])
    try:
        head = parse_head(head_blob)
    except AuditFormatError as err:
        return AuditReport([], None, [f"the signed log head does not parse: {err}"])
    if head.nonce != nonce:
        problems.append(
            "the log head carries another nonce than the one just sent: it is a replayed, "
            "old head"
        )
    if not head.oldest <= head.count or not head.oldest <= head.unread <= head.count:
        problems.append(
            f"the log head is inconsistent (oldest {head.oldest}, unread {head.unread}, "
            f"count {head.count})"
        )

    entries: list[AuditEntry] = []
    for i, blob in enumerate(blobs):
        try:
            entry = parse_entry(blob)
        except AuditFormatError as err:
            problems.append(f"the {_ordinal(i + 1)} entry returned does not parse: {err}")
            continue
        if not _signed(identity, AUDIT_CONTEXT, blob):
            problems.append(
                f"entry {entry.seq} is not signed by the device's identity key (forged or "
                "altered)"
            )
        entries.append(entry)

    expected = head.oldest
    previous_entry: AuditEntry | None = None
    for entry in entries:
        if entry.seq > expected:
            problems.append(f"{_span(expected, entry.seq - 1)} missing (a gap in the log)")
        elif entry.seq < expected:
            problems.append(
                f"entry {entry.seq} is out of order (expected {expected}): entries were "
                "duplicated or reordered"
            )
        if entry.seq == 0 and entry.prev != ZERO_HASH:
            problems.append("entry 0 does not start the chain (its prev is not zero)")
        if previous_entry is not None and entry.seq == previous_entry.seq + 1 \
                and entry.prev != previous_entry.hash:
            problems.append(
                f"entry {entry.seq} does not chain onto entry {previous_entry.seq}: "
                f"entry {previous_entry.seq} was rewritten (or {entry.seq} was)"
            )
        previous_entry = entry
        expected = max(expected, entry.seq + 1)

    if head.count > expected:
        problems.append(
            f"{_span(expected, head.count - 1)} missing: the head says {head.count} entries "
            "were written"
        )
    elif head.count < expected:
        problems.append(
            f"the log holds entries up to {expected - 1} but the head says only {head.count} "
            "were written"
        )
    if entries and entries[-1].seq == head.count - 1 and entries[-1].hash != head.last:
        problems.append(
            f"the newest entry ({entries[-1].seq}) does not match the hash in the signed head: "
            "it was rewritten"
        )
    if not entries and head.count > 0 and head.oldest < head.count:
        pass  # already reported as missing above

    if previous is not None:
        if head.count < previous.count:
            problems.append(
                f"the log went backwards: {previous.count} entries had been written when this "
                f"host last read it, the device now says {head.count} (erased or rolled back)"
            )
        else:
            seen = previous.count - 1
            for entry in entries:
                if entry.seq == seen and entry.hash != previous.last:
                    problems.append(
                        f"entry {seen} changed since this host last read the log: it was "
                        "rewritten"
                    )
    return AuditReport(entries, head, problems)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def fetch_log(
    device: Appliance, identity: bytes, *, previous: LogCheckpoint | None = None
) -> AuditReport:
    """Read every entry the device keeps (pages of 64, from its oldest) and verify them against
    the head of the last page, which carries a fresh nonce."""
    blobs: list[SignedBlob] = []
    nonce = os.urandom(NONCE_SIZE)
    page = device.audit_log(limit=PAGE, nonce=nonce)
    head = page.head
    blobs += page.entries
    asked_from = -1
    for _ in range(10_000):
        try:
            current = parse_head(head)
        except AuditFormatError:
            break  # verify_log reports it
        if not page.entries:
            break
        next_seq = _seq_after(page.entries[-1])
        if next_seq is None or next_seq >= current.count or next_seq <= asked_from:
            break  # the end, or a device that does not move on (verify_log reports the gap)
        asked_from = next_seq
        nonce = os.urandom(NONCE_SIZE)
        page = device.audit_log(start=next_seq, limit=PAGE, nonce=nonce)
        head = page.head
        blobs += page.entries
    else:
        raise DeviceError("the appliance's audit log never ends; the device is faulty")
    return verify_log(identity, blobs, head, nonce, previous=previous)


def _seq_after(blob: SignedBlob) -> int | None:
    try:
        return parse_entry(blob).seq + 1
    except AuditFormatError:
        return None


def acknowledge(device: Appliance, identity: bytes, upto: int) -> LogHead:
    """Mark entries up to `upto` as read (needs the device unlocked); returns the new head."""
    nonce = os.urandom(NONCE_SIZE)
    page = device.audit_log(start=upto, limit=1, nonce=nonce, ack=upto)
    if not _signed(identity, HEAD_CONTEXT, page.head):
        raise DeviceError("the appliance's log head after the acknowledgement is not signed by "
                          "its identity key")
    try:
        head = parse_head(page.head)
    except AuditFormatError as err:
        raise DeviceError(f"the appliance's log head does not parse: {err}") from None
    if head.nonce != nonce:
        raise DeviceError("the appliance answered the acknowledgement with a replayed log head")
    return head
