"""A tailnet for end-to-end tests: `tka` as a subprocess, one state directory per node, the
embedded coordination service in a real SQLite file, a SoftHSM token from tests/conftest.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Tailnet:
    root: Path
    control: str
    env: dict[str, str]

    def tka(
        self, node: str, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*args, "--state", str(self.root / node), "--control", self.control]
        return subprocess.run(
            [sys.executable, "-m", "signer.cli", *argv],
            cwd=REPO, env=self.env, input=stdin, capture_output=True, text=True, timeout=120,
        )

    def ok(self, node: str, *args: str, stdin: str | None = None) -> str:
        proc = self.tka(node, *args, stdin=stdin)
        assert proc.returncode == 0, f"tka {' '.join(args)} failed: {proc.stderr}"
        return proc.stdout

    def fails(self, node: str, *args: str, code: int = 1, stdin: str | None = None) -> str:
        """A refused command: one line on stderr, the given exit code, nothing changed."""
        before = self.snapshot()
        proc = self.tka(node, *args, stdin=stdin)
        assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
        # "confirm on the device" is the appliance telling the person to act, not an error.
        lines = [line for line in proc.stderr.strip().splitlines()
                 if not line.startswith("confirm on the device")]
        assert len(lines) == 1 and lines[0].startswith("tka: "), proc.stderr
        assert "Traceback" not in proc.stderr
        assert self.snapshot() == before, f"storage changed after a failed `{' '.join(args)}`"
        return lines[0]

    def lock_public(self, node: str) -> str:
        return "tlpub:" + json.loads((self.root / node / "node.json").read_text())["LockPublic"]

    def node_key(self, node: str) -> str:
        doc = self.status(node)
        return str(doc["NodeKey"])

    def status(self, node: str) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.ok(node, "status", "--json"))
        return result

    def snapshot(self) -> dict[str, str]:
        """Every node's files byte for byte, and the service's rows (WAL-independent).

        The database and its -wal/-shm files are never opened here except through SQLite: the
        HTTP stories run the service in this process, and closing any other descriptor of those
        files drops every POSIX lock this process holds on them, so another process could
        checkpoint under the service's readers (seen as SQLITE_IOERR_SHORT_READ)."""
        out: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            if (path.is_file() and path.name != ".lock" and "softhsm" not in path.parts
                    and not path.name.startswith("control.db")):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(self.root))] = digest
        db = self.root / "control.db"
        if db.exists():
            conn = sqlite3.connect(db)
            out["control.db"] = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
            conn.close()
        return out


def create_auth_key(db: Path, *flags: str) -> str:
    """An enrolment key made by the service's admin (`python3 -m control authkey create`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "control", "authkey", "create", "--db", str(db), *flags],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert key.startswith("tskey-auth-") and key not in proc.stderr  # shown once, on stdout
    return key


def secret_file(path: Path, text: str) -> str:
    """`file:PATH` for a secret written 0600, so it never travels on argv."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return f"file:{path}"


def enable(
    net: Tailnet, hsm_uri: str, *, admin_auth: str | None = None, auth: str | None = None
) -> list[str]:
    """Register admin (HSM key) and laptop, and enable lock from admin. Over HTTP pass
    enrolment keys (`file:PATH`): admin's must grant the tailnet-lock capability."""
    gen = subprocess.run(
        [sys.executable, "-m", "signer.cli", "key", "generate", hsm_uri],
        cwd=REPO, env=net.env, capture_output=True, text=True, timeout=60,
    )
    assert gen.returncode == 0, gen.stderr
    admin_flags = [] if admin_auth is None else ["--auth-key", admin_auth]
    flags = [] if auth is None else ["--auth-key", auth]
    net.ok("admin", "node", "register", "--name", "admin", "--lock-key", hsm_uri, *admin_flags)
    net.ok("laptop", "node", "register", "--name", "laptop", *flags)
    admin_key = net.lock_public("admin")
    preview = net.ok("admin", "init", "--gen-disablements", "3", admin_key)
    assert "If this is correct, please re-run this command with the --confirm flag:" in preview
    assert net.status("admin")["Enabled"] is False  # nothing happened without --confirm
    out = net.ok("admin", "init", "--gen-disablements", "3", "--confirm", admin_key)
    secrets = re.findall(r"^\tdisablement-secret:([0-9A-F]{64})$", out, re.M)
    assert len(secrets) == 3
    assert out.rstrip().endswith("Initialization complete.")
    return secrets
