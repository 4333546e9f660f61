"""The HTTP server's bounds on real loopback sockets (small Limits keep this quick): framing and
size limits, stalled clients, too many connections, where it may listen, TLS, shutdown.
Every refused request is answered (a status and one JSON string line), never dropped, and
leaves the database unchanged."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from control_harness import (
    Dropped,
    Node,
    Response,
    auth_key,
    connect,
    dump,
    enrol,
    post,
    read_response,
    request_bytes,
    send_raw,
)

from control.http import ControlHTTPServer, Limits, serve, tls_context
from signer.control_client import ControlUnreachable, HttpTransport
from verifier.errors import ControlError

LIMITS = Limits(
    max_body=4096,
    max_header=2048,
    max_headers=16,
    header_timeout=0.5,
    request_timeout=1.0,
    write_timeout=2.0,
    linger=0.3,
    max_connections=8,
    max_refusing=16,
    workers=2,
    drain_timeout=2.0,
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "control.db"


@pytest.fixture
def server(db: Path) -> Iterator[ControlHTTPServer]:
    srv = serve(db, limits=LIMITS)
    yield srv
    srv.shutdown()


@pytest.fixture
def node(db: Path, server: ControlHTTPServer) -> Node:
    return enrol(HttpTransport(server.url), "n", auth_key(db))


def _netmap(node: Node) -> bytes:
    return request_bytes("netmap", b'{"NodeKey": "%s"}' % node.node_key_text.encode(),
                         node.credential)


def _head(extra: str, endpoint: str = "netmap", method: str = "POST") -> bytes:
    return f"{method} /machine/{endpoint} HTTP/1.1\r\nHost: c\r\n{extra}\r\n".encode()


def test_framing_and_size_limits_are_answered_without_reading_the_body(
    db: Path, server: ControlHTTPServer, node: Node
) -> None:
    before = dump(db)
    cases: dict[str, tuple[bytes, int]] = {
        "Content-Length over the cap": (_head("Content-Length: 4097\r\n"), 413),
        "Content-Length huge": (_head("Content-Length: 999999999999999999\r\n"), 413),
        "Content-Length too long to be a number": (_head(f"Content-Length: {'9' * 30}\r\n"), 400),
        "negative Content-Length": (_head("Content-Length: -1\r\n") + b"{}", 400),
        "signed Content-Length": (_head("Content-Length: +2\r\n") + b"{}", 400),
        "list Content-Length": (_head("Content-Length: 2, 2\r\n") + b"{}", 400),
        "duplicate Content-Length": (_head("Content-Length: 2\r\nContent-Length: 2\r\n"), 400),
        "conflicting Content-Length": (_head("Content-Length: 2\r\nContent-Length: 3\r\n"), 400),
        "chunked and Content-Length": (
            _head("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n"), 400),
        "unknown Transfer-Encoding": (_head("Transfer-Encoding: gzip\r\n"), 501),
        "one chunk over the cap": (_head("Transfer-Encoding: chunked\r\n") + b"1001\r\n", 413),
        "chunk size not hex": (_head("Transfer-Encoding: chunked\r\n") + b"zz\r\n", 400),
        "chunk without its CRLF": (
            _head("Transfer-Encoding: chunked\r\n") + b"2\r\n{}XX0\r\n\r\n", 400),
        "unknown expectation": (_head("Expect: teapot\r\nContent-Length: 2\r\n") + b"{}", 417),
        "header too large": (_head(f"X-Pad: {'a' * 4096}\r\n"), 431),
        "too many headers": (_head("X: y\r\n" * 20), 431),
        "NUL in a header": (_head("X: a\x00b\r\n"), 400),
        "header without a colon": (_head("Nonsense\r\n"), 400),
        "folded header": (_head("X: a\r\n  b\r\n"), 400),
        "malformed request line": (b"POST /machine/netmap\r\n\r\n", 400),
        "HTTP/2 request line": (b"POST /machine/netmap HTTP/2.0\r\n\r\n", 400),
        "binary": (bytes(range(256)) + b"\r\n\r\n", 400),
        "method": (_head("", method="DELETE"), 405),
        "path": (_head("", endpoint="../etc/passwd"), 404),
        "unknown endpoint": (_head("", endpoint="tka/everything"), 404),
    }
    for what, (data, status) in cases.items():
        # The socket stays open for writing: an answer that waited for a body would time out.
        response = send_raw(server.url, data)
        assert response.status == status, (what, response.body)
        response.assert_error_line(status)
        assert response.elapsed < LIMITS.header_timeout, (what, response.elapsed)
    # A body shorter than its Content-Length, then the client stops sending.
    response = send_raw(server.url, _head("Content-Length: 100\r\n") + b"{}", shut=True)
    assert "closed before the body ended" in response.assert_error_line(400)
    assert dump(db) == before


def test_a_chunked_body_over_the_cap_is_cut_off(
    db: Path, server: ControlHTTPServer, node: Node
) -> None:
    """Small chunks past the cap, and the body never ends: the answer comes at the cap, not
    when the body would have ended (or the deadline)."""
    before = dump(db)
    sock = connect(server.url)
    started = time.monotonic()
    sock.sendall(_head("Transfer-Encoding: chunked\r\n"))
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(8):  # 8 KiB, twice the cap, and no last chunk
            sock.sendall(chunk)
    response = read_response(sock, started)
    assert "larger than 4096 bytes" in response.assert_error_line(413)
    assert response.elapsed < LIMITS.header_timeout
    assert dump(db) == before


def test_expect_100_continue(db: Path, server: ControlHTTPServer, node: Node) -> None:
    body = b'{"NodeKey": "%s"}' % node.node_key_text.encode()
    sock = connect(server.url, timeout=5)
    sock.sendall(
        f"POST /machine/netmap HTTP/1.1\r\nAuthorization: Bearer {node.credential}\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    interim = sock.recv(100)  # the client waits for this before sending its body
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(body)
    response = read_response(sock)
    assert response.status == 200 and response.json()["Self"]["Name"] == "n"
    # A body over the cap is refused at once, without inviting it.
    response = send_raw(server.url, _head("Expect: 100-continue\r\nContent-Length: 5000\r\n"))
    assert response.status == 413 and response.elapsed < LIMITS.header_timeout


def _in_thread(pool: ThreadPoolExecutor, data: bytes, url: str) -> Callable[[], Response]:
    future = pool.submit(send_raw, url, data)
    return future.result


def test_stalled_clients_get_408_and_do_not_block_others(
    db: Path, server: ControlHTTPServer, node: Node
) -> None:
    before = dump(db)
    stalls = {
        "nothing": b"",
        "half a request line": b"POST /machine/net",
        "half the headers": b"POST /machine/netmap HTTP/1.1\r\nContent-Len",
        "bare LF line ends": b"POST /machine/netmap HTTP/1.1\n\n",
        "half the body": _head("Content-Length: 100\r\n") + b'{"NodeKey": ',
        "half a chunk": _head("Transfer-Encoding: chunked\r\n") + b"10\r\n{",
    }
    with ThreadPoolExecutor(len(stalls)) as pool:
        started = time.monotonic()
        waits = {what: _in_thread(pool, data, server.url) for what, data in stalls.items()}
        time.sleep(0.1)
        for _ in range(5):  # meanwhile every other client is served at once
            response = send_raw(server.url, _netmap(node))
            assert response.status == 200 and response.elapsed < LIMITS.header_timeout
        for what, result in waits.items():
            response = result()
            assert "not received in time" in response.assert_error_line(408), what
            waited = response.elapsed
            if what.startswith("half the body") or what.startswith("half a chunk"):
                assert LIMITS.request_timeout - 0.1 <= waited < LIMITS.request_timeout + 1, what
            else:
                assert LIMITS.header_timeout - 0.1 <= waited < LIMITS.header_timeout + 1, what
    assert time.monotonic() - started < 3
    assert dump(db) == before


def _wait_for(predicate: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_connections_over_the_limit_get_503_not_a_drop(
    db: Path, server: ControlHTTPServer, node: Node
) -> None:
    idle = [connect(server.url) for _ in range(LIMITS.max_connections)]  # held open, silent
    _wait_for(lambda: server.active == LIMITS.max_connections)
    with ThreadPoolExecutor(12) as pool:
        busy = list(pool.map(lambda _: send_raw(server.url, _netmap(node)),
                             range(12)))
    for response in busy:
        assert "busy" in response.assert_error_line(503)
    for sock in idle:
        assert read_response(sock).status == 408
    assert send_raw(server.url, _netmap(node)).status == 200  # room again


def test_connections_beyond_every_slot_wait_in_the_backlog(db: Path) -> None:
    limits = Limits(max_connections=2, max_refusing=1, header_timeout=0.5, linger=0.2)
    srv = serve(db, limits=limits)
    try:
        node = enrol(HttpTransport(srv.url), "n", auth_key(db))
        idle = [connect(srv.url) for _ in range(3)]  # every slot: two served, one refused
        _wait_for(lambda: srv.active == 2)
        with ThreadPoolExecutor(10) as pool:
            late = list(pool.map(lambda _: send_raw(srv.url, _netmap(node)),
                                 range(10)))
        # Each was accepted once a slot freed up and answered (busy or served): none dropped.
        assert {r.status for r in late} <= {200, 503}
        assert all(r.body for r in late)
        for sock in idle:
            read_response(sock)
    finally:
        srv.shutdown()


def test_listening_beyond_loopback_needs_tls_or_insecure_listen(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "", "::"):
        db = tmp_path / f"refused{host.replace(':', '_')}.db"
        with pytest.raises(ControlError, match="without TLS"):
            ControlHTTPServer((host, 0), db)
        assert not db.exists()  # refused before anything was created
    db = tmp_path / "open.db"
    srv = ControlHTTPServer(("0.0.0.0", 0), db, insecure_listen=True, limits=LIMITS).start()
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        response = send_raw(f"http://127.0.0.1:{port}", _head("", endpoint="nope"))
        assert response.status == 404
    finally:
        srv.shutdown()
    srv = serve(db, "localhost", limits=LIMITS)
    try:
        host = srv.url.split("//")[1].rsplit(":", 1)[0].strip("[]")
        assert ipaddress.ip_address(host).is_loopback
    finally:
        srv.shutdown()


def test_ipv6_loopback(db: Path) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = serve(db, "::1", limits=LIMITS)
    try:
        assert srv.url.startswith("http://[::1]:")
        node = enrol(HttpTransport(srv.url), "six", auth_key(db))
        assert node.client.netmap()["Self"]["Name"] == "six"
    finally:
        srv.shutdown()


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (with the `cryptography` package)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_a_pinned_certificate(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.delenv("TKA_CONTROL_CA", raising=False)
    cert, key = _self_signed(tmp_path, "control")
    other_ca, _ = _self_signed(tmp_path, "other")
    srv = serve(db, tls=tls_context(cert, key), limits=LIMITS)
    try:
        assert srv.url.startswith("https://127.0.0.1:")
        node = enrol(HttpTransport(srv.url, ca_file=cert), "tls", auth_key(db))
        assert node.client.netmap()["Self"]["Name"] == "tls"
        spare = auth_key(db)
        before = dump(db)
        for ca in (None, other_ca):  # the system's store, or another pin: no credential sent
            with pytest.raises(ControlUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                enrol(HttpTransport(srv.url, ca_file=ca), "mitm", spare)
        assert dump(db) == before
        # A silent TLS client holds nobody up; plain HTTP on the TLS port is never served.
        silent = connect(srv.url)
        with pytest.raises(Dropped):
            send_raw(srv.url.replace("https", "http"), _netmap(node))
        context = ssl.create_default_context(cafile=str(cert))
        response = send_tls(srv.url, _netmap(node), context)
        assert response.status == 200 and response.elapsed < LIMITS.header_timeout
        silent.close()
    finally:
        srv.shutdown()
    with pytest.raises(ControlError, match="cannot load the TLS certificate"):
        tls_context(tmp_path / "missing.pem", key)
    # With TLS it may listen beyond loopback without --insecure-listen.
    ControlHTTPServer(("0.0.0.0", 0), db, tls=tls_context(cert, key), limits=LIMITS).shutdown()


def send_tls(url: str, data: bytes, context: ssl.SSLContext) -> Response:
    sock = connect(url, tls=context)
    started = time.monotonic()
    sock.sendall(data)
    return read_response(sock, started)


def test_shutdown_lets_a_request_in_progress_finish(db: Path) -> None:
    # The half-sent request must outlive the steps below on a loaded machine, so its read
    # deadline is generous here.
    srv = serve(db, limits=dataclasses.replace(LIMITS, header_timeout=10.0, request_timeout=20.0))
    node = enrol(HttpTransport(srv.url), "n", auth_key(db))
    data = _netmap(node)
    # The enrolment's connections linger briefly; until they are gone, `active == 1` could be
    # one of them while ours still waits in the backlog, which closing the listener resets.
    _wait_for(lambda: srv.active == 0)
    sock = connect(srv.url)
    sock.sendall(data[:-5])
    _wait_for(lambda: srv.active == 1)
    stopping = threading.Thread(target=srv.shutdown)
    stopping.start()
    time.sleep(0.2)
    with pytest.raises(OSError):  # no new connections once stopping
        send_raw(srv.url, data, timeout=1)
    sock.sendall(data[-5:])
    assert read_response(sock).status == 200
    stopping.join(10)
    assert not stopping.is_alive()
    with pytest.raises(ConnectionRefusedError):
        post(srv.url, "netmap", {}, timeout=1)
