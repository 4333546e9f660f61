"""`make demo`: the tailnet-lock story on embedded defaults, with a real SoftHSM2 token and the
signer appliance's firmware stub.

Everything lives in a fresh temporary directory: the token (its own SOFTHSM2_CONF), the
coordination service (a SQLite file), the appliance's flash file, and one state directory per
node. Each step runs the real `tka` command line in a subprocess and prints it with its output.
PINs reach `tka` through the environment (TKA_PKCS11_PIN, TKA_APPLIANCE_PIN), never argv. The
appliance is reached through its pseudo-terminal with pyserial; the demo plays the person at its
screen, printing each screen it shows and pressing y, or n once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from signer.appliance_stub import ApplianceStub, Screen
from signer.node import NodeState
from signer.softhsm import SOFTHSM_MODULE, init_softhsm_token, write_softhsm_conf


class DemoPerson:
    """The person at the appliance: prints every screen and answers with the next planned
    answer (y by default)."""

    def __init__(self, stub: ApplianceStub) -> None:
        assert stub.ui is not None
        self.declines = 0
        stub.ui.auto(self._decide)

    def _decide(self, screen: Screen) -> bool:
        approve = self.declines == 0
        self.declines = max(0, self.declines - 1)
        print("    ┌─ appliance screen " + "─" * 52, flush=True)
        for line in screen.lines:
            print(f"    │ {line}", flush=True)
        print(f"    └─ the person presses {'y (approve)' if approve else 'n (decline)'}",
              flush=True)
        return approve


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        conf, _ = write_softhsm_conf(root / "softhsm")
        self.label = "tka-demo"
        pin = secrets.token_hex(6)
        init_softhsm_token(conf, self.label, secrets.token_hex(8), pin)
        self.env = {
            **os.environ,
            "SOFTHSM2_CONF": str(conf),
            "TKA_PKCS11_MODULE": SOFTHSM_MODULE,
            "TKA_PKCS11_PIN": pin,
            "XDG_DATA_HOME": str(root / "data"),
        }
        self.control = str(root / "control.sqlite")

    def step(self, title: str) -> None:
        print(f"\n=== {title}", flush=True)

    def tka(self, node: str | None, *args: str, stdin: str | None = None, ok: bool = True) -> str:
        argv = list(args)
        if node is not None:
            argv += ["--state", str(self.root / node), "--control", self.control]
        shown = " ".join(shlex.quote(a) for a in args)
        print(f"[{node or '-'}] $ tka {shown}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "signer.cli", *argv],
            env=self.env, input=stdin, capture_output=True, text=True, timeout=300,
        )
        for line in (proc.stdout + proc.stderr).rstrip("\n").splitlines():
            print(f"    {line}")
        if (proc.returncode == 0) != ok:
            raise SystemExit(f"demo: unexpected exit code {proc.returncode} from tka {shown}")
        return proc.stdout

    def enrolment_key(self, name: str) -> str:
        """The service's admin makes a single-use enrolment key; returns `file:PATH` (0600),
        so the key never appears on a command line."""
        print(f"[control] $ python3 -m control authkey create --db {self.control}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "control", "authkey", "create", "--db", self.control],
            env=self.env, capture_output=True, text=True, timeout=60,
        )
        for line in proc.stderr.rstrip("\n").splitlines():
            print(f"    {line}")
        if proc.returncode != 0:
            raise SystemExit("demo: could not create an enrolment key")
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(proc.stdout)
        print(f"    (the key, printed once, is kept in {path}, mode 0600)")
        return f"file:{path}"

    def lock_key(self, node: str) -> str:
        doc = json.loads((self.root / node / "node.json").read_text())
        return "tlpub:" + str(doc["LockPublic"])

    def node_key(self, node: str) -> str:
        return NodeState(self.root / node).node_key_text()

    def export_signatures(self) -> list[tuple[str, bytes]]:
        """Every signed node's (nodekey:…, signature) as the coordination service holds them:
        what an auditor would export from netmaps."""
        with contextlib.closing(sqlite3.connect(self.control)) as conn:
            rows = conn.execute(
                "SELECT node_key, key_signature FROM nodes WHERE key_signature IS NOT NULL "
                "ORDER BY node_id"
            ).fetchall()
        return [("nodekey:" + bytes(key).hex(), bytes(sig)) for key, sig in rows]


def run(root: Path) -> None:
    d = Demo(root)
    hsm = f"pkcs11:token={d.label};object=admin-lock-key"

    d.step("An admin's tailnet-lock key is generated inside the HSM (non-extractable)")
    d.tka(None, "key", "generate", hsm)
    d.tka(None, "key", "list")

    d.step("Three nodes join the tailnet; the admin node signs with the HSM key")
    d.tka("admin", "node", "register", "--name", "admin", "--lock-key", hsm)
    d.tka("laptop", "node", "register", "--name", "laptop")
    d.tka("backup", "node", "register", "--name", "backup")

    d.step("Enable tailnet lock: trusted keys and three disablement secrets")
    trusted = [d.lock_key("admin"), d.lock_key("laptop"), d.lock_key("backup")]
    d.tka("admin", "init", "--gen-disablements", "3", *trusted)
    out = d.tka("admin", "init", "--gen-disablements", "3", "--confirm", *trusted)
    disablement = re.findall(r"disablement-secret:[0-9A-F]{64}", out)
    d.tka("laptop", "status")

    d.step("A new node is locked out until a trusted key signs it")
    d.tka("phone", "node", "register", "--name", "phone")
    d.tka("phone", "status")
    d.tka("phone", "sign", d.node_key("phone"), ok=False)
    d.tka("admin", "sign", "--yes", d.node_key("phone"), d.lock_key("phone"))
    d.tka("phone", "status")

    d.step("A pre-approved auth key: the server enrols with no further signing")
    wrapped = d.tka("admin", "sign", "--yes", d.enrolment_key("server-enrolment.key")).strip()
    d.tka("server", "node", "register", "--name", "server", "--auth-key", "-", stdin=wrapped)
    d.tka("admin", "status")

    d.step("The backup key is compromised: revoke it with two cosigners")
    out = d.tka("admin", "revoke-keys", d.lock_key("backup"))
    blob = out.split("--cosign ")[1].split()[0]
    out = d.tka("laptop", "revoke-keys", "--cosign", "--yes", blob)
    cosigned = out.split("--finish ")[1].split()[0]
    d.tka("laptop", "revoke-keys", "--finish", "--yes", cosigned)
    d.tka("phone", "log", "--limit", "2")

    d.step("The signer appliance: a lock key inside a device that shows what it signs")
    stub = ApplianceStub(root / "appliance").start()
    try:
        person = DemoPerson(stub)
        d.env["TKA_APPLIANCE_DEVICE"] = stub.serial
        d.env["TKA_APPLIANCE_PIN"] = secrets.token_hex(6)
        d.tka(None, "appliance", "setup")
        d.tka(None, "appliance", "generate", "ops")
        device_key = stub.key_uri("ops")
        d.tka("ops", "node", "register", "--name", "ops", "--lock-key", device_key)
        d.tka("admin", "add", "--yes", d.lock_key("ops"))
        d.tka("admin", "sign", "--yes", d.node_key("ops"), d.lock_key("ops"))
        d.tka("ops", "appliance", "enroll")  # in the authority the ops node syncs
        d.tka("printer", "node", "register", "--name", "printer")
        d.tka("ops", "sign", "--yes", d.node_key("printer"), d.lock_key("printer"))
        d.tka("camera", "node", "register", "--name", "camera")
        person.declines = 1
        d.tka("ops", "sign", "--yes", d.node_key("camera"), ok=False)
        d.tka("camera", "status")
        d.tka(None, "appliance", "log")
    finally:
        stub.stop()

    d.step("An auditor checks every node's signature against a copy of the phone's authority")
    audit_dir = root / "audit"
    d.tka("phone", "log", "--limit", "1")  # the phone is up to date before it is copied
    shutil.copytree(root / "phone" / "tka", audit_dir / "tka")
    peers = d.export_signatures()
    # A forged entry: the phone's signature presented for the laptop's node key.
    phone_sig = next(sig for key, sig in peers if key == d.node_key("phone"))
    peers.append((d.node_key("laptop"), phone_sig))
    (audit_dir / "peers.txt").write_text(
        "".join(f"{key} {base64.b64encode(sig).decode()}\n" for key, sig in peers)
    )
    d.tka(None, "audit", "--authority", str(audit_dir / "tka"),
          "--peers", str(audit_dir / "peers.txt"), ok=False)

    d.step("A tailnet on Tailscale's service: the HSM key works from a copy of a node's "
           "authority directory, with no node and no service")
    workstation = root / "hsm-workstation" / "authority"
    shutil.copytree(root / "phone" / "tka", workstation)
    d.tka(None, "status", "--authority", str(workstation))
    # A pre-approved auth key whose credential the HSM key signs itself: nothing to submit.
    wrapped = d.tka(None, "sign", "--yes", "--mode", "direct", "--authority", str(workstation),
                    "--key", hsm, d.enrolment_key("kiosk-enrolment.key")).strip()
    d.tka("kiosk", "node", "register", "--name", "kiosk", "--auth-key", "-", stdin=wrapped)
    d.tka("kiosk", "status")
    # A key change signed on the HSM, printed for any node to transmit.
    d.tka(None, "add", "--yes", "--authority", str(workstation), "--key", hsm,
          d.lock_key("phone"))

    d.step("Disable tailnet lock: a wrong secret changes nothing, the right one disables it")
    d.tka("laptop", "disable", "--yes", stdin="disablement-secret:" + "00" * 32 + "\n", ok=False)
    d.tka("laptop", "disable", "--yes", stdin=disablement[0] + "\n")
    d.tka("phone", "status")
    print("\ndemo complete: every step above ran the real tka CLI against SoftHSM, the appliance "
          "stub on its pseudo-terminal, and SQLite.")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tka-demo-") as tmp:
        run(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
