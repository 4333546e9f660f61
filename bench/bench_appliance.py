"""The signer appliance (firmware stub on a pty) beside a SoftHSM2 PKCS#11 key, same run.

    nice -n 10 python bench/bench_appliance.py [--rounds 50] [--batch 1000] [--quick]

Rows:
  sign_nks round trip   one node-key signature: the whole NKS to the device, its screen,
                        the automatic "yes" (ScreenDriver.auto), the reply checked and verified
  sign_batch            node-key signatures per second in one sign_batch of --batch items
                        (confirmed once), through ApplianceBackend.sign_many
  PKCS#11 single        one VerifiedBackend.sign on a SoftHSM key (digest only: a token cannot
                        show anything)
  PKCS#11 many          signatures per second, VerifiedBackend.sign_many on the same key

The stub and the token live in throw-away directories. The stub seals its keys with Argon2id
(64 MiB) at set-up; that is not timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_pkcs11 import MODULE, cpu_model, make_token  # noqa: E402


def bench_appliance(tmp: Path, rounds: int, batch: int) -> tuple[list[float], float]:
    from signer.appliance_stub import ApplianceStub
    from signer.backends.appliance.identity import IdentityPins
    from signer.backends.appliance.stubkit import (
        approve_all,
        nks_context,
        provision,
        unsigned_direct_nks,
    )
    from signer.verified import VerifiedBackend

    stub = ApplianceStub(tmp / "device").start()
    try:
        ready = provision(stub, pins=IdentityPins(tmp / "pins.json"))
        assert stub.ui is not None
        stub.ui.auto(approve_all)
        backend = VerifiedBackend(ready.backend)
        limit = ready.backend.appliance.get_policy().max_batch
        if batch > limit:
            stub.ui.auto(approve_all)
            ready.backend.appliance.set_policy({"max_batch": batch})
            ready.backend._policy = None  # re-read the policy on the next batch
        singles: list[float] = []
        for _ in range(rounds):
            nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
            t0 = time.perf_counter()
            backend.sign(digest, nks_context(nks))
            singles.append(time.perf_counter() - t0)
        best = float("inf")
        for _ in range(3):
            items = [unsigned_direct_nks(ready.public, os.urandom(32)) for _ in range(batch)]
            work = [(d, nks_context(n)) for n, d in items]
            t0 = time.perf_counter()
            backend.sign_many(work)
            best = min(best, time.perf_counter() - t0)
        backend.close()
        return singles, batch / best
    finally:
        stub.kill()


def bench_softhsm(tmp: Path, rounds: int, batch: int) -> tuple[list[float], float]:
    from signer.backends import open_backend
    from signer.backends import pkcs11 as p11
    from signer.backends.base import SigningContext
    from signer.uri import parse_pkcs11_uri

    label, pin = make_token(tmp)
    os.environ["TKA_PKCS11_PIN"] = pin
    uri = f"pkcs11:token={label};object=bench?module-path={MODULE}"
    ts = p11.open_token(parse_pkcs11_uri(uri))
    try:
        p11.generate_key(ts, "bench", b"\x01")
    finally:
        ts.close()
    context = SigningContext(purpose="node-key-signature", summary="bench")
    with open_backend(uri) as backend:
        singles = []
        for _ in range(rounds):
            digest = os.urandom(32)
            t0 = time.perf_counter()
            backend.sign(digest, context)
            singles.append(time.perf_counter() - t0)
        best = float("inf")
        for _ in range(3):
            work = [(os.urandom(32), context) for _ in range(batch)]
            t0 = time.perf_counter()
            backend.sign_many(work)
            best = min(best, time.perf_counter() - t0)
    return singles, batch / best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50, help="single round trips timed")
    parser.add_argument("--batch", type=int, default=1000, help="node keys per sign_batch")
    parser.add_argument("--quick", action="store_true", help="10 rounds, batches of 200")
    parser.add_argument("--write-docs", action="store_true",
                        help='replace the "Signer appliance" section of docs/benchmarks.md')
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.batch = 10, 200
    with tempfile.TemporaryDirectory(prefix="bench-appliance-") as tmp:
        os.environ.setdefault("XDG_DATA_HOME", str(Path(tmp) / "xdg"))
        a_single, a_rate = bench_appliance(Path(tmp) / "a", args.rounds, args.batch)
        (Path(tmp) / "p").mkdir()
        p_single, p_rate = bench_softhsm(Path(tmp) / "p", args.rounds, args.batch)

    def ms(values: list[float]) -> str:
        p95 = sorted(values)[max(0, int(len(values) * 0.95) - 1)]
        return f"{statistics.median(values) * 1e3:.2f} ms (p95 {p95 * 1e3:.2f})"

    machine = f"{cpu_model()}; python {platform.python_version()}"
    print(f"machine: {machine}")
    print(f"{'operation':<34} {'appliance (stub, pty)':>26} {'SoftHSM PKCS#11':>24}")
    print(f"{'one NKS signature, round trip':<34} {ms(a_single):>26} {ms(p_single):>24}")
    print(f"{f'{args.batch} NKS signatures (batch)':<34} {a_rate:>20,.0f} sig/s "
          f"{p_rate:>18,.0f} sig/s")
    print("appliance: whole NKS sent, parsed and shown on the device, confirmed automatically, "
          "reply checked and verified; SoftHSM: digest only, verified")
    if args.write_docs:
        from bench.docs_section import replace_section

        replace_section(
            "## Signer appliance",
            f"`nice -n 10 python bench/bench_appliance.py --rounds {args.rounds} --batch "
            f"{args.batch} --write-docs` on {machine}; the firmware stub (Release build) on its "
            "pseudo-terminal through pyserial, beside a SoftHSM2 key in the same run.\n\n"
            "| operation | appliance (stub, pty) | SoftHSM PKCS#11 |\n|---|---|---|\n"
            f"| one node-key signature, round trip (median, p95) | {ms(a_single)} | "
            f"{ms(p_single)} |\n"
            f"| {args.batch} node-key signatures, one `sign_batch` / `sign_many` | "
            f"{a_rate:,.0f} sig/s | {p_rate:,.0f} sig/s |\n\n"
            "The appliance's round trip carries the whole unsigned NKS over the link, the "
            "device's canonical parse, its screen and the automatic \"yes\" through the screen "
            "channel, the audit entry written to the flash file (fsync) and the host's checks "
            "of key, sighash and signature; the token signs a bare digest. The batch is "
            "confirmed once and logged once, so it runs faster than the token's per-signature "
            "calls (target: 1,000 sig/s).",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
