"""The coordination service over real HTTP/JSON (docs/control.md): `GET` or `POST` with a JSON body
to `/machine/<endpoint>`; errors come back as non-200 with a one-line JSON string body.

The server is built to be bounded (docs/control.md, "Limits"): one asyncio loop accepts and reads
every connection without a thread of its own, under a deadline for the request head and one for
the whole request, with the body capped whatever the headers claim (Content-Length checked,
chunked bodies counted as they arrive); only complete requests reach a fixed pool of worker
threads, each with its own SQLite connection, which also parse the JSON. Every request gets a
response — 4xx for what the client got wrong, 503 when the server is full, 500 for a bug — and
the connection closes after it. Listening beyond loopback needs TLS or an explicit
`insecure_listen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import re
import signal
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from control.service import ControlService, http_status, one_line
from verifier.errors import ControlError, TKAError

PREFIX = "/machine/"
MAX_BODY = 4 * 1024 * 1024

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
_DIGITS = re.compile(rb"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[^\r\n]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(rb"HTTP/1\.[01]")
# accept() failures that say "not now" (out of descriptors or memory), not "never".
_TRANSIENT_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True)
class Limits:
    """The server's bounds; docs/control.md lists the defaults and why."""

    max_body: int = MAX_BODY
    max_header: int = 16 * 1024
    max_headers: int = 64
    header_timeout: float = 10.0  # seconds to receive the request line and headers
    request_timeout: float = 30.0  # seconds to receive the whole request
    write_timeout: float = 30.0  # seconds for the client to take the response
    linger: float = 2.0  # seconds spent discarding unread input before closing
    max_connections: int = 256  # served at once; more are answered 503 at once
    max_refusing: int = 64  # being answered 503 at once; beyond, connections wait in the backlog
    workers: int = 4  # threads running requests, each with its own SQLite connection
    backlog: int = 1024  # the kernel's queue of connections not yet accepted
    drain_timeout: float = 5.0  # seconds shutdown waits for requests in progress

    def __post_init__(self) -> None:
        for field in fields(self):
            if not getattr(self, field.name) > 0:
                raise ControlError(f"Limits.{field.name} must be positive")


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _line(message: str) -> bytes:
    """An error body: one JSON string on one line."""
    return json.dumps(one_line(message)).encode()


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address."""
    host = host.strip("[]")
    if not host:
        return False  # every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_listen(host: str, tls: bool, insecure_listen: bool) -> None:
    if not tls and not insecure_listen and not is_loopback(host):
        raise ControlError(
            f"refusing to listen on {host or 'every interface'} without TLS: node credentials "
            "and disablement secrets would cross the network in clear; give --tls-cert and "
            "--tls-key, or --insecure-listen if this network is yours alone"
        )


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket on the first address `host` resolves to (IPv4 or IPv6)."""
    name = host.strip("[]")
    address: tuple[Any, ...]
    try:
        if not name:
            family, address = socket.AF_INET, ("", port)
        else:
            info = socket.getaddrinfo(
                name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            family, address = info[0], info[4]
        return socket.create_server(address, family=family, backlog=backlog)
    except (OSError, IndexError) as err:
        reason = getattr(err, "strerror", None) or "no address"
        raise ControlError(one_line(f"cannot listen on {host}:{port}: {reason}")) from None


def tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err)
        raise ControlError(one_line(f"cannot load the TLS certificate {cert}: {reason}")) from None
    return context


class ControlHTTPServer:
    """Bound at construction (so `.url` is known); `serve_forever()` runs it in the calling
    thread until `shutdown()` (or SIGTERM/SIGINT when that is the main thread); `start()` runs
    it in a background thread."""

    def __init__(
        self,
        address: tuple[str, int],
        db_path: str | Path,
        *,
        tls: ssl.SSLContext | None = None,
        insecure_listen: bool = False,
        limits: Limits | None = None,
    ) -> None:
        host, port = address
        check_listen(host, tls is not None, insecure_listen)  # before creating anything
        self.db_path = Path(db_path)
        self.limits = limits or Limits()
        self.tls = tls
        ControlService(self.db_path).close()  # create and migrate now: errors show at start
        self._sock = _bind(host, port, self.limits.backlog)
        try:
            bound = self._sock.getsockname()
            # What was bound, not what the name said: a name can resolve differently twice.
            check_listen(str(bound[0]), tls is not None, insecure_listen)
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        self.url = f"{'https' if tls else 'http'}://{shown}:{bound[1]}"
        self._pool = ThreadPoolExecutor(
            max_workers=self.limits.workers, thread_name_prefix="tka-control"
        )
        self._local = threading.local()
        self._services: list[ControlService] = []
        self._services_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        # Touched only by the loop thread; other threads read copies (responses()).
        self.active = 0  # connections being served (not those answered 503)
        self.counters: dict[int, int] = {}  # responses sent, by status
        self._tasks: set[asyncio.Task[None]] = set()

    def responses(self) -> dict[int, int]:
        """A snapshot of the responses sent so far, by status."""
        return dict(self.counters)

    # --- running -------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self._ready.set()
            self._done.set()

    def start(self) -> ControlHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, name="tka-control", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self) -> None:
        """Ask the server to stop (from any thread, without waiting)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)

    def shutdown(self) -> None:
        """Stop accepting, let requests in progress finish (up to `drain_timeout`), close."""
        if self._loop is not None and not self._done.is_set():
            self.stop()
            self._done.wait(self.limits.drain_timeout + 2 * self.limits.linger + 5)
        self._pool.shutdown(wait=True)
        with self._services_lock:
            for service in self._services:
                with contextlib.suppress(Exception):
                    service.close()
            self._services.clear()
        with contextlib.suppress(OSError):
            self._sock.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stop.set)
        # Every accepted connection holds a slot until its socket is closed, so the server's
        # descriptors and memory are bounded; when all are taken, new connections wait in the
        # kernel's backlog instead of being accepted and dropped.
        slots = asyncio.Semaphore(self.limits.max_connections + self.limits.max_refusing)
        accepting = asyncio.create_task(self._accept(slots))
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting
            with contextlib.suppress(OSError):
                self._sock.close()  # new connections are refused now, not left queued
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.limits.drain_timeout)
            for task in set(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, slots: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            slots.release()

        while True:
            await slots.acquire()
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as err:
                slots.release()
                if self._sock.fileno() < 0:
                    return
                # Out of descriptors: the connection stays queued; retry shortly. Anything else
                # (a client that reset before accept) concerns that one connection only.
                await asyncio.sleep(0.05 if err.errno in _TRANSIENT_ACCEPT else 0)
                continue
            except BaseException:
                slots.release()
                raise
            task = loop.create_task(self._connection(conn))
            self._tasks.add(task)
            task.add_done_callback(finished)

    # --- one connection ------------------------------------------------------------------------

    async def _connection(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        limits = self.limits
        reader = asyncio.StreamReader(limit=limits.max_header)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.tls,
                ssl_handshake_timeout=limits.header_timeout if self.tls else None,
                ssl_shutdown_timeout=limits.linger if self.tls else None,
            )
        except Exception:  # a TLS handshake that failed or stalled: no HTTP to answer in
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            if self.active >= limits.max_connections:
                await self._respond(
                    reader, writer, 503, _line("the coordination service is busy; try again")
                )
                return
            self.active += 1
            try:
                status, body = await self._exchange(reader, writer)
                await self._respond(reader, writer, status, body)
            finally:
                self.active -= 1
        except Exception:  # noqa: S110 - a client that vanished; nothing left to answer
            pass
        finally:
            await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close, waiting (up to `linger`) for the socket to be released; then abort, so an
        unread response or an unanswered TLS close cannot hold the slot."""
        writer.close()
        try:
            async with asyncio.timeout(self.limits.linger):
                await writer.wait_closed()
        except (Exception, asyncio.CancelledError):
            writer.transport.abort()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, bytes]:
        """Read one request and run it; returns the response. Never raises."""
        try:
            endpoint, body, credential = await self._read_request(reader, writer)
        except HTTPError as err:
            return err.status, _line(err.message)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._run, endpoint, body, credential)
        except RuntimeError:  # the pool is shut down: the server is stopping
            return 503, _line("the coordination service is stopping; try again")

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, bytes, str | None]:
        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.request_timeout
        try:
            async with asyncio.timeout(min(limits.header_timeout, limits.request_timeout)):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise HTTPError(408, "request header not received in time") from None
        except asyncio.LimitOverrunError:
            raise HTTPError(431, "request header too large") from None
        except asyncio.IncompleteReadError:
            raise HTTPError(400, "connection closed before the request header ended") from None
        except ValueError:  # the limit was reached inside a separator
            raise HTTPError(431, "request header too large") from None
        method, target, version, headers = _parse_head(head, limits.max_headers)
        if method not in (b"GET", b"POST"):
            raise HTTPError(405, "use GET or POST")
        path = target.split(b"?", 1)[0].decode("ascii", "replace")
        if not path.startswith(PREFIX):
            raise HTTPError(404, "not found")
        endpoint = path[len(PREFIX) :]
        if endpoint not in ControlService.ENDPOINTS:
            raise HTTPError(404, f"unknown endpoint {endpoint!r}")
        credential = _credential(headers)
        length = _body_length(headers, limits.max_body)  # None: chunked
        expect = headers.get(b"expect", [])
        if expect and [e.lower() for e in expect] != [b"100-continue"]:
            raise HTTPError(417, "unsupported Expect (only 100-continue)")
        if expect and version == b"HTTP/1.1" and length != 0:
            # The client waits for this before sending its body (RFC 9110 §10.1.1); it is sent
            # only once the head has passed every check, so a refused body is never sent.
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                async with asyncio.timeout(limits.write_timeout):
                    await writer.drain()
            except TimeoutError:
                raise HTTPError(408, "the client does not read") from None
        remaining = max(0.0, deadline - loop.time())
        try:
            async with asyncio.timeout(remaining):
                if length is None:
                    body = await _read_chunked(reader, limits.max_body)
                else:
                    body = await reader.readexactly(length)
        except TimeoutError:
            raise HTTPError(408, "request body not received in time") from None
        except asyncio.IncompleteReadError:
            raise HTTPError(
                400, "connection closed before the body ended (Content-Length too large?)"
            ) from None
        except (asyncio.LimitOverrunError, ValueError):
            raise HTTPError(400, "malformed chunked body") from None
        return endpoint, body, credential

    def _service(self) -> ControlService:
        service: ControlService | None = getattr(self._local, "service", None)
        if service is None:
            service = ControlService(self.db_path)
            self._local.service = service
            with self._services_lock:
                self._services.append(service)
        return service

    def _run(self, endpoint: str, body: bytes, credential: str | None) -> tuple[int, bytes]:
        """In a worker thread: parse the body and run it; (status, body). Never raises."""
        try:
            request = _parse_body(body)
            # The network never enrols as the database's owner: only the embedded transport
            # may ask for that (docs/control.md, "Authentication").
            response = self._service().handle(endpoint, request, credential, owner_enrolment=False)
            return 200, json.dumps(response).encode()
        except HTTPError as err:
            return err.status, _line(err.message)
        except ControlError as err:
            return http_status(err), _line(str(err))
        except TKAError as err:
            return 400, _line(str(err))
        except Exception as err:  # a bug: an answer, never a dropped connection
            return 500, _line(f"internal error ({type(err).__name__})")

    async def _respond(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
    ) -> None:
        self.counters[status] = self.counters.get(status, 0) + 1
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n"
            "Cache-Control: no-store\r\n\r\n"
        ).encode("ascii")
        writer.write(head + body)
        try:
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()
        except (TimeoutError, OSError):
            writer.transport.abort()  # a client that does not read: no flush to wait for
            return
        # Closing a socket with unread input resets the connection, which can destroy the
        # response before the client reads it: stop sending, and discard input for a moment.
        # (TLS has no half-close; its close_notify exchange, bounded by linger, does this.)
        if not writer.can_write_eof():
            return
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(self.limits.linger):
                while await reader.read(65536):
                    pass


def _parse_head(
    head: bytes, max_headers: int
) -> tuple[bytes, bytes, bytes, dict[bytes, list[bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _VERSION.fullmatch(parts[2]) or not _TOKEN.fullmatch(parts[0]):
        raise HTTPError(400, "malformed request line")
    if len(lines) - 1 > max_headers:
        raise HTTPError(431, "too many request headers")
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        # A bare CR, LF or NUL inside a field is how requests get smuggled past proxies.
        if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in b"\r\n\x00"):
            raise HTTPError(400, "malformed request header")
        headers.setdefault(name.lower(), []).append(value.strip(b" \t"))
    return parts[0], parts[1], parts[2], headers


def _credential(headers: dict[bytes, list[bytes]]) -> str | None:
    values = headers.get(b"authorization", [])
    if not values:
        return None
    if len(values) > 1:
        raise HTTPError(400, "more than one Authorization header")
    scheme, _, token = values[0].partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise HTTPError(401, "Authorization: expected 'Bearer <node credential>'")
    return token.strip().decode("ascii", "replace")


def _body_length(headers: dict[bytes, list[bytes]], max_body: int) -> int | None:
    """The body's length from the head, checked against the cap before any of it is read;
    None for a chunked body (counted as it arrives)."""
    encodings = headers.get(b"transfer-encoding", [])
    lengths = headers.get(b"content-length", [])
    if encodings:
        if lengths:
            raise HTTPError(400, "both Transfer-Encoding and Content-Length given")
        if [e.lower() for e in encodings] != [b"chunked"]:
            raise HTTPError(501, "unsupported Transfer-Encoding (only chunked)")
        return None
    if not lengths:
        return 0  # no body (HTTP/1.1 without Content-Length or chunked)
    # Even identical duplicates are refused: two framings are how requests get smuggled.
    if len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0]):
        raise HTTPError(400, "malformed Content-Length")
    length = int(lengths[0])
    if length > max_body:
        raise HTTPError(413, f"request body larger than {max_body} bytes")
    return length


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while True:
        line = (await reader.readuntil(b"\r\n"))[:-2]
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise HTTPError(400, "malformed chunk size")
        size = int(match.group(1), 16)
        if size == 0:
            break
        if len(body) + size > max_body:
            raise HTTPError(413, f"request body larger than {max_body} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HTTPError(400, "malformed chunk")
    for _ in range(64):  # trailer fields, then the empty line
        if await reader.readuntil(b"\r\n") == b"\r\n":
            return bytes(body)
    raise HTTPError(400, "too many trailer fields")


def _parse_body(body: bytes) -> dict[str, Any]:
    """The request object; strict UTF-8 (json.loads would guess UTF-16 or UTF-32 from bytes)."""
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "request body is not UTF-8") from None
    try:
        request = json.loads(text)
    except RecursionError:
        raise HTTPError(400, "request body is nested too deeply") from None
    except ValueError:
        raise HTTPError(400, "request body is not JSON") from None
    if not isinstance(request, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return request


def serve(
    db_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tls: ssl.SSLContext | None = None,
    limits: Limits | None = None,
    insecure_listen: bool = False,
) -> ControlHTTPServer:
    """Start serving in a background thread; returns the server (use `.url`, `.shutdown()`)."""
    return ControlHTTPServer(
        (host, port), db_path, tls=tls, insecure_listen=insecure_listen, limits=limits
    ).start()
