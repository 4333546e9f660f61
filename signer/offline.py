"""Signing from an air-gapped workstation: requests and responses carried as files, checked
against an authority the air-gapped side pinned itself.

Threat: the online host that writes requests may be compromised. A request carries an authority
chain, and a chain that verifies proves only that *some* authority's keys signed it: an attacker
can make a genesis of their own that lists the victim's lock key, or hand over the real chain
cut back to before a key was removed. So the offline side never trusts the request's authority
on its own. It keeps a pinned copy in a directory of its own (Tailscale's filesystem layout):

- `enroll_pin` creates it from an authority file (`AuthorityExport`, or a request file) only
  when the chain verifies and its head equals, exactly, the head the person read on a node they
  trust (`tka status --json` or `tka log` there).
- `check_against_pin` accepts a request only if its chain contains the pinned head and, after
  it, extends it linearly with AUMs that verify under the pinned authority's own rules (Inform
  into an in-memory copy). A different state ID is a foreign authority; a chain without the
  pinned head is a rollback or a diverging history; both are refused.
- `advance_pin` commits the request's new AUMs to the pin once the signature is made, so the
  next request must extend the new head (a later request cut back before a key removal is then a
  rollback even if it was signed before).

Online, `make_request` packs what to sign (a node key and optional rotation key) with the
active chain from the oldest stored ancestor to the head, and `check_response` verifies the
returned signature against the current authority before it is submitted. That is version 1 of
the files, still read and still written for a single node key; versions 2 and 3, many items of
several kinds in one request (what the CLI uses), are signer/offline_items.py.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifier.aum import AUM
from verifier.authority import Authority
from verifier.errors import (
    DecodeError,
    NotTrustedError,
    SignatureError,
    StorageError,
    TKAError,
    ValidationError,
)
from verifier.hashes import AUMHash
from verifier.nks import NodeKeySignature
from verifier.storage import FilesystemStorage, MemoryStorage
from verifier.textforms import (
    decode_base64_field,
    format_aum_hash,
    format_node_public,
    format_tlpub,
    parse_aum_hash,
    parse_nl_public,
    parse_node_public,
)

REQUEST_KIND = "tka-offline-sign-request"
RESPONSE_KIND = "tka-offline-sign-response"
AUTHORITY_KIND = "tka-offline-authority"
VERSION = 1

_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _load(
    text: str, kinds: Sequence[str], versions: Sequence[int] = (VERSION,)
) -> dict[str, Any]:
    """The JSON object of a file of one of `kinds`, at one of `versions` (version 2 requests
    and responses, with many items, are signer/offline_items.py)."""
    want = " or ".join(kinds)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise DecodeError(f"not a {want} file: nested too deeply") from None
    except ValueError as err:
        raise DecodeError(f"not a {want} file: {err}") from None
    if not isinstance(doc, dict) or doc.get("Kind") not in kinds:
        raise DecodeError(f"not a {want} file")
    version = doc.get("Version")
    if type(version) is not int or version not in versions:
        wanted = " or ".join(str(v) for v in versions)
        raise DecodeError(f"{doc['Kind']} version {version!r} is not supported (want {wanted})")
    return doc


def _chain_field(doc: dict[str, Any], what: str) -> tuple[AUM, ...]:
    chain = doc.get("Authority")
    if not isinstance(chain, list) or not chain:
        raise DecodeError(f"{what}: Authority must list the AUMs of the authority")
    return tuple(
        AUM.from_cbor(decode_base64_field(v, f"{what}: Authority[{i}]"))
        for i, v in enumerate(chain)
    )


def active_chain(authority: Authority) -> tuple[AUM, ...]:
    """The active chain, oldest stored ancestor first, head last."""
    chain: list[AUM] = []
    cursor: AUM | None = authority.head_aum
    oldest = authority.oldest_ancestor.hash()
    while cursor is not None:
        chain.append(cursor)
        if cursor.hash() == oldest or cursor.prev_aum_hash is None:
            break
        cursor = authority.storage.aum(cursor.prev_aum_hash)
    if chain[-1].hash() != oldest:
        raise StorageError("the local authority's chain is broken; run `tka status` to resync")
    return tuple(reversed(chain))


@dataclass(frozen=True)
class SigningRequest:
    node_key: bytes
    rotation_key: bytes  # b"" when none
    chain: tuple[AUM, ...]  # oldest stored ancestor first, head last

    def to_json(self) -> str:
        doc = {
            "Kind": REQUEST_KIND,
            "Version": VERSION,
            "NodeKey": format_node_public(self.node_key),
            "RotationKey": format_tlpub(self.rotation_key) if self.rotation_key else None,
            "Authority": [_b64(a.to_cbor()) for a in self.chain],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SigningRequest:
        doc = _load(text, (REQUEST_KIND,))
        chain = _chain_field(doc, "request")
        rotation = doc.get("RotationKey")
        return cls(
            node_key=parse_node_public(str(doc.get("NodeKey"))),
            rotation_key=parse_nl_public(str(rotation)) if rotation else b"",
            chain=chain,
        )


@dataclass(frozen=True)
class AuthorityExport:
    """What `tka offline export-authority` writes for `tka offline enroll`: the active chain,
    nothing else (the head it ends at is for the person to compare, not to trust)."""

    chain: tuple[AUM, ...]

    def to_json(self) -> str:
        doc = {
            "Kind": AUTHORITY_KIND,
            "Version": VERSION,
            "Authority": [_b64(a.to_cbor()) for a in self.chain],
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AuthorityExport:
        """An authority file, or a request file (it carries the same chain)."""
        doc = _load(text, (AUTHORITY_KIND, REQUEST_KIND), (VERSION, 2, 3))
        if doc["Kind"] == AUTHORITY_KIND and doc["Version"] != VERSION:
            raise DecodeError(f"{AUTHORITY_KIND} version {doc['Version']} is not supported "
                              f"(want {VERSION})")
        return cls(_chain_field(doc, "authority file"))


def make_request(authority: Authority, node_key: bytes, rotation_key: bytes) -> SigningRequest:
    return SigningRequest(node_key, rotation_key, active_chain(authority))


def verify_chain(chain: Sequence[AUM], what: str) -> Authority:
    """Rebuild `chain` from scratch in memory, verifying every AUM. It must be one line of
    descent (each AUM the child of the one before), so its last AUM is the head."""
    for i in range(1, len(chain)):
        if chain[i].parent != chain[i - 1].hash():
            raise ValidationError(
                f"{what} is not one chain: AUM {i} does not follow AUM {i - 1}"
            )
    try:
        authority = Authority.bootstrap(MemoryStorage(), chain[0])
        if len(chain) > 1:
            authority.inform(list(chain[1:]))
    except TKAError as err:
        raise SignatureError(f"{what} does not verify: {err}") from None
    if authority.head != chain[-1].hash():
        raise SignatureError(f"{what} does not end at its last AUM")
    return authority


# -- the pinned authority ------------------------------------------------------------------------


def parse_pinned_head(text: str) -> AUMHash:
    """The head hash the person typed: 52 base32 characters naming exactly one hash (the
    reference's lenient decoding would accept other spellings of the same bytes)."""
    word = text.strip().upper()
    if len(word) != 52 or not set(word) <= _BASE32:
        raise DecodeError(f"--head must be an AUM hash (52 base32 characters), got {text!r}")
    head = AUMHash(parse_aum_hash(word))
    if format_aum_hash(head) != word:
        raise DecodeError(f"--head {text!r} is not the canonical spelling of an AUM hash")
    return head


def enroll_pin(directory: Path, chain: Sequence[AUM], head: AUMHash) -> Authority:
    """Pin the authority `chain` in `directory` (created 0700) if it verifies and ends exactly
    at `head`. Built in a scratch directory beside it and renamed into place, so a refusal or a
    crash leaves no pin at all."""
    authority = verify_chain(chain, "the authority file")
    if authority.head != head:
        raise ValidationError(
            f"the authority file ends at head {authority.head}, not at {head}, the head you "
            "gave; refusing to pin it (read the head on a node you trust)"
        )
    if directory.exists() and not _empty_dir(directory):
        raise StorageError(
            f"{directory} already exists and is not empty; to pin again, move it away first"
        )
    parent = directory.parent
    if not parent.is_dir():
        raise StorageError(f"cannot create {directory}: {parent} is not a directory")
    scratch = parent / f".{directory.name}.enroll-{secrets.token_hex(6)}"
    try:
        os.mkdir(scratch, 0o700)
    except OSError as err:
        raise StorageError(f"cannot create {scratch}: {err.strerror}") from None
    try:
        pinned = Authority.bootstrap(FilesystemStorage(scratch), chain[0])
        if len(chain) > 1:
            pinned.inform(list(chain[1:]))
        if pinned.head != head:
            raise StorageError(f"the pin written to {scratch} does not end at {head}")
        os.chmod(scratch, 0o700)  # whatever the umask did
        os.rename(scratch, directory)  # replaces an empty directory, never a full one
        _fsync_dir(parent)
    except OSError as err:
        raise StorageError(f"cannot create {directory}: {err.strerror}") from None
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return authority


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def pinned_authority(directory: Path) -> Iterator[Authority]:
    """The pinned authority, opened without changing anything, with an exclusive lock on the
    directory itself (flock on its descriptor: no lock file is written into the pin) so two
    runs cannot both advance it."""
    if not directory.is_dir():
        raise StorageError(
            f"no pinned authority at {directory}; run `tka offline enroll --authority "
            f"{directory} --in FILE --head HASH` first"
        )
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise StorageError(f"cannot open {directory}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"{directory} is in use by another tka run") from None
        storage = FilesystemStorage(directory)
        heads = storage.heads()
        if not heads:
            raise StorageError(f"{directory} holds no pinned authority; run `tka offline enroll`")
        if len(heads) != 1:
            # We only ever append to the pinned head: several heads mean someone else wrote.
            raise StorageError(
                f"the pinned authority in {directory} is not one chain; enroll again"
            )
        yield Authority.open(storage)
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class PinCheck:
    """A request checked against the pin: the authority at the request's head (in memory, the
    pin plus `added`) and the AUMs it adds after the pinned head."""

    pinned_head: AUMHash
    authority: Authority
    added: tuple[AUM, ...]


def _copy_to_memory(authority: Authority) -> Authority:
    memory = MemoryStorage()
    for h in authority.storage.all_aums():
        aum = authority.storage.aum(h)
        if aum is not None:
            memory.commit_verified_aums([aum])
    hint = authority.storage.last_active_ancestor()
    if hint is not None:
        memory.set_last_active_ancestor(hint)
    return Authority.open(memory)


def _behind(pinned: Authority, h: bytes) -> int:
    """How many AUMs the stored ancestor `h` is behind the pinned head."""
    count = 0
    cursor: AUM | None = pinned.head_aum
    while cursor is not None and cursor.hash() != h:
        count += 1
        parent = cursor.parent
        cursor = pinned.storage.aum(parent) if parent is not None else None
    return count


def check_against_pin(pinned: Authority, chain: Sequence[AUM]) -> PinCheck:
    """Accept `chain` only as the pinned authority, at or after its pinned head."""
    claimed = verify_chain(chain, "the request's authority")
    theirs, ours = claimed.state.state_id(), pinned.state.state_id()
    head, pin = claimed.head, pinned.head
    if claimed.state_ids() != pinned.state_ids():
        raise ValidationError(
            f"the request is for another authority (state ID {theirs}, head {head}), not the "
            f"pinned one (state ID {ours}, head {pin}); refusing"
        )
    hashes = [bytes(a.hash()) for a in chain]
    if bytes(pin) not in hashes:
        if pinned.storage.aum(head) is not None:
            behind = _behind(pinned, head)
            raise ValidationError(
                f"rollback: the request's authority ends at {head}, {behind} "
                f"AUM{'' if behind == 1 else 's'} before the pinned head {pin}; refusing"
            )
        raise ValidationError(
            f"the request's authority (head {head}) does not contain the pinned head {pin}: "
            "a rollback or another history; refusing (enroll again only from a trusted node)"
        )
    added = tuple(chain[hashes.index(bytes(pin)) + 1:])
    extended = _copy_to_memory(pinned)
    if added:
        try:
            extended.inform(list(added))
        except TKAError as err:
            raise SignatureError(f"the request's new AUMs do not verify on the pin: {err}") \
                from None
    if extended.head != head:
        raise ValidationError(
            f"the request's new AUMs lead to {extended.head}, not to its head {head}; refusing"
        )
    return PinCheck(pin, extended, added)


def plan_header(check: PinCheck, signer_public: bytes) -> list[str]:
    """Refuse unless our key is trusted at the request's head; the plan's first lines (which
    authority, where the request stands against the pin)."""
    authority = check.authority
    if not authority.key_trusted(signer_public):
        raise NotTrustedError(
            f"{format_tlpub(signer_public)} is not trusted at head {authority.head}"
        )
    added = len(check.added)
    return [
        f"authority {authority.state.state_id()} at head {authority.head}",
        f"the request adds {added} AUM{'' if added == 1 else 's'} after the pinned head "
        f"{check.pinned_head}" if added else "the request is at the pinned head",
    ]


def sign_plan(check: PinCheck, request: SigningRequest, signer_public: bytes) -> list[str]:
    """Refuse unless our key is trusted at the request's head; the lines to show before
    signing."""
    lines = [
        *plan_header(check, signer_public),
        f"will sign node key {format_node_public(request.node_key)}",
        f"with lock key {format_tlpub(signer_public)}",
    ]
    if request.rotation_key:
        lines.append(f"rotation key {format_tlpub(request.rotation_key)}")
    return lines


def advance_pin(pinned: Authority, check: PinCheck) -> None:
    """Commit the AUMs the request added (already verified on the pin) to the pinned directory.
    Written oldest first, one atomic file each: a crash leaves the pin at some AUM in between,
    still one verified chain."""
    if not check.added:
        return
    pinned.storage.commit_verified_aums(check.added)
    reopened = Authority.open(pinned.storage)
    if reopened.head != check.authority.head:
        raise StorageError(
            f"the pinned authority is at {reopened.head} after advancing, "
            f"not at {check.authority.head}"
        )


# -- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningResponse:
    node_key_signature: bytes

    def to_json(self) -> str:
        doc = {"Kind": RESPONSE_KIND, "Version": VERSION,
               "NodeKeySignature": _b64(self.node_key_signature)}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SigningResponse:
        doc = _load(text, (RESPONSE_KIND,))
        return cls(decode_base64_field(doc.get("NodeKeySignature"), "response: NodeKeySignature"))


def check_response(authority: Authority, response: SigningResponse) -> NodeKeySignature:
    """The signature must authorize its node key under the current authority."""
    nks = NodeKeySignature.from_cbor(response.node_key_signature)
    authority.node_key_authorized(nks.node_key(), response.node_key_signature)
    return nks
