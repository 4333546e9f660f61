"""Shared helpers for the control tests: the service's admin, enrolled nodes, tailnet lock
enabled from a node, node-key signatures, raw HTTP on a socket and a dump of the database."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nacl.signing import SigningKey

from bench.control_common import dump as dump  # re-exported for the tests
from control.service import ControlService
from signer.control_client import ControlClient, Transport
from verifier.aum import AUM
from verifier.authority import Authority, new_state_ids
from verifier.credential import new_credential
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.nks import NodeKeySignature, SigKind
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import MemoryStorage
from verifier.textforms import format_nlpub, format_node_public, node_key_binary


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def auth_key(
    db: Path, *, reusable: bool = False, tailnet_lock: bool = False, expires_in: int = 3600
) -> str:
    """An enrolment key made by the service's admin."""
    service = ControlService(db)
    try:
        text, _ = service.create_auth_key(
            reusable=reusable, expires_in=expires_in, tailnet_lock_admin=tailnet_lock
        )
    finally:
        service.close()
    return text


@dataclass
class Node:
    client: ControlClient
    node_key: bytes
    credential: str
    lock: SigningKey
    node_id: int
    name: str

    @property
    def node_key_text(self) -> str:
        return format_node_public(self.node_key)

    @property
    def nlpub(self) -> str:
        return format_nlpub(bytes(self.lock.verify_key))


def enrol(
    transport: Transport, name: str, key: str | None, *, as_owner: bool = False
) -> Node:
    """Register a new node (fresh node key, credential and lock key) with enrolment key `key`."""
    node_key = os.urandom(32)
    credential = new_credential()
    lock = SigningKey.generate()
    client = ControlClient(transport, format_node_public(node_key), credential)
    reply = client.register(
        name, format_nlpub(bytes(lock.verify_key)), auth_key=key, as_owner=as_owner
    )
    return Node(client, node_key, credential, lock, int(reply["NodeID"]), name)


def direct_nks(signer: SigningKey, node_key: bytes, rotation: bytes = b"") -> bytes:
    """A direct node-key signature of `node_key` by `signer` (docs/format.md §7)."""
    unsigned = NodeKeySignature(
        kind=SigKind.DIRECT,
        pubkey=node_key_binary(node_key),
        key_id=bytes(signer.verify_key),
        wrapping_pubkey=rotation,
    )
    return unsigned.replace(signature=signer.sign(unsigned.sig_hash()).signature).to_cbor()


def aum_signer(key: SigningKey) -> AUMSigner:
    return AUMSigner.over_digest(bytes(key.verify_key), lambda d: key.sign(d).signature)


def genesis_for(admin: Node, *secrets: bytes) -> AUM:
    """A genesis trusting admin's lock key, disabled by any of `secrets`."""
    id1, id2 = new_state_ids()
    state = State(
        disablement_values=tuple(disablement_kdf(s) for s in secrets or [b"disablement secret"]),
        keys=(ed25519_key(bytes(admin.lock.verify_key)),),
        state_id1=id1,
        state_id2=id2,
    )
    _, genesis = Authority.create(MemoryStorage(), state, aum_signer(admin.lock))
    return genesis


def enable_lock(
    admin: Node,
    others: Sequence[Node] = (),
    *,
    secret: bytes = b"disablement secret",
    support: bytes | None = None,
) -> AUM:
    """`tka init` from `admin`: genesis trusting admin's lock key, every node signed, and the
    support secret (if any) among the disablement values."""
    genesis = genesis_for(admin, secret, *([] if support is None else [support]))
    need = admin.client.init_begin(b64(genesis.to_cbor()))["NeedSignatures"]
    by_id = {n.node_id: n for n in [admin, *others]}
    sigs = {
        str(item["NodeID"]): b64(direct_nks(admin.lock, by_id[item["NodeID"]].node_key))
        for item in need
        if item["NodeID"] in by_id
    }
    admin.client.init_finish(sigs, None if support is None else b64(support))
    return genesis


def db_bytes(db: Path) -> bytes:
    """The database file and its -wal and -shm files, byte for byte."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(db) + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


# --- raw HTTP ------------------------------------------------------------------------------


class Dropped(AssertionError):
    """The connection ended without a complete HTTP response."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)

    def assert_error_line(self, status: int) -> str:
        """The response is `status` with one JSON string on one line; returns the string."""
        assert self.status == status, (self.status, self.body)
        assert self.body.count(b"\n") == 0, self.body
        message = json.loads(self.body)
        assert isinstance(message, str) and message, self.body
        return message


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def connect(url: str, timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> socket.socket:
    host, port = address(url)
    sock = socket.create_connection((host, port), timeout=timeout)
    if tls is not None:
        return tls.wrap_socket(sock, server_hostname=host)
    return sock


def read_response(sock: socket.socket, started: float | None = None) -> Response:
    """Read to EOF and parse one HTTP response; Dropped if there is none (reset or EOF)."""
    started = time.monotonic() if started is None else started
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, BrokenPipeError) as err:
        if b"\r\n\r\n" not in data:
            raise Dropped(f"connection reset before a response ({err})") from None
    finally:
        sock.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100 ") and sep:  # an interim 100 Continue
        head, sep, body = body.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise Dropped(f"no HTTP response, got {data[:80]!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    if len(body) != length:
        raise Dropped(f"response body cut short: {len(body)} of {length} bytes")
    return Response(status, headers, body, time.monotonic() - started)


def send_raw(url: str, data: bytes, *, timeout: float = 10.0, shut: bool = False) -> Response:
    """Send `data` as it is, then read the response."""
    started = time.monotonic()
    sock = connect(url, timeout)
    try:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and stop reading before all of it is sent
    return read_response(sock, started)


def request_bytes(
    endpoint: str,
    body: bytes,
    credential: str | None = None,
    *,
    extra: str = "",
    method: str = "POST",
) -> bytes:
    auth = f"Authorization: Bearer {credential}\r\n" if credential else ""
    return (
        f"{method} /machine/{endpoint} HTTP/1.1\r\nHost: control\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def post(
    url: str, endpoint: str, message: Any, credential: str | None = None, *, timeout: float = 10.0
) -> Response:
    """One JSON request (`message` may be bytes, sent as they are)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return send_raw(url, request_bytes(endpoint, body, credential), timeout=timeout)
