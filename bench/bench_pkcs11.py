"""Node-key signatures per second with a SoftHSM2 key, through our whole path, beside raw
python-pkcs11 signing and in-process PyNaCl signing, all from the same run.

    nice -n 10 python bench/bench_pkcs11.py [--n 3000] [--write-docs]

Rows:
  pynacl            PyNaCl (libsodium) Ed25519 sign of a 32-byte digest, in process
  raw-pkcs11        python-pkcs11 `priv.sign(digest, mechanism=EDDSA)`, one session
  backend           our Pkcs11Backend.sign (lock, checks), no verification
  backend+verify    the same through VerifiedBackend (verifies under ZIP-215 and cofactorless)
  nks-whole-path    signer.bulk.sign_node_keys: build the direct NKS, SigHash, verified sign, CBOR

The token lives in a throw-away directory; its PIN is typed into softhsm2-util on a pty.
`--write-docs` replaces the "PKCS#11 signing" section of docs/benchmarks.md with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import pty
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.docs_section import replace_section  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SECTION = "## PKCS#11 signing"


def make_token(root: Path) -> tuple[str, str]:
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin, so_pin = "bench", secrets.token_hex(4), secrets.token_hex(4)
    master, slave = pty.openpty()
    proc = subprocess.Popen(["softhsm2-util", "--init-token", "--free", "--label", label],
                            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    os.write(master, f"{so_pin}\n{so_pin}\n{pin}\n{pin}\n".encode())
    proc.communicate(timeout=60)
    os.close(master)
    if proc.returncode != 0:
        raise SystemExit("softhsm2-util --init-token failed")
    return label, pin


def rate(fn: Callable[[], None], n: int) -> float:
    """Operations per second: best of three timed runs of `fn` doing `n` operations."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "unknown").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    return f"{model}, {cpus} CPU(s)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000, help="signatures per timed run")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n = args.n

    import nacl.signing
    import pkcs11
    import pkcs11.exceptions  # loaded before timing

    from signer.backends import open_backend
    from signer.backends import pkcs11 as p11
    from signer.uri import parse_pkcs11_uri

    digests = [os.urandom(32) for _ in range(n)]
    node_keys = [os.urandom(32) for _ in range(n)]
    results: list[tuple[str, float]] = []

    sk = nacl.signing.SigningKey.generate()
    results.append(("pynacl", rate(lambda: [sk.sign(d) for d in digests] and None, n)))

    with tempfile.TemporaryDirectory(prefix="bench-p11-") as tmp:
        label, pin = make_token(Path(tmp))
        os.environ["TKA_PKCS11_PIN"] = pin
        uri = f"pkcs11:token={label};object=bench?module-path={MODULE}"
        ts = p11.open_token(parse_pkcs11_uri(uri))
        try:
            p11.generate_key(ts, "bench", b"\x01")
        finally:
            ts.close()

        with open_backend(uri, verify=False) as bare, open_backend(uri) as verified:
            # Raw python-pkcs11 on the very key our backend opened (same session, same token).
            priv = bare._private  # type: ignore[attr-defined]
            mech = pkcs11.Mechanism.EDDSA
            results.append(("raw-pkcs11", rate(
                lambda: [priv.sign(d, mechanism=mech) for d in digests] and None, n)))
            results.append(("backend", rate(lambda: [bare.sign(d) for d in digests] and None, n)))
            results.append(("backend+verify", rate(
                lambda: [verified.sign(d) for d in digests] and None, n)))
            from signer.bulk import sign_node_keys

            def whole() -> None:
                for _ in sign_node_keys(verified, node_keys):
                    pass

            results.append(("nks-whole-path", rate(whole, n)))

    machine = cpu_model()
    from verifier import ed25519

    print(f"machine: {machine}")
    print(f"python {platform.python_version()}, python-pkcs11 {pkcs11_version()}, "
          f"SoftHSM {softhsm_version()}, verifier.ed25519: {ed25519_impl(ed25519)}")
    print(f"{'path':<16} {'sig/s':>9} {'µs/sig':>8}")
    for name, r in results:
        print(f"{name:<16} {r:>9,.0f} {1e6 / r:>8.1f}")
    if args.write_docs:
        write_docs(results, machine, n)
    return 0


def pkcs11_version() -> str:
    from importlib.metadata import version

    return version("python-pkcs11")


def softhsm_version() -> str:
    try:
        return subprocess.run(["softhsm2-util", "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def ed25519_impl(module: object) -> str:
    doc = (module.__doc__ or "").strip().splitlines()
    return "interim (cryptography)" if any("INTERIM" in line for line in doc) else "native core"


def write_docs(results: list[tuple[str, float]], machine: str, n: int) -> None:
    from verifier import ed25519

    rows = "\n".join(f"| {name} | {r:,.0f} | {1e6 / r:.1f} |" for name, r in results)
    replace_section(
        SECTION,
        f"`nice -n 10 python bench/bench_pkcs11.py --n {n} --write-docs` — best of 3 runs of {n} "
        "signatures of 32-byte digests, one SoftHSM2 session, one thread, all rows from the same "
        "run. The machine is shared (2 cores, several concurrent jobs), so treat the figures as "
        "lower bounds.\n\n"
        f"- Machine: {machine}\n"
        f"- Software: Python {platform.python_version()}, python-pkcs11 {pkcs11_version()}, "
        f"SoftHSM {softhsm_version()}, signature check: {ed25519_impl(ed25519)}\n"
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        "| path | signatures/s | µs/signature |\n|---|---:|---:|\n"
        f"{rows}\n\n"
        "Rows: `pynacl` = in-process PyNaCl; `raw-pkcs11` = bare python-pkcs11 `C_Sign`; "
        "`backend` = our Pkcs11Backend (process-wide lock, length checks); `backend+verify` = "
        "plus the cofactorless check of every signature, which implies the ZIP-215 one "
        "(signer/verified.py); "
        "`nks-whole-path` = what `tka key sign-nodekeys` does per node key (build the direct "
        "NKS, SigHash, verified sign, CBOR). Target for `nks-whole-path`: ≥ 3,000/s.\n",
    )


if __name__ == "__main__":
    sys.exit(main())
