"""Soak the appliance link: many requests through a bad serial line (bench/lineproxy.py).

    python bench/soak_appliance.py [--requests 10000] [--corrupt 0.01] [--drops-per-minute 6]
                                   [--seed N]

Starts the firmware stub in a temporary directory, sets it up (PIN, key, genesis, enrollment)
over a clean line, then sends the requests through the proxy, which corrupts 1 % of the bytes
in both directions and drops the line at random. The person at the device approves everything
(`ScreenDriver.auto`). The mix: 80 % `sign_nks` (each signature verified here), 10 % `status`,
10 % `sign_batch` of 5 node keys. Prints requests, retransmissions, errors, wrong signatures and
the longest wait, and exits 1 if any signature was wrong or any wait exceeded the limit.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.lineproxy import LineProxy, ProxyStats  # noqa: E402
from signer.appliance_stub import ApplianceStub  # noqa: E402
from signer.backends.appliance.backend import ApplianceBackend  # noqa: E402
from signer.backends.appliance.identity import IdentityPins  # noqa: E402
from signer.backends.appliance.stubkit import (  # noqa: E402
    Provisioned,
    approve_all,
    nks_context,
    provision,
    unsigned_direct_nks,
)
from signer.backends.appliance.uri import ApplianceUri  # noqa: E402
from verifier import ed25519  # noqa: E402
from verifier.errors import DeviceError  # noqa: E402

WAIT_LIMIT = 30.0  # seconds: the host's wait for one request in the soak (confirm_wait)


@dataclass
class SoakResult:
    requests: int = 0
    signatures: int = 0
    wrong_signatures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)  # the first few, in full
    max_wait: float = 0.0
    waits_over_limit: int = 0
    elapsed: float = 0.0
    retransmissions: int = 0
    timeouts: int = 0
    naks_received: int = 0
    naks_sent: int = 0
    bad_frames: int = 0
    proxy: ProxyStats | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def report(self) -> str:
        lines = [
            f"requests          {self.requests} in {self.elapsed:.1f} s "
            f"({self.requests / max(self.elapsed, 1e-9):.1f}/s)",
            f"signatures        {self.signatures} ({self.wrong_signatures} wrong)",
            f"errors            {self.error_count}"
            + (f" ({', '.join(f'{k}: {v}' for k, v in self.errors.items())})"
               if self.errors else ""),
            f"max wait          {self.max_wait:.2f} s ({self.waits_over_limit} over "
            f"{WAIT_LIMIT:g} s)",
            f"host link         {self.retransmissions} retransmitted fragments, "
            f"{self.timeouts} timeouts, {self.naks_received} NAKs received, {self.naks_sent} "
            f"NAKs sent, {self.bad_frames} damaged frames dropped",
        ]
        if self.proxy is not None:
            lines.append(f"line              {self.proxy.summary()}")
        lines.extend(f"error             {text}" for text in self.first_errors)
        return "\n".join(lines)


def soak(backend: ApplianceBackend, ready: Provisioned, n: int, rng: random.Random,
         progress_every: int = 0) -> SoakResult:
    """Send `n` requests through `backend` (already opened on the damaged line); with
    `progress_every`, a progress line on stderr every that many requests."""
    result = SoakResult()
    dev = backend.appliance
    start = time.monotonic()
    for i in range(n):
        roll = rng.random()
        t0 = time.monotonic()
        try:
            if roll < 0.8:
                nks, digest = unsigned_direct_nks(ready.public, rng.randbytes(32))
                signature = backend.sign(digest, nks_context(nks))
                result.signatures += 1
                if not ed25519.verify(ready.public, digest, signature):
                    result.wrong_signatures += 1
            elif roll < 0.9:
                dev.status()
            else:
                items = [unsigned_direct_nks(ready.public, rng.randbytes(32)) for _ in range(5)]
                signatures = backend.sign_many([(d, nks_context(x)) for x, d in items])
                result.signatures += len(signatures)
                result.wrong_signatures += sum(
                    not ed25519.verify(ready.public, d, s)
                    for (_x, d), s in zip(items, signatures, strict=True)
                )
        except DeviceError as err:
            result.errors[type(err).__name__] += 1
            if len(result.first_errors) < 5:
                result.first_errors.append(f"request {i} after {time.monotonic() - t0:.2f} s: "
                                           f"{err}")
            try:
                dev.link.reset()  # start the session again, as a new tka run would
            except DeviceError:
                result.errors["reset failed"] += 1
        wait = time.monotonic() - t0
        result.max_wait = max(result.max_wait, wait)
        if wait > WAIT_LIMIT:
            result.waits_over_limit += 1
        result.requests = i + 1
        if progress_every and result.requests % progress_every == 0:
            print(f"soak: {result.requests}/{n} requests, {result.error_count} errors, "
                  f"{result.wrong_signatures} wrong signatures, max wait "
                  f"{result.max_wait:.2f} s, {time.monotonic() - start:.0f} s", file=sys.stderr,
                  flush=True)
    result.elapsed = time.monotonic() - start
    stats = dev.link.stats
    result.retransmissions = stats.retransmissions
    result.timeouts = stats.sender.timeouts
    result.naks_received = stats.sender.naks
    result.naks_sent = stats.naks_sent
    result.bad_frames = stats.bad_frames
    return result


def run(directory: Path, n: int, corrupt: float, drops_per_minute: float, seed: int,
        drop_max: float = 0.8, progress_every: int = 0) -> SoakResult:
    """Stub, provisioning on a clean line, then the soak through the proxy."""
    rng = random.Random(seed)
    stub = ApplianceStub(directory / "device").start()
    try:
        pins = IdentityPins(directory / "pins.json")
        ready = provision(stub, pins=pins)
        ready.backend.close()
        proxy = LineProxy(stub.serial, corrupt=corrupt, drops_per_minute=drops_per_minute,
                          drop_max=drop_max, seed=seed).start()
        try:
            assert stub.ui is not None
            stub.ui.auto(approve_all)
            from signer.backends.appliance.api import Appliance

            dev = Appliance.open(proxy.host_path, notify=None, confirm_wait=WAIT_LIMIT)
            backend = ApplianceBackend(ApplianceUri(device=proxy.host_path, key=ready.key),
                                       appliance=dev, pins=pins, notify=None)
            try:
                backend.track(ready.authority)
                result = soak(backend, ready, n, rng, progress_every)
            finally:
                backend.close()
            result.proxy = proxy.stats()
            return result
        finally:
            proxy.stop()
    finally:
        stub.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--corrupt", type=float, default=0.01)
    parser.add_argument("--drops-per-minute", type=float, default=6.0)
    parser.add_argument("--drop-max", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    parser.add_argument("--write-docs", action="store_true",
                        help='replace the "Appliance soak" section of docs/benchmarks.md')
    args = parser.parse_args()
    print(f"soak: {args.requests} requests, {args.corrupt:.1%} of bytes corrupted, "
          f"{args.drops_per_minute:g} line drops/min (up to {args.drop_max:g} s), seed "
          f"{args.seed}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tka-soak-") as tmp:
        result = run(Path(tmp), args.requests, args.corrupt, args.drops_per_minute, args.seed,
                     args.drop_max, progress_every=500)
    print(result.report())
    if args.write_docs:
        from bench.bench_pkcs11 import cpu_model
        from bench.docs_section import replace_section

        replace_section(
            "## Appliance soak",
            f"`python bench/soak_appliance.py --requests {args.requests} --corrupt "
            f"{args.corrupt:g} --drops-per-minute {args.drops_per_minute:g} --drop-max "
            f"{args.drop_max:g} --seed {args.seed} --write-docs` on {cpu_model()}: the stub "
            "behind `bench/lineproxy.py`, which corrupts that fraction of the bytes in both "
            "directions and cuts the line at random (80 % `sign_nks`, 10 % `status`, 10 % "
            "batches of 5; every signature verified by the host).\n\n```\n"
            + result.report() + "\n```",
        )
    return 1 if result.wrong_signatures or result.waits_over_limit else 0


if __name__ == "__main__":
    sys.exit(main())
