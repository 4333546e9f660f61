"""The coordination service over real HTTP/JSON (spec §13.1): `GET` or `POST` with a JSON body
to `/machine/<endpoint>`; errors come back as non-200 with a one-line body."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from control.service import ControlService
from verifier.errors import TKAError

MAX_BODY = 10 * 1024 * 1024
PREFIX = "/machine/"


class ControlHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], db_path: str | Path) -> None:
        self.service = ControlService(db_path)
        self.lock = threading.Lock()  # one SQLite connection: requests take turns
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: ControlHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # requests may carry secrets (disablement); never log bodies or lines

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        if not self.path.startswith(PREFIX):
            self._reply(404, b'"not found"')
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, b'"request too large"')
            return
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply(400, b'"request body is not JSON"')
            return
        try:
            with self.server.lock:
                response = self.server.service.handle(self.path[len(PREFIX) :], request)
        except TKAError as err:
            self._reply(400, json.dumps(str(err)).encode())
            return
        self._reply(200, json.dumps(response).encode())

    do_GET = _serve
    do_POST = _serve


def serve(db_path: str | Path, host: str = "127.0.0.1", port: int = 0) -> ControlHTTPServer:
    """Start serving in a background thread; returns the server (use `.url`, `.shutdown()`)."""
    server = ControlHTTPServer((host, port), db_path)
    threading.Thread(target=server.serve_forever, name="tka-control", daemon=True).start()
    return server
