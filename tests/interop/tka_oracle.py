"""Client for the Go interop oracle (`tka-interop`, built from this directory).

One long-lived process answers JSON requests line by line. Byte strings travel as lower-case hex;
`None` means absent (Go nil), `b""` present-but-empty. Every reply with ``ok`` false is a bug in
the request and raises; reference verdicts (decode errors, rejected informs) come back as data.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

INTEROP_DIR = Path(__file__).resolve().parent
BINARY = INTEROP_DIR / "tka-interop"


class OracleError(RuntimeError):
    """The oracle refused a request (malformed request, not a reference verdict)."""


def _stale() -> bool:
    if not BINARY.exists():
        return True
    built = BINARY.stat().st_mtime
    sources = [*INTEROP_DIR.glob("*.go"), INTEROP_DIR / "go.mod", INTEROP_DIR / "go.sum"]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


def build() -> None:
    """Build the oracle binary if it is missing or older than its sources."""
    if not _stale():
        return
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    env["GOTOOLCHAIN"] = "auto"  # go.mod names the toolchain the reference needs
    subprocess.run(
        ["nice", "-n", "10", "go", "build", "-p", "2", "-o", str(BINARY), "."],
        cwd=INTEROP_DIR,
        check=True,
        env=env,
    )


def h(b: bytes | None) -> str | None:
    """Bytes → the oracle's hex form (None stays None)."""
    return None if b is None else b.hex()


def unh(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


class Oracle:
    """A running `tka-interop` process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [str(BINARY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self.version = str(self.call("ping")["version"])

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        req = json.dumps({"op": op, **fields})
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(req + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise OracleError(f"oracle exited while answering {op}")
        resp: dict[str, Any] = json.loads(line)
        if not resp.get("ok"):
            raise OracleError(f"{op}: {resp.get('error')}")
        return resp

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)

    # Convenience wrappers -----------------------------------------------------------------

    def aum_encode(self, aum: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("aum_encode", aum=aum)

    def aum_decode(self, data: bytes) -> dict[str, Any]:
        return self.call("aum_decode", cbor=data.hex())

    def nks_encode(self, nks: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("nks_encode", nks=nks)

    def nks_decode(self, data: bytes) -> dict[str, Any]:
        return self.call("nks_decode", cbor=data.hex())

    def open(
        self, aums: Sequence[bytes], lai: bytes | None = None, directory: str | None = None
    ) -> dict[str, Any]:
        return self.call(
            "authority_open", aums=[a.hex() for a in aums], lai=h(lai), dir=directory or ""
        )

    def bootstrap(self, genesis: bytes, directory: str | None = None) -> dict[str, Any]:
        return self.call("authority_bootstrap", cbor=genesis.hex(), dir=directory or "")

    def inform(self, handle: int, aums: Sequence[bytes]) -> dict[str, Any]:
        return self.call("inform", handle=handle, aums=[a.hex() for a in aums])

    def state(self, handle: int) -> dict[str, Any]:
        return self.call("state", handle=handle)

    def close_authority(self, handle: int) -> None:
        self.call("close", handle=handle)
