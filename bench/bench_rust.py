"""Our verifier beside the Rust anchors, ed25519-dalek and ed25519-zebra, on bench_verify.py's
workloads (one thread, 32-byte messages), in one run.

    nice -n 10 python bench/bench_rust.py [--quick] [--write-docs]

Builds bench/rust (a small Cargo project of ours depending on ed25519-dalek with `batch` and
on ed25519-zebra, from crates.io) with cargo in release mode, once per configuration below,
each into its own directory under bench/rust/target; then times our verifier and runs every
build. Benchmarks only: nothing here runs in `make test` or CI.

Configurations (curve25519-dalek picks its backend at build time from cfg / target features
and then at run time from the CPU; each build reports the backend it ran):
  stable                  no RUSTFLAGS: AVX2 picked at run time (the default any user gets)
  stable, avx512 cfg      --cfg curve25519_dalek_backend="avx512": AVX-512 IFMA picked at
                          run time, a portable binary like our extension (runtime dispatch)
  stable, native          -C target-cpu=native: the whole program for this CPU (IFMA here)
  nightly, native         the same with the nightly toolchain, where rustup has one
curve25519-dalek 5 builds its IFMA backend on stable rustc >= 1.89; older releases (4.x)
needed a nightly, hence the nightly row.

Rules differ between the anchors, so each row says which rule it checks:
  ours zip215 / zebra          ZIP-215 (cofactored), single and batch: the same rule
  ours cofactorless / dalek verify   cofactorless (Go's crypto/ed25519 rule); dalek
                               verify_strict also refuses small-order A and R
  dalek verify_batch           the cofactorless batch equation, all or nothing; it may
                               refuse batches whose members each pass dalek's verify
Timed calls start from bytes, as ours does (keys and signatures decoded inside the timing),
except "one key" singles, where every verifier keeps its decoded key (ours: its key cache).
Each figure is the fastest over 3 rounds (ours, then every build, in turn) of 5 repetitions
(at least 20000 / n calls for small batches; 3 for n >= 16k, 2 for n = 100k).
`--write-docs` writes the "Against the Rust verifiers" section of docs/benchmarks.md (one per
native path: AVX-512 IFMA, AVX2, scalar).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_verify import interleaved_rates, machine, make_items, rate  # noqa: E402
from bench.docs_section import native_path, replace_section  # noqa: E402
from verifier import ed25519  # noqa: E402

SECTION = "## Against the Rust verifiers"
RUST = REPO / "bench" / "rust"
TARGET = RUST / "target"
BINARY = "tka-rust-anchors"
SEED = 20261202


@dataclass(frozen=True)
class Build:
    tag: str  # a, b, c, ... in the tables
    name: str  # target directory and short label
    toolchain: str  # rustup toolchain name
    rustflags: tuple[str, ...]


@dataclass
class Built:
    build: Build
    binary: Path | None
    error: str = ""
    rustc: str = ""
    backend: str = ""
    backend_check: str = ""


@dataclass(frozen=True)
class Figure:
    impl: str
    rule: str
    workload: str
    n: int
    keys: int
    sig_per_s: float


Key = tuple[str, int, int]  # workload, n, keys
Item = tuple[bytes, bytes, bytes]


def builds() -> list[Build]:
    out = [
        Build("a", "stable", "stable", ()),
        Build("b", "stable-avx512-cfg", "stable", ('--cfg=curve25519_dalek_backend="avx512"',)),
        Build("c", "stable-native", "stable", ("-Ctarget-cpu=native",)),
    ]
    if shutil.which("rustup"):
        listed = subprocess.run(["rustup", "toolchain", "list"], capture_output=True, text=True)
        if any(line.startswith("nightly") for line in listed.stdout.splitlines()):
            out.append(Build("d", "nightly-native", "nightly", ("-Ctarget-cpu=native",)))
    return out


def cargo_build(b: Build) -> Built:
    cargo = shutil.which("cargo")
    if cargo is None:
        return Built(b, None, "cargo not found")
    cmd = [cargo]
    if shutil.which("rustup"):
        cmd.append(f"+{b.toolchain}")
    target = TARGET / b.name
    cmd += ["build", "--release", "--locked", "--manifest-path", str(RUST / "Cargo.toml"),
            "--target-dir", str(target)]
    env = {k: v for k, v in os.environ.items() if k not in ("RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS")}
    env["CARGO_ENCODED_RUSTFLAGS"] = "\x1f".join(b.rustflags)
    print(f"building [{b.tag}] {b.name}: {' '.join(cmd)}  RUSTFLAGS={' '.join(b.rustflags)}",
          flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        print(f"  build [{b.tag}] failed: {tail}", flush=True)
        return Built(b, None, f"cargo build failed: {tail}")
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    built = Built(b, target / "release" / BINARY)
    built.backend_check = symbol_check(built.binary)
    return built


def symbol_check(binary: Path | None) -> str:
    """Which curve25519-dalek vector backends the binary contains, read from its symbols."""
    if binary is None or shutil.which("nm") is None:
        return "not checked"
    syms = subprocess.run(["nm", str(binary)], capture_output=True, text=True).stdout
    found = [name for name, marker in (("avx512ifma", "spec_avx512ifma"), ("avx2", "spec_avx2"))
             if marker in syms]
    return "+".join(found) if found else "none"


def merge(old: list[Figure], new: list[Figure]) -> list[Figure]:
    """The faster of each figure in two passes of the same binary (new's order if old is empty)."""
    if not old:
        return new
    fast = {(f.impl, f.workload, f.n, f.keys): f for f in new}
    out = []
    for f in old:
        g = fast.get((f.impl, f.workload, f.n, f.keys))
        out.append(g if g is not None and g.sig_per_s > f.sig_per_s else f)
    return out


def run_rust(built: Built, quick: bool) -> list[Figure]:
    assert built.binary is not None
    cmd = [str(built.binary), "--seed", str(SEED)]
    if quick:
        cmd += ["--n-single", "2000", "--sizes", "64,1000,16000"]
    print(f"running [{built.build.tag}] {built.build.name}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        built.error = f"run failed: {done.stderr.strip()[-300:]}"
        print(f"  {built.error}", flush=True)
        return []
    print(f"  {done.stderr.strip()}", flush=True)
    out = []
    for line in done.stdout.splitlines():
        row = json.loads(line)
        built.rustc, built.backend = row["toolchain"], row["backend"]
        out.append(Figure(row["impl"], row["rule"], row["workload"], int(row["n"]),
                          int(row["keys"]), float(row["sig_per_s"])))
    return out


def reps_for(n: int) -> int:
    """Repetitions per round for a batch of n, as in bench_verify.py, but 2 at n = 100k."""
    return 2 if n >= 100000 else 3 if n >= 16000 else max(5, 20000 // n)


def prepare_ours(quick: bool) -> Callable[[], dict[tuple[str, Key], float]]:
    """Inputs for our verifier on the Rust binary's workloads; returns one timing round, whose
    keys are (impl, (workload, n, keys))."""
    n_single = 2000 if quick else 5000
    sizes = [64, 1000, 16000] if quick else [64, 1000, 16000, 100000]
    one = make_items(1, n_single, seed=SEED % 1000)
    distinct = make_items(n_single, n_single, seed=99)
    sets = {k: make_items(k, max(sizes), seed=k) for k in (1, 3, 100)}

    def loop(rule: ed25519.Rule, items: list[Item]) -> Callable[[], None]:
        def go() -> None:
            for pk, m, s in items:
                if not ed25519.verify(pk, m, s, rule):
                    raise AssertionError("valid signature rejected")
        return go

    def batch(items: list[Item]) -> Callable[[], None]:
        def go() -> None:
            if not all(ed25519.verify_batch(items)):
                raise AssertionError("valid batch rejected")
        return go

    def one_round() -> dict[tuple[str, Key], float]:
        out: dict[tuple[str, Key], float] = {}
        for workload, items, keys in (("single", one, 1), ("single-new-key", distinct, n_single)):
            for name, r in interleaved_rates(
                [("ours zip215", loop("zip215", items)),
                 ("ours cofactorless", loop("cofactorless", items))],
                n_single,
            ):
                out[(name, (workload, n_single, keys))] = r
        for k, every in sets.items():
            for n in sizes:
                out[("ours verify_batch", ("batch", n, k))] = rate(
                    batch(every[:n]), n, reps_for(n))
        return out

    return one_round


@dataclass(frozen=True)
class RowSpec:
    label: str
    key: Key
    ours: str
    dalek: str | None
    zebra: str | None


def row_specs(quick: bool) -> list[RowSpec]:
    n_single = 2000 if quick else 5000
    sizes = [64, 1000, 16000] if quick else [64, 1000, 16000, 100000]
    specs = []
    for workload, keys, what in (("single", 1, "one key"),
                                 ("single-new-key", n_single, "a new key per signature")):
        key = (workload, n_single, keys)
        specs.append(RowSpec(f"single, {what}: ZIP-215 (ours zip215, zebra verify)", key,
                             "ours zip215", None, "zebra verify"))
        specs.append(RowSpec(f"single, {what}: cofactorless (ours cofactorless, dalek verify)",
                             key, "ours cofactorless", "dalek verify", None))
    for k in (1, 3, 100):
        for n in sizes:
            specs.append(RowSpec(f"batch n={n}, {k} key{'s' if k > 1 else ''}", ("batch", n, k),
                                 "ours verify_batch", "dalek verify_batch",
                                 "zebra batch::Verifier"))
    return specs


def render(quick: bool, ours: dict[tuple[str, Key], float], built: list[Built],
           figures: dict[str, list[Figure]]) -> str:
    def best(impl: str | None, key: Key) -> tuple[float, str] | None:
        if impl is None:
            return None
        cands = [(f.sig_per_s, b.build.tag) for b in built for f in figures.get(b.build.name, [])
                 if f.impl == impl and (f.workload, f.n, f.keys) == key]
        return max(cands) if cands else None

    def cell(v: tuple[float, str] | None) -> str:
        return "—" if v is None else f"{v[0]:,.0f} [{v[1]}]"

    ok = [b for b in built if figures.get(b.build.name)]
    lines = [
        "Builds of bench/rust. curve25519-dalek 5 compiles its AVX-512 IFMA backend when the "
        "target enables avx512ifma and avx512vl (here `-C target-cpu=native`) or when asked "
        "with `--cfg curve25519_dalek_backend=\"avx512\"` (then it is picked at run time from "
        "the CPU, as our extension picks its IFMA path); since rustc 1.89 that works on stable "
        "(its 4.x releases needed a nightly). The backend below is the one each build ran "
        "(the build's backend set, reported by bench/rust/build.rs, and the CPU's features), "
        "checked against the vector backends present in the binary's symbols:",
        "",
    ]
    for b in built:
        flags = " ".join(b.build.rustflags) or "none"
        if figures.get(b.build.name):
            lines.append(f"- [{b.build.tag}] `{b.rustc}` ({b.build.toolchain}), RUSTFLAGS "
                         f"`{flags}`: backend **{b.backend}** (vector backends in the binary: "
                         f"{b.backend_check})")
        else:
            lines.append(f"- [{b.build.tag}] {b.build.toolchain}, RUSTFLAGS `{flags}`: no "
                         f"figures ({b.error})")
    lines += [
        "",
        "Rules: ours zip215 and zebra (verify, batch::Verifier) check ZIP-215 (cofactored), "
        "the same rule, so those columns compare like with like. Ours cofactorless is Go's "
        "crypto/ed25519 rule; dalek's verify (cofactorless, non-canonical s refused) is the "
        "closest anchor, and dalek's verify_strict (which also refuses small-order A and R) is "
        "in the per-build table. Dalek's verify_batch checks the cofactorless batch equation "
        "(†, a different rule: it can refuse a batch whose members each pass verify). Ours "
        "returns a verdict per signature, both anchors one verdict per batch.",
        "",
        "Best build per cell, tag in brackets; ratio = ours / the faster anchor of the row.",
        "",
        "| workload (rule) | ours sig/s | dalek | zebra | ours / best |",
        "|---|---:|---:|---:|---:|",
    ]
    for spec in row_specs(quick):
        mine = ours.get((spec.ours, spec.key))
        d, z = best(spec.dalek, spec.key), best(spec.zebra, spec.key)
        anchors = [v[0] for v in (d, z) if v is not None]
        ratio = f"{mine / max(anchors):.2f}" if mine and anchors else "—"
        dcell = cell(d) + (" †" if d is not None and spec.key[0] == "batch" else "")
        lines.append(f"| {spec.label} | {mine:,.0f} | {dcell} | {cell(z)} | {ratio} |"
                     if mine else f"| {spec.label} | — | {dcell} | {cell(z)} | — |")
    if ok:
        lines += ["", "Every anchor figure by build (sig/s):", "",
                  "| anchor | workload | " + " | ".join(f"[{b.build.tag}] {b.backend}"
                                                     for b in ok) + " |",
                  "|---|---|" + "---:|" * len(ok)]
        first = figures[ok[0].build.name]
        for f in first:
            key = (f.workload, f.n, f.keys)
            vals = []
            for b in ok:
                v = [g.sig_per_s for g in figures[b.build.name]
                     if g.impl == f.impl and (g.workload, g.n, g.keys) == key]
                vals.append(f"{v[0]:,.0f}" if v else "—")
            what = {"single": f"single, one key (n={f.n})",
                    "single-new-key": f"single, a new key per signature (n={f.n})"}.get(
                        f.workload, f"batch n={f.n}, {f.keys} key{'s' if f.keys > 1 else ''}")
            lines.append(f"| {f.impl} | {what} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def crate_versions() -> str:
    lock = (RUST / "Cargo.lock").read_text()
    versions = {}
    for block in lock.split("[[package]]"):
        fields = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (line.partition("=") for line in block.splitlines() if "=" in line)
        )
        if fields.get("name") in ("ed25519-dalek", "ed25519-zebra", "curve25519-dalek"):
            versions[fields["name"]] = fields.get("version", "?")
    return ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (no n=100k)")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over ours and every build (default 3)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"crates: {crate_versions()}")
    if shutil.which("cargo") is None:
        # bench/run.py (`make bench`) runs every bench_*.py; without Rust this one skips.
        print("skipped: cargo not found (install Rust with rustup to time the Rust anchors)")
        return 0
    # Every build first, so compiling (both cores busy) overlaps no timing.
    built = [cargo_build(b) for b in builds()]
    if not any(b.binary for b in built):
        print("no Rust build succeeded; nothing to compare", file=sys.stderr)
        return 1
    # Round-robin: ours, then every build, `--rounds` times; each figure is the fastest over
    # the rounds, so a burst of load from other jobs does not land on one column only.
    one_round = prepare_ours(args.quick)
    ours: dict[tuple[str, Key], float] = {}
    figures: dict[str, list[Figure]] = {}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: timing ours", flush=True)
        for key, v in one_round().items():
            ours[key] = max(v, ours.get(key, 0.0))
        for b in built:
            if b.binary is not None and (r == 0 or figures.get(b.build.name)):
                figures[b.build.name] = merge(figures.get(b.build.name, []),
                                              run_rust(b, args.quick))
    table = render(args.quick, ours, built, figures)
    print(table)
    if args.write_docs:
        _, suffix, env = native_path()
        replace_section(
            SECTION + suffix,
            f"`{env}nice -n 10 python bench/bench_rust.py{' --quick' if args.quick else ''} "
            "--write-docs` (`make bench-rust`) — bench/rust built with cargo `--release` "
            f"({crate_versions()}, from crates.io), one thread, 32-byte messages, the "
            "workloads of bench_verify.py (section \"Ed25519 verification\"), every column "
            "from the same run: "
            f"{args.rounds} rounds, each timing ours and then every build in turn, and every "
            "figure the fastest over the rounds of 5 repetitions (3 for n >= 16k, 2 for "
            "n = 100k). "
            f"Machine: {machine()}. The machine is shared (2 cores, other jobs running), so "
            "the absolute figures are noisy. Timed calls start from bytes (keys and "
            "signatures decoded inside the timing), except the one-key singles, where each "
            "verifier keeps its decoded key; ours are Python calls (verifier.ed25519), the "
            "anchors native Rust loops.\n\n"
            f"{table}\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
