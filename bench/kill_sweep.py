"""Kill -9 sweeps: `tka` killed at a random moment of init, node register, add, sign and sync.

    python bench/kill_sweep.py [--rounds 100] [--ops register,init,add,sign,sync] [--seed N]

Every round starts one `tka` command as a subprocess against the embedded coordination service
(a real SQLite file) and sends it SIGKILL after a random delay, drawn uniformly between 50 % and
130 % of how long that command takes when left alone (the median of three runs, measured first;
before half-way the process is mostly still starting Python), a window that narrows as the
sweep learns where the command writes (`Window`). Then it checks what a person would find:

- corrupt store: the service's database fails `PRAGMA integrity_check` or cannot be opened, or
  a node's `tka status` fails for any reason but an unfinished registration;
- lost secret (init): lock is enabled but the `--secrets-out` file is missing, or holds a secret
  that does not disable the authority;
- stuck node: the command, run again to completion, fails (a killed registration must finish
  when repeated; add, sign and init must still be possible), or the node's authority head
  differs from the service's after a sync.

Prints one line per command and a total, and exits 1 if any count is not zero. The test
tests/e2e/test_kill_sweep.py runs a few rounds of each; the figures in docs/design.md come from
this script.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from control.db import connect  # noqa: E402
from verifier.authority import Authority  # noqa: E402
from verifier.errors import DecodeError  # noqa: E402
from verifier.storage import SQLiteStorage  # noqa: E402
from verifier.textforms import format_tlpub, parse_disablement_secret  # noqa: E402

OPS = ("register", "init", "add", "sign", "sync")
# The kill window, as fractions of an uninterrupted run: Python's start-up takes most of the
# first half, and a kill after the exit tests nothing.
LOW, HIGH = 0.5, 1.3


@dataclass
class Tally:
    rounds: int = 0
    killed: int = 0  # SIGKILL arrived before the command exited
    traces: int = 0  # killed after it had changed a file or the database
    corrupt: int = 0
    lost_secrets: int = 0
    stuck: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{kind}: {what}")


class Net:
    """One tailnet: state directories under `root` and the embedded service's database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "control.db"
        self.env = {**os.environ, "XDG_DATA_HOME": str(root / "xdg")}
        self.env.pop("TKA_APPLIANCE_DEVICE", None)
        self.before = ""
        self.left_trace = False

    def argv(self, node: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "signer.cli", *args, "--state", str(self.root / node),
                "--control", str(self.db)]

    def run(self, node: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(node, *args), cwd=REPO, env=self.env, text=True,
                              capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    def ok(self, node: str, *args: str) -> str:
        proc = self.run(node, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"tka {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def fingerprint(self) -> str:
        """Every file under root byte for byte and the database's rows."""
        digest = hashlib.sha256()
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.name != ".lock" and not path.name.startswith("control.db"):
                digest.update(str(path).encode() + b"\0" + path.read_bytes())
        if self.db.exists():
            with contextlib.closing(sqlite3.connect(self.db)) as conn:
                for line in conn.iterdump():
                    digest.update(line.encode())
        return digest.hexdigest()

    def killed_run(self, node: str, args: tuple[str, ...], delay: float) -> bool:
        """Run and SIGKILL after `delay` seconds; True if the kill came before the exit."""
        self.before = self.fingerprint()
        proc = subprocess.Popen(self.argv(node, *args), cwd=REPO, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(delay)
            return False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.left_trace = self.fingerprint() != self.before
            return True

    def status(self, node: str) -> subprocess.CompletedProcess[str]:
        return self.run(node, "status", "--json")

    def service_ok(self) -> str | None:
        """None if the database is sound, else what is wrong."""
        if not self.db.exists():
            return None
        try:
            with sqlite3.connect(self.db) as raw:
                verdict = raw.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                return f"integrity_check: {verdict}"
            conn = connect(self.db, create=False)
            conn.close()
        except Exception as err:  # any failure to open is what this counts
            return f"cannot open: {err}"
        return None

    def service_authority(self) -> Authority | None:
        conn = connect(self.db, create=False)
        try:
            enabled = conn.execute("SELECT enabled FROM tka WHERE id = 1").fetchone()[0]
            return Authority.open(SQLiteStorage(conn)) if enabled else None
        finally:
            conn.close()

    def service_head(self) -> str | None:
        authority = self.service_authority()
        return None if authority is None else str(authority.head)


def new_tlpub() -> str:
    return format_tlpub(bytes(nacl.signing.SigningKey.generate().verify_key))


def _check_node(net: Net, node: str, tally: Tally, label: str) -> bool:
    """The node's status works and its head is the service's; False (counted) otherwise."""
    problem = net.service_ok()
    if problem is not None:
        tally.fail("corrupt", f"{label}: service database {problem}")
        return False
    proc = net.status(node)
    if proc.returncode != 0:
        tally.fail("corrupt", f"{label}: status failed: {proc.stderr.strip()}")
        return False
    doc = json.loads(proc.stdout)
    head = net.service_head()
    if head is not None and doc.get("Head") not in (None, head):
        tally.fail("stuck", f"{label}: node head {doc.get('Head')} != service head {head}")
        return False
    return True


# --- one round of each command -------------------------------------------------------------------


def round_register(net: Net, i: int, delay: float, tally: Tally) -> bool:
    node = f"r{i}"
    args = ("node", "register", "--name", node)
    killed = net.killed_run(node, args, delay)
    problem = net.service_ok()
    if problem is not None:
        tally.fail("corrupt", f"register {i}: service database {problem}")
        return killed
    again = net.run(node, *args)
    finished = again.returncode == 0 or "already holds a registered node" in again.stderr
    if not finished:
        tally.fail("stuck", f"register {i}: re-running it failed: {again.stderr.strip()}")
        return killed
    _check_node(net, node, tally, f"register {i}")
    conn = connect(net.db, create=False)
    try:
        count = conn.execute("SELECT COUNT(*) FROM nodes WHERE name = ?", (node,)).fetchone()[0]
    finally:
        conn.close()
    if count != 1:
        tally.fail("stuck", f"register {i}: the service holds {count} nodes named {node}")
    return killed


def round_init(net: Net, i: int, delay: float, tally: Tally) -> bool:
    # A fresh tailnet per round: one admin node, lock not yet enabled.
    sub = Net(net.root / f"init{i}")
    sub.root.mkdir()
    sub.ok("admin", "node", "register", "--name", "admin")
    key = "tlpub:" + json.loads((sub.root / "admin" / "node.json").read_text())["LockPublic"]
    out = sub.root / "secrets.txt"
    args = ("init", "--confirm", "--gen-disablements", "2", "--secrets-out", str(out), key)
    killed = sub.killed_run("admin", args, delay)
    net.left_trace = sub.left_trace
    problem = sub.service_ok()
    if problem is not None:
        tally.fail("corrupt", f"init {i}: service database {problem}")
        return killed
    authority = sub.service_authority()
    if authority is not None:
        try:
            lines = out.read_text().split()
            secrets = [parse_disablement_secret(line) for line in lines]
        except (OSError, DecodeError) as err:
            tally.fail("lost_secrets", f"init {i}: lock enabled, secrets file unusable: {err}")
            return killed
        if len(secrets) != 2 or not all(authority.valid_disablement(s) for s in secrets):
            tally.fail("lost_secrets", f"init {i}: lock enabled, a secret does not disable it")
    else:
        again = sub.run("admin", *args[:-2], str(sub.root / "secrets2.txt"), key)
        if again.returncode != 0:
            tally.fail("stuck", f"init {i}: init again failed: {again.stderr.strip()}")
            return killed
    _check_node(sub, "admin", tally, f"init {i}")
    return killed


def round_add(net: Net, i: int, delay: float, tally: Tally) -> bool:
    key = new_tlpub()
    killed = net.killed_run("admin", ("add", "--yes", key), delay)
    if not _check_node(net, "admin", tally, f"add {i}"):
        return killed
    authority = net.service_authority()
    public = bytes.fromhex(key[len("tlpub:") :])
    if authority is None or not authority.key_trusted(public):
        again = net.run("admin", "add", "--yes", key)
        if again.returncode != 0:
            tally.fail("stuck", f"add {i}: add again failed: {again.stderr.strip()}")
            return killed
    authority = net.service_authority()
    if authority is None or not authority.key_trusted(public):
        tally.fail("stuck", f"add {i}: the key is not trusted after adding it again")
    return killed


def round_sign(net: Net, i: int, delay: float, tally: Tally) -> bool:
    node = f"s{i}"
    net.ok(node, "node", "register", "--name", node)
    node_key = json.loads(net.ok(node, "status", "--json"))["NodeKey"]
    killed = net.killed_run("admin", ("sign", "--yes", node_key), delay)
    if not _check_node(net, "admin", tally, f"sign {i}"):
        return killed
    if not json.loads(net.ok(node, "status", "--json"))["NodeKeySigned"]:
        again = net.run("admin", "sign", "--yes", node_key)
        if again.returncode != 0:
            tally.fail("stuck", f"sign {i}: sign again failed: {again.stderr.strip()}")
            return killed
    if not json.loads(net.ok(node, "status", "--json"))["NodeKeySigned"]:
        tally.fail("stuck", f"sign {i}: the node is not signed after signing it again")
    return killed


def round_sync(net: Net, i: int, delay: float, tally: Tally) -> bool:
    net.ok("admin", "add", "--yes", new_tlpub())  # something for the laptop to sync
    killed = net.killed_run("laptop", ("status",), delay)
    _check_node(net, "laptop", tally, f"sync {i}")
    return killed


ROUNDS: dict[str, Callable[[Net, int, float, Tally], bool]] = {
    "register": round_register,
    "init": round_init,
    "add": round_add,
    "sign": round_sign,
    "sync": round_sync,
}


def _calibration(net: Net, op: str) -> float:
    """How long the command takes when nobody kills it: the median of three runs."""
    times = []
    for n in range(3):
        start = time.monotonic()
        if op == "register":
            net.ok(f"calib{n}", "node", "register", "--name", f"calib{n}")
        elif op == "init":
            sub = Net(net.root / f"init-calib{n}")
            sub.root.mkdir()
            sub.ok("admin", "node", "register", "--name", "admin")
            key = "tlpub:" + json.loads((sub.root / "admin" / "node.json").read_text())[
                "LockPublic"
            ]
            start = time.monotonic()
            sub.ok("admin", "init", "--confirm", "--gen-disablements", "2", "--secrets-out",
                   str(sub.root / "s.txt"), key)
        elif op == "add":
            net.ok("admin", "add", "--yes", new_tlpub())
        elif op == "sign":
            net.ok(f"calib-s{n}", "node", "register", "--name", f"calib-s{n}")
            node_key = json.loads(net.ok(f"calib-s{n}", "status", "--json"))["NodeKey"]
            start = time.monotonic()
            net.ok("admin", "sign", "--yes", node_key)
        else:
            net.ok("admin", "add", "--yes", new_tlpub())
            start = time.monotonic()
            net.ok("laptop", "status")
        times.append(time.monotonic() - start)
    return sorted(times)[1]


@dataclass
class Window:
    """Where kills are drawn, narrowed as the sweep learns (run times vary with the machine's
    load): a kill that left no trace came too early, so later kills come no earlier; a command
    that exited first was killed too late, so later kills come no later; when the window
    closes it opens again around where it closed."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def learn(self, delay: float, killed: bool, left_trace: bool) -> None:
        if killed and not left_trace:
            self.low = max(self.low, 0.95 * delay)
        elif not killed:
            self.high = min(self.high, 1.05 * delay)
        if self.high <= 1.05 * self.low:
            self.low, self.high = 0.8 * self.low, 1.25 * self.high


def enabled_tailnet(root: Path) -> Net:
    net = Net(root)
    net.ok("admin", "node", "register", "--name", "admin")
    net.ok("laptop", "node", "register", "--name", "laptop")
    key = "tlpub:" + json.loads((root / "admin" / "node.json").read_text())["LockPublic"]
    net.ok("admin", "init", "--confirm", "--gen-disablements", "1", "--secrets-out",
           str(root / "admin-secrets.txt"), key)
    return net


def sweep(root: Path, ops: list[str], rounds: int, seed: int,
          report: Callable[[str], None] = print) -> dict[str, Tally]:
    rng = random.Random(seed)
    net = enabled_tailnet(root)
    tallies: dict[str, Tally] = {}
    for op in ops:
        duration = _calibration(net, op)
        tally = tallies[op] = Tally()
        start = time.monotonic()
        window = Window(LOW * duration, HIGH * duration)
        for i in range(rounds):
            delay = window.draw(rng)
            tally.rounds += 1
            net.left_trace = False
            killed = ROUNDS[op](net, i, delay, tally)
            if killed:
                tally.killed += 1
                tally.traces += int(net.left_trace)
            window.learn(delay, killed, net.left_trace)
        report(f"{op:>8}: {tally.rounds} rounds, {tally.killed} killed mid-run "
               f"({tally.traces} after it had written) "
               f"(uninterrupted run {duration:.2f} s), {tally.corrupt} corrupt stores, "
               f"{tally.lost_secrets} secrets lost, {tally.stuck} stuck nodes "
               f"[{time.monotonic() - start:.0f} s]")
        for problem in tally.problems:
            report(f"          {problem}")
    return tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="kills per command")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    ops = [op for op in args.ops.split(",") if op]
    unknown = [op for op in ops if op not in ROUNDS]
    if unknown:
        parser.error(f"unknown command(s): {', '.join(unknown)}")
    print(f"kill sweep: seed {args.seed}, {args.rounds} rounds of {', '.join(ops)}")
    with tempfile.TemporaryDirectory(prefix="tka-kill-") as tmp:
        tallies = sweep(Path(tmp), ops, args.rounds, args.seed)
    total = Tally()
    for t in tallies.values():
        total.rounds += t.rounds
        total.killed += t.killed
        total.traces += t.traces
        total.corrupt += t.corrupt
        total.lost_secrets += t.lost_secrets
        total.stuck += t.stuck
    print(f"   total: {total.rounds} rounds, {total.killed} killed mid-run ({total.traces} "
          f"after it had written), {total.corrupt} "
          f"corrupt stores, {total.lost_secrets} secrets lost, {total.stuck} stuck nodes")
    return 1 if total.corrupt or total.lost_secrets or total.stuck else 0


if __name__ == "__main__":
    sys.exit(main())
