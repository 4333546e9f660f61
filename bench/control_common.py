"""Shared by bench/control_load.py and bench/hostile_http.py: the coordination service started
as `python3 -m control serve` on loopback, its admin's commands, raw HTTP exchanges over
asyncio that tell an answered request from a dropped connection, and the machine's description.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nacl.signing import SigningKey  # noqa: E402

from verifier.authority import Authority, new_state_ids  # noqa: E402
from verifier.credential import new_credential  # noqa: E402
from verifier.disablement import disablement_kdf  # noqa: E402
from verifier.key import ed25519_key  # noqa: E402
from verifier.nks import NodeKeySignature, SigKind  # noqa: E402
from verifier.signing import AUMSigner  # noqa: E402
from verifier.state import State  # noqa: E402
from verifier.storage import MemoryStorage  # noqa: E402
from verifier.textforms import format_nlpub, format_node_public, node_key_binary  # noqa: E402


def machine() -> str:
    """CPU model, cores, OS and Python, in one line."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


class Server:
    """`python3 -m control serve` in a child process, on 127.0.0.1 and a free port."""

    def __init__(self, db: Path, *args: str) -> None:
        self.db = db
        self.stderr = ""
        self.max_connections = 256  # what the caller passed with --max-connections
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "control", "serve", "--db", str(db), "--listen",
             "127.0.0.1:0", *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the service did not start: {self.stderr}")
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    def stop(self) -> int:
        """SIGTERM, and the exit status (0 when it drained and stopped cleanly)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def admin(db: Path, *args: str) -> str:
    """`python3 -m control …` as the service's admin; its stdout."""
    proc = subprocess.run([sys.executable, "-m", "control", *args, "--db", str(db)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return proc.stdout.strip()


def dump(db: Path) -> list[str]:
    """Every table, row by row (read through SQLite, so the WAL counts)."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


# --- raw HTTP --------------------------------------------------------------------------------


@dataclass
class Answer:
    """What one connection got: a status (None when dropped) and the time it took."""

    status: int | None
    body: bytes
    seconds: float
    error: str = ""

    @property
    def dropped(self) -> bool:
        return self.status is None

    def one_json_line(self) -> bool:
        """An error answer's body is one JSON string on one line."""
        try:
            return b"\n" not in self.body and isinstance(json.loads(self.body), str)
        except ValueError:
            return False


def request(endpoint: str, message: Any, credential: str | None = None) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    auth = f"Authorization: Bearer {credential}\r\n" if credential else ""
    return (f"POST /machine/{endpoint} HTTP/1.1\r\nHost: control\r\n{auth}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def parse(data: bytes) -> tuple[int, bytes] | None:
    """(status, body) of one complete response (after any 100 Continue), else None."""
    head, sep, body = data.partition(b"\r\n\r\n")
    while sep and head.startswith(b"HTTP/1.1 100 "):
        head, sep, body = body.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        return None
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None or len(body) != length:
        return None
    return int(head.split(b" ")[1]), body


async def exchange(
    host: str,
    port: int,
    data: bytes,
    *,
    then: bytes = b"",
    pause: float = 0.0,
    stream: bytes = b"",
    stream_bytes: int = 0,
    timeout: float = 30.0,
) -> Answer:
    """Send `data` (then, after `pause` seconds, `then`; or `stream` repeated up to
    `stream_bytes`), read to EOF and parse the response. Never raises."""
    started = time.monotonic()
    received = b""
    error = ""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(data)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
                if then:
                    writer.write(then)
                    await writer.drain()
                sent = 0
                while sent < stream_bytes:
                    writer.write(stream)
                    await writer.drain()
                    sent += len(stream)
            except (ConnectionError, OSError):
                pass  # the server answered and stopped reading: the answer is still there
            try:
                while chunk := await reader.read(65536):
                    received += chunk
            except (ConnectionError, OSError) as err:
                error = type(err).__name__
            writer.close()
    except TimeoutError:
        error = "no answer in time"
    except (ConnectionError, OSError) as err:
        error = type(err).__name__
    parsed = parse(received)
    seconds = time.monotonic() - started
    if parsed is None:
        return Answer(None, received, seconds, error or f"no complete response: {received[:60]!r}")
    return Answer(parsed[0], parsed[1], seconds)


async def call(host: str, port: int, endpoint: str, message: Any,
               credential: str | None = None) -> Answer:
    return await exchange(host, port, request(endpoint, message, credential))


# --- a tailnet on the service ----------------------------------------------------------------


@dataclass
class BenchNode:
    name: str
    node_key: bytes
    credential: str
    lock: SigningKey

    @property
    def node_key_text(self) -> str:
        return format_node_public(self.node_key)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def enrol(host: str, port: int, name: str, key: str) -> BenchNode:
    node = BenchNode(name, os.urandom(32), new_credential(), SigningKey.generate())
    answer = await call(host, port, "register", {
        "NodeKey": node.node_key_text, "Name": name,
        "NLKey": format_nlpub(bytes(node.lock.verify_key)), "Auth": {"AuthKey": key},
    }, node.credential)
    if answer.status != 200:
        raise RuntimeError(f"registering {name}: {answer.status} {answer.body[:200]!r}")
    return node


def direct_nks(signer: SigningKey, node_key: bytes) -> bytes:
    unsigned = NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                                key_id=bytes(signer.verify_key), wrapping_pubkey=b"")
    return unsigned.replace(signature=signer.sign(unsigned.sig_hash()).signature).to_cbor()


async def enable_lock(host: str, port: int, admin_node: BenchNode,
                      others: list[BenchNode]) -> str:
    """`tka init` from `admin_node`, signing every node; returns the head."""
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(os.urandom(32)),),
                  keys=(ed25519_key(bytes(admin_node.lock.verify_key)),),
                  state_id1=id1, state_id2=id2)
    lock = admin_node.lock
    signer = AUMSigner.over_digest(bytes(lock.verify_key), lambda d: lock.sign(d).signature)
    _, genesis = Authority.create(MemoryStorage(), state, signer)
    me = {"NodeKey": admin_node.node_key_text}
    begin = await call(host, port, "tka/init/begin", {**me, "GenesisAUM": b64(genesis.to_cbor())},
                       admin_node.credential)
    if begin.status != 200:
        raise RuntimeError(f"init/begin: {begin.status} {begin.body[:200]!r}")
    keys = {n.node_key_text: n.node_key for n in [admin_node, *others]}
    sigs = {str(item["NodeID"]): b64(direct_nks(lock, keys[item["NodePublic"]]))
            for item in json.loads(begin.body)["NeedSignatures"]}
    finish = await call(host, port, "tka/init/finish", {**me, "Signatures": sigs},
                        admin_node.credential)
    if finish.status != 200:
        raise RuntimeError(f"init/finish: {finish.status} {finish.body[:200]!r}")
    return str(genesis.hash())
