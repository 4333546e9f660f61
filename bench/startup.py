"""Start-up time of the `tka` command line, whole process (issue 14 item 4).

    python bench/startup.py [--rounds N] [--tka COMMAND | --venv] [--baseline DIR] [--markdown]

Times `python3 -c pass` (the interpreter's own floor), `tka --help` and `tka status` against a
node made for the run: a fresh embedded coordination service (a SQLite file) in a temporary
directory, one node registered with a software lock key, tailnet lock enabled with that key, so
that `status` does its whole ordinary work (open the node, sync with the service, check the
node's signature, print). The commands run in turn, round after round, so that noise from other
processes on the machine falls on all of them alike; the medians are printed side by side, with
the fastest run and the median CPU time (user + system) of the process, which a busy machine
disturbs less than the wall-clock time.

`tka` is the console script installed beside this interpreter (else `python3 -m signer.cli`,
which costs a few milliseconds more for runpy); `--tka COMMAND` picks another. The floor is
this interpreter's `-c pass`, so it carries whatever its `site` loads: with the project
installed editable (scripts/setup.sh), setuptools' import hook with pathlib, re, typing and
more, most of which `tka` would import itself: the floor is then higher, and "above the floor"
lower, than for a user (docs/benchmarks.md, "Command-line start-up").

`--venv` times what a user runs instead: a regular (non-editable) `pip install` of this tree
into a throw-away venv made from this interpreter (build and runtime dependencies fetched
from the configured package index, the native core compiled: a minute or two), its `tka`
console script, and the floor is that venv's interpreter (whose `site` sees none of this
interpreter's site-packages).

Every process runs with bytecode caching on, into a private cache directory
(PYTHONPYCACHEPREFIX) that the warm-up run fills, as an installed `tka` runs from its .pyc
files: with PYTHONDONTWRITEBYTECODE=1 (as in some CI and sandbox environments) each run would
compile every module again, which measures the compiler rather than the start-up.
`--no-bytecode` measures that case.

`--baseline DIR` times the same `tka` a second time with PYTHONPATH=DIR (another checkout's
tree, e.g. the commit before a change, with `verifier/_native*.so` built in it or copied in),
in the same rounds, command after command, so that the two trees share the machine's moments:
on a noisy machine, runs of the bench one after the other differ by more than a start-up change.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tka_command(command: str | None) -> list[str]:
    if command:
        return shlex.split(command)
    script = Path(sys.executable).parent / "tka"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "signer.cli"]


def _install_venv(venv: Path) -> tuple[str, list[str]]:
    """A new venv with this tree installed as a user installs it (no -e); its interpreter and
    its `tka`."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    print(f"bench: installing {REPO} into {venv} (pip install, no -e)", file=sys.stderr)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(REPO)], env=env, cwd=venv, check=True)
    return python, [str(venv / "bin" / "tka")]


def _make_node(root: Path, tka: list[str], env: dict[str, str]) -> list[str]:
    """A registered node with tailnet lock enabled; returns the --state/--control arguments."""
    where = ["--state", str(root / "node"), "--control", str(root / "control.db")]
    reg = subprocess.run([*tka, "node", "register", "--name", "bench", *where], env=env,
                         cwd=root, capture_output=True, text=True, check=True)
    lock_key = re.search(r"tlpub:[0-9a-f]{64}", reg.stdout)
    assert lock_key is not None, reg.stdout
    subprocess.run([*tka, "init", "--confirm", lock_key.group(), *where], env=env, cwd=root,
                   capture_output=True, check=True)
    return where


def _time_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds in user and kernel mode) of one whole run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode().strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return f"{model.group(1).strip() if model else platform.machine()}, {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="runs of each command (30)")
    parser.add_argument("--tka", metavar="COMMAND",
                        help="the tka to time, e.g. 'python3 -m signer.cli' (with PYTHONPATH set "
                        "to another tree to compare it)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE as it is (compile on every run)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time tka with PYTHONPATH=DIR (another tree), interleaved")
    parser.add_argument("--venv", action="store_true",
                        help="time a regular install of this tree in a throw-away venv (its "
                        "tka, its interpreter's floor)")
    args = parser.parse_args()
    if args.venv and args.tka:
        parser.error("--venv times the venv's own tka: give no --tka")
    python = sys.executable
    tka = _tka_command(args.tka)
    root = Path(tempfile.mkdtemp(prefix="tka-startup-"))
    try:
        if args.venv:
            python, tka = _install_venv(root / "venv")
        env = {**os.environ, "XDG_DATA_HOME": str(root / "xdg")}
        if args.venv:
            env.pop("PYTHONPATH", None)  # the venv's own install, nothing of a source tree
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        for name in ("TKA_STATE", "TKA_CONTROL"):
            env.pop(name, None)
        where = _make_node(root, tka, env)
        commands = {
            "python3 -c pass": ([python, "-c", "pass"], env),
            "tka --help": ([*tka, "--help"], env),
            "tka status": ([*tka, "status", *where], env),
        }
        if args.baseline:
            other = {**env, "PYTHONPATH": str(Path(args.baseline).resolve())}
            commands["tka --help (baseline)"] = ([*tka, "--help"], other)
            commands["tka status (baseline)"] = ([*tka, "status", *where], other)
        for argv, run_env in commands.values():  # warm the page cache and the .pyc files
            _time_once(argv, run_env, root)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, (argv, run_env) in commands.items():
                times[name].append(_time_once(argv, run_env, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    floor = statistics.median(wall for wall, _ in times["python3 -c pass"])
    rows = []
    for name, samples in times.items():
        wall = [w for w, _ in samples]
        cpu = [c for _, c in samples]
        median = statistics.median(wall)
        rows.append((name, median * 1e3, min(wall) * 1e3, (median - floor) * 1e3,
                     statistics.median(cpu) * 1e3))
    print(f"# {_cpu()}; Python {platform.python_version()}; {args.rounds} rounds; "
          f"tka = {'a regular install in a throw-away venv' if args.venv else ' '.join(tka)}; "
          f"bytecode {'not cached' if args.no_bytecode else 'cached'}"
          + (f"; baseline PYTHONPATH={args.baseline}" if args.baseline else ""))
    if args.markdown:
        print("| command | median | min | median above `python3 -c pass` | median CPU time |")
        print("|---|---:|---:|---:|---:|")
        for name, median, low, above, cpu_median in rows:
            print(f"| `{name}` | {median:.1f} ms | {low:.1f} ms | {above:+.1f} ms | "
                  f"{cpu_median:.1f} ms |")
    else:
        print(f"{'command':<29} {'median':>9} {'min':>9} {'above floor':>12} {'CPU median':>11}")
        for name, median, low, above, cpu_median in rows:
            print(f"{name:<29} {median:>7.1f}ms {low:>7.1f}ms {above:>+10.1f}ms "
                  f"{cpu_median:>9.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
