//! Records, for the report, which rustc built this binary, with which flags, and which
//! curve25519-dalek backends that build compiled in. curve25519-dalek does not export its
//! backend choice, so this repeats the rule of its build.rs (v5.0): an explicit
//! `--cfg curve25519_dalek_backend=...` wins; otherwise x86-64 gets `simd` (AVX2, picked at
//! run time), plus `avx512` (AVX-512 IFMA, picked at run time) when the target enables
//! `avx512ifma` and `avx512vl` (e.g. `-C target-cpu=native` on an IFMA CPU) and rustc is
//! >= 1.89 or a nightly. bench_rust.py cross-checks the claim against the binary's symbols.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown rustc".into());
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .split('\x1f')
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join(" ");

    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    let x86_64 = env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && env::var("CARGO_CFG_TARGET_POINTER_WIDTH").as_deref() == Ok("64");
    let new_enough = version_at_least(&version, 89) || version.contains("nightly");
    let compiled = match env::var("CARGO_CFG_CURVE25519_DALEK_BACKEND").as_deref() {
        Ok("fiat") => "fiat",
        Ok("serial") => "serial",
        Ok("simd") => "simd,serial",
        Ok("avx512") => "avx512,simd,serial",
        _ if x86_64 && new_enough && has("avx512ifma") && has("avx512vl") => "avx512,simd,serial",
        _ if x86_64 => "simd,serial",
        _ => "serial",
    };
    println!("cargo:rustc-env=BENCH_RUSTC={version}");
    println!("cargo:rustc-env=BENCH_RUSTFLAGS={flags}");
    println!("cargo:rustc-env=BENCH_DALEK_COMPILED={compiled}");
}

/// True if `rustc 1.M.x ...` has M >= minor.
fn version_at_least(version: &str, minor: u32) -> bool {
    version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= minor)
}
