"""`tka audit` as a whole process, and `verify_peers` at a million peers.

    nice -n 10 python bench/bench_audit.py [--quick] [--peers N] [--million N]

Rows:
  tka audit N peers (text|--json|--html)   the `tka` console script installed beside this
                         interpreter (not a version manager's shim on PATH, which adds its own
                         start-up; else `python -m signer.cli`) on a
                         peers file as `tka peers export` writes it (`nodekey:<hex> <base64> #
                         name`, every peer directly signed by the one trusted key of an authority
                         directory in Tailscale's layout); wall time of the whole process, its CPU
                         time and its peak RSS (its ru_maxrss, from wait4 in a small launcher
                         process), fastest of 3; bytecode caching on, into a private cache the
                         first (unmeasured) run fills, as an installed `tka` runs from its .pyc
                         files even where PYTHONDONTWRITEBYTECODE=1 is set (as in this sandbox)
  verify_peers M peers, list|packed, T thread(s)   `verify_peers` on a list of (node key, NKS)
                         pairs, and `verify_peers_packed` on a `PackedPeers`, in a fresh child
                         process each: wall time (fastest of 3) and the peak RSS the call adds to
                         what the process held once its input was built (memory freed while
                         building it is handed back first, malloc_trim; the kernel's high-water
                         mark is reset just before the call, /proc/self/clear_refs)

The million-peer input is the N-peer netmap repeated (distinct signatures cost about 40 µs each to
make in Python; the verifier does the same work for a repeated signature). Generated inputs are
cached under build/bench-audit/.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nacl.signing import SigningKey  # noqa: E402

from verifier.authority import Authority, new_state_ids  # noqa: E402
from verifier.disablement import disablement_kdf  # noqa: E402
from verifier.key import ed25519_key  # noqa: E402
from verifier.nks import NodeKeySignature, SigKind  # noqa: E402
from verifier.signing import AUMSigner  # noqa: E402
from verifier.state import State  # noqa: E402
from verifier.storage import FilesystemStorage  # noqa: E402
from verifier.textforms import format_node_public, node_key_binary  # noqa: E402

CACHE = REPO / "build" / "bench-audit"
PYCACHE = CACHE / "pycache"  # PYTHONPYCACHEPREFIX of the measured runs
ADMIN = SigningKey(bytes(range(7, 39)))


def make_fixture(n: int) -> tuple[Path, Path]:
    """An authority directory trusting ADMIN and a peers file of n directly signed peers."""
    root = CACHE / f"n{n}"
    authority, peers = root / "tka", root / "peers.txt"
    if peers.exists() and authority.exists():
        return authority, peers
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"b" * 32),),
                  keys=(ed25519_key(bytes(ADMIN.verify_key)),), state_id1=id1, state_id2=id2)
    signer = AUMSigner.over_digest(bytes(ADMIN.verify_key), lambda d: ADMIN.sign(d).signature)
    Authority.create(FilesystemStorage(authority), state, signer)
    rng = random.Random(n)
    key_id = bytes(ADMIN.verify_key)
    lines = []
    for i in range(n):
        node_key = rng.randbytes(32)
        unsigned = NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                                    key_id=key_id)
        nks = unsigned.replace(signature=ADMIN.sign(unsigned.sig_hash()).signature)
        lines.append(f"{format_node_public(node_key)} {base64.b64encode(nks.to_cbor()).decode()}"
                     f" # node-{i}.example.ts.net\n")
    tmp = peers.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(peers)
    return authority, peers


def tka_command(tree: Path) -> list[str]:
    script = Path(sys.executable).parent / "tka"
    if tree == REPO and script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "signer.cli"]


# Starts each measured command and reports its rusage. Linux keeps ru_maxrss across execve, and
# a child started with vfork (subprocess, posix_spawn) counts the peak RSS of the process that
# started it: from this one, once it has built a 100k-peer fixture (~110 MiB), every audit read
# as that big. The launcher stays small (an interpreter reading lines), below any `tka` run.
LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    cmd, env, cwd = json.loads(line)
    with open(os.devnull, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    print(json.dumps([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                      os.waitstatus_to_exitcode(status)]), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, cmd: list[str], tree: Path) -> tuple[float, float, int, int]:
        """(wall s, CPU s, peak RSS KiB, exit code) of one child process."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(PYCACHE)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Run from the tree itself: `python -m` puts the working directory first on sys.path.
        self.proc.stdin.write(json.dumps([cmd, env, str(tree)]) + "\n")
        self.proc.stdin.flush()
        wall, cpu, rss, code = json.loads(self.proc.stdout.readline())
        return wall, cpu, rss, code

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def bench_audit(n: int, rounds: int, tree: Path,
                launcher: Launcher) -> list[tuple[str, str, str, str]]:
    authority, peers = make_fixture(n)
    base = [*tka_command(tree), "audit", "--authority", str(authority), "--peers", str(peers)]
    html = CACHE / "report.html"
    rows = []
    for label, extra in (("text", []), ("--json", ["--json"]), ("--html", ["--html", str(html)])):
        launcher.run(base + extra, tree)  # fills the bytecode cache
        best: tuple[float, float, int, int] | None = None
        for _ in range(rounds):
            measured = launcher.run(base + extra, tree)
            if measured[3] != 0:
                raise SystemExit(f"tka audit {label} exited {measured[3]}")
            if best is None or measured[0] < best[0]:
                best = measured
        assert best is not None
        rows.append((f"tka audit {n:,} peers ({label})", f"{best[0]:.3f} s", f"{best[1]:.3f} s",
                     f"{best[2] / 1024:.1f} MiB"))
    return rows


CHILD = r"""
import base64, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
api, n, threads, rounds, fixture = (sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                    int(sys.argv[5]), Path(sys.argv[6]))

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field))

from verifier.authority import Authority
from verifier.storage import FilesystemStorage
import verifier.peers as vp

state = Authority.open(FilesystemStorage(fixture / "tka")).state
unique = []
for line in (fixture / "peers.txt").read_text().splitlines():
    key, sig = line.split()[:2]
    unique.append((bytes.fromhex(key.removeprefix("nodekey:")), base64.b64decode(sig)))
if api == "list":
    peers = [unique[i % len(unique)] for i in range(n)]
    call = lambda: vp.verify_peers(state, peers, threads=threads)
else:
    peers = vp.PackedPeers()
    for i in range(n):
        peers.append(*unique[i % len(unique)])
    call = lambda: vp.verify_peers_packed(state, peers, threads=threads)
del unique
import ctypes, gc
gc.collect()
trim = ctypes.CDLL(None).malloc_trim
best, extra = None, 0
for _ in range(rounds):
    trim(0)  # what building the input freed goes back to the system: not counted as the call's
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS
    before = status("VmRSS:")
    start = time.perf_counter()
    verdicts = call()
    wall = time.perf_counter() - start
    extra = max(extra, status("VmHWM:") - before)
    assert len(verdicts) == n
    del verdicts
    best = wall if best is None else min(best, wall)
print(json.dumps({"wall": best, "extra_kib": extra}))
"""


def bench_million(n: int, unique: int, rounds: int, tree: Path) -> list[tuple[str, str, str, str]]:
    authority, _ = make_fixture(unique)
    packed = "class PackedPeers" in (tree / "verifier" / "peers.py").read_text()
    apis = ["list"] + (["packed"] if packed else [])
    rows = []
    for api in apis:
        for threads in (1, 2):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(tree), api, str(n), str(threads), str(rounds),
                 str(authority.parent)],
                check=True, capture_output=True, text=True).stdout
            doc = json.loads(out.splitlines()[-1])
            rows.append((f"verify_peers {n:,} peers, {api}, {threads} thread(s)",
                         f"{doc['wall']:.3f} s", "", f"+{doc['extra_kib'] / 1024:.1f} MiB"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k peers, 100k for verify_peers")
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="run another copy of the project (e.g. an export of an older commit"
                        " with its extension built in place) on the same inputs")
    args = parser.parse_args()
    if args.quick:
        args.peers, args.million = 10_000, 100_000
    rounds = 2 if args.quick else 3
    tree = args.tree.resolve()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; RLIMIT_AS "
          f"{resource.getrlimit(resource.RLIMIT_AS)[0]}; tree {tree}")
    launcher = Launcher()
    try:
        rows = [] if args.skip_audit else bench_audit(args.peers, rounds, tree, launcher)
    finally:
        launcher.close()
    if not args.skip_million:
        rows += bench_million(args.million, args.peers, rounds, tree)
    print("| what | wall | CPU | peak RSS (verify_peers: beyond its input) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
