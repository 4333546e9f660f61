"""Ed25519 verification throughput: PyNaCl, cryptography and our native core, one run, same
inputs (32-byte messages, like tailnet-lock sighashes), one thread.

    nice -n 10 python bench/bench_verify.py [--quick] [--write-docs]

Rows (signatures/second, with the ratio to PyNaCl from the same run):
  pynacl                 VerifyKey.verify, key object cached (libsodium, stricter rules)
  cryptography           Ed25519PublicKey.verify, key object cached (OpenSSL, cofactorless)
  ours single zip215     verifier.ed25519.verify(..., "zip215")
  ours single cofactorless
  ..., a new key per signature   the same with 5000 distinct keys (defeats our per-thread cache
                         of decoded keys; PyNaCl has no such cache)
  ours cofactorless verify_batch   rotation-style bulk check: every signature checked on its
                         own (exact Go rule), decoding and inversions shared in one call
  ours batch n=N, K keys verifier.ed25519.verify_batch on N signatures from K distinct keys
                         (the Python API: packing the inputs is included in the time)
  ours batch packed      verifier.ed25519.verify_batch_packed on the largest 3-key batch as
                         three buffers (keys, messages, signatures): the native rate from Python
  ... 2 threads          the largest batch split in two halves verified by two Python threads
                         (shows that the GIL is released; the machine has 2 cores)
  one bad in 10k         the batch time with one corrupted signature / the all-good time
  verify_peers ...       verifier.verify_peers on a synthetic 100,000-peer netmap (bench/netmap.py):
                         all direct, and half one-step rotations; peers/second and wall time,
                         on 1 thread and on every core; the pure-Python reference path
                         (verify_peers_reference) on 5,000 of the same peers for comparison

Each figure comes from the fastest of 5 timed repetitions (3 for n >= 16k).
`--write-docs` replaces the "Ed25519 verification" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from nacl.signing import SigningKey, VerifyKey  # noqa: E402

from bench.docs_section import native_path, replace_section  # noqa: E402
from bench.netmap import Peer, synthetic_netmap  # noqa: E402
from verifier import ed25519  # noqa: E402
from verifier.peers import verify_peers, verify_peers_reference  # noqa: E402
from verifier.state import State  # noqa: E402

SECTION = "## Ed25519 verification"
Item = tuple[bytes, bytes, bytes]


def make_items(n_keys: int, n: int, seed: int) -> list[Item]:
    keys = [SigningKey(seed.to_bytes(4, "little") + bytes([i % 256, i // 256]) + bytes(26))
            for i in range(n_keys)]
    pks = [bytes(k.verify_key) for k in keys]
    out = []
    for i in range(n):
        m = os.urandom(32)
        out.append((pks[i % n_keys], m, keys[i % n_keys].sign(m).signature))
    return out


def rate(fn: Callable[[], object], count: int, reps: int = 5) -> float:
    """Signatures/second from the fastest of `reps` timed runs of fn (which verifies `count`).
    The machine is shared, so the fastest run is the one least disturbed by other jobs."""
    return count / timed(fn, reps)


def timed(fn: Callable[[], object], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def interleaved_rates(
    fns: list[tuple[str, Callable[[], object]]], count: int, reps: int = 5
) -> list[tuple[str, float]]:
    best = {name: float("inf") for name, _ in fns}
    for _ in range(reps):
        for name, fn in fns:
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return [(name, count / best[name]) for name, _ in fns]


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    path, _, _ = native_path()
    return (
        f"{fields.get('Model name', '?')} (family {fields.get('CPU family', '?')} model "
        f"{fields.get('Model', '?')}, L2 {fields.get('L2 cache', '?')}), "
        f"{fields.get('CPU(s)', '?')} CPUs, "
        f"{fields.get('Hypervisor vendor', 'bare metal')} guest, "
        f"Python {platform.python_version()}, native path: {path}"
    )


def run(quick: bool) -> tuple[list[tuple[str, float]], float]:
    n_single = 2000 if quick else 5000
    sizes = [64, 1000, 16000] if quick else [64, 1000, 16000, 100000]
    key_counts = [1, 3, 100]
    biggest = max(sizes)
    sets = {k: make_items(k, biggest, seed=k) for k in key_counts}
    singles = sets[3][:n_single]

    vks = {pk: VerifyKey(pk) for pk, _, _ in singles}
    cks = {pk: Ed25519PublicKey.from_public_bytes(pk) for pk, _, _ in singles}

    def nacl() -> None:
        for pk, m, s in singles:
            vks[pk].verify(m, s)

    def openssl() -> None:
        for pk, m, s in singles:
            cks[pk].verify(s, m)

    def ours(rule: ed25519.Rule) -> Callable[[], None]:
        def go() -> None:
            for pk, m, s in singles:
                if not ed25519.verify(pk, m, s, rule):
                    raise AssertionError("valid signature rejected")
        return go

    # Our single verify keeps the decoded tables of each thread's last 4 keys; with a new key
    # for every signature that cache never hits.
    distinct = make_items(n_single, n_single, seed=99)
    distinct_vks = [VerifyKey(pk) for pk, _, _ in distinct]

    def nacl_distinct() -> None:
        for vk, (_, m, s) in zip(distinct_vks, distinct, strict=True):
            vk.verify(m, s)

    def ours_distinct(rule: ed25519.Rule) -> Callable[[], None]:
        def go() -> None:
            for pk, m, s in distinct:
                if not ed25519.verify(pk, m, s, rule):
                    raise AssertionError("valid signature rejected")
        return go

    # Interleaved rounds, so a burst of load from other jobs hits every row alike.
    rows = interleaved_rates(
        [
            ("pynacl", nacl),
            ("cryptography", openssl),
            ("ours single zip215", ours("zip215")),
            ("ours single cofactorless", ours("cofactorless")),
            ("pynacl, a new key per signature", nacl_distinct),
            ("ours single zip215, a new key per signature", ours_distinct("zip215")),
            ("ours single cofactorless, a new key per signature", ours_distinct("cofactorless")),
            ("ours cofactorless verify_batch (each on its own), a new key per signature",
             lambda: ed25519.verify_batch(distinct, rule="cofactorless")),
        ],
        n_single,
    )
    for k in key_counts:
        for n in sizes:
            items = sets[k][:n]
            reps = 3 if n >= 16000 else max(5, 20000 // n)

            def batch(items: list[Item] = items) -> None:
                if not all(ed25519.verify_batch(items)):
                    raise AssertionError("valid batch rejected")

            rows.append((f"ours batch n={n}, {k} key{'s' if k > 1 else ''}", rate(batch, n, reps)))
    # The GIL is released inside the native call: two Python threads on halves of the
    # largest batch should take about half the time on two free cores.
    items = sets[3][:biggest]
    halves = [items[: biggest // 2], items[biggest // 2 :]]
    with ThreadPoolExecutor(max_workers=2) as pool:

        def two_threads() -> None:
            if not all(all(v) for v in pool.map(ed25519.verify_batch, halves)):
                raise AssertionError("valid batch rejected")

        rows.append((f"ours batch n={biggest}, 3 keys, 2 threads", rate(two_threads, biggest)))
    # The same batch already packed (verify_batch_packed): no Python object per signature.
    pks = b"".join(pk for pk, _, _ in items)
    msgs = b"".join(m for _, m, _ in items)
    sigs = b"".join(sig for _, _, sig in items)

    def packed() -> None:
        if not all(ed25519.verify_batch_packed(pks, msgs, sigs, 32)):
            raise AssertionError("valid batch rejected")

    rows.append((f"ours batch packed n={biggest}, 3 keys", rate(packed, biggest, 3)))
    items = sets[3][:10000]
    bad = list(items)
    pk, m, s = bad[6543]
    bad[6543] = (pk, m, s[:40] + bytes([s[40] ^ 1]) + s[41:])
    verdicts = ed25519.verify_batch(bad)
    assert verdicts.count(False) == 1 and not verdicts[6543]
    clean_and_dirty = interleaved_rates(
        [
            ("clean", lambda: ed25519.verify_batch(items)),
            ("dirty", lambda: ed25519.verify_batch(bad)),
        ],
        len(items),
        reps=7,
    )
    rows += peer_rows(10000 if quick else 100000)
    return rows, clean_and_dirty[0][1] / clean_and_dirty[1][1]


def peer_rows(n: int) -> list[tuple[str, float]]:
    """verify_peers on synthetic netmaps of n peers; each row's name carries its wall time."""
    rows = []
    for share, label in ((0.0, "all direct"), (0.5, "half rotation")):
        state, peers = synthetic_netmap(n, share, seed=7)
        for threads, how in ((1, "1 thread"), (0, f"{os.cpu_count()} threads")):

            def check(
                state: State = state, peers: list[Peer] = peers, threads: int = threads
            ) -> None:
                if not all(v.authorized for v in verify_peers(state, peers, threads=threads)):
                    raise AssertionError("valid peer rejected")

            seconds = timed(check, 3)
            rows.append((f"verify_peers {n:,} peers, {label}, {how}: {seconds:.3f} s wall",
                         n / seconds))
        sample = peers[:5000]

        def reference(state: State = state, sample: list[Peer] = sample) -> None:
            verify_peers_reference(state, sample)

        seconds = timed(reference, 1)
        rows.append((f"verify_peers_reference (pure Python), {label}", len(sample) / seconds))
    return rows


def render(rows: list[tuple[str, float]], bad_ratio: float) -> str:
    base = rows[0][1]
    lines = ["| verifier | sig/s | ratio to PyNaCl |", "|---|---:|---:|"]
    lines += [f"| {name} | {r:,.0f} | {r / base:.2f} |" for name, r in rows]
    lines.append(
        f"\nOne bad signature in 10,000 (3 keys): {bad_ratio:.2f} times the all-good batch time."
    )
    few_keys = [
        (name, r)
        for name, r in rows
        if name.startswith("ours batch n=") and "100 keys" not in name and "threads" not in name
    ]
    big = [(name, r) for name, r in few_keys if "n=64," not in name and "n=1000," not in name]
    if big:
        name, r = min(big, key=lambda row: row[1])
        lines.append(
            f"Slowest batch with at most 3 keys and n >= 16k: {r:,.0f} sig/s "
            f"({r / base:.1f} times PyNaCl; {name})."
        )
    return "\n".join(lines)


def write_docs(table: str, quick: bool) -> None:
    _, suffix, env = native_path()
    section_title = SECTION + suffix
    replace_section(
        section_title,
        f"`{env}nice -n 10 python bench/bench_verify.py{' --quick' if quick else ''} "
        "--write-docs` — "
        "one thread unless stated, 32-byte messages, fastest of 5 repetitions (3 for n >= 16k), "
        "all rows from the same run. "
        f"Machine: {machine()}. The machine is shared (2 cores, other jobs running), so the "
        "absolute figures are noisy; the ratios come from the same run.\n\n"
        f"{table}\n",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (no n=100k)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows, bad_ratio = run(args.quick)
    table = render(rows, bad_ratio)
    print(table)
    if args.write_docs:
        write_docs(table, args.quick)


if __name__ == "__main__":
    main()
