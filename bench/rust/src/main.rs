//! The Rust anchors of bench/bench_rust.py: ed25519-dalek and ed25519-zebra timed on the
//! workloads of bench/bench_verify.py, one thread, 32-byte messages, fastest of k repetitions
//! (k = --reps, and at least 20000 / n for batches below 16k; --reps-large for n >= 16k,
//! --reps-huge for n >= 100k).
//!
//!     tka-rust-anchors [--seed S] [--n-single N] [--sizes 64,1000,...] [--keys 1,3,100]
//!                      [--reps R] [--reps-large R] [--reps-huge R]
//!
//! Prints one JSON object per line:
//!   {"impl", "rule", "workload", "n", "keys", "sig_per_s", "reps", "toolchain", "backend",
//!    "rustflags"}
//! Every timed call starts from bytes (32-byte keys, 64-byte signatures, 32-byte messages),
//! as our verifier's Python API does: decoding keys and signatures is part of the time, except
//! in the "single" workload, where the one key is decoded once (a cached key object, like the
//! PyNaCl row of bench_verify.py). Inputs are deterministic in the seed.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ed25519_zebra::batch as zbatch;
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;

struct Item {
    pk: [u8; 32],
    msg: [u8; 32],
    sig: [u8; 64],
}

/// SplitMix64: a small deterministic generator for the messages.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

/// `n` signatures from `n_keys` keys used in turn; key i's secret is the seed (4 bytes LE),
/// then i (2 bytes LE), then zeros, as in bench_verify.make_items.
fn make_items(n_keys: usize, n: usize, seed: u32) -> Vec<Item> {
    let keys: Vec<SigningKey> = (0..n_keys)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[..4].copy_from_slice(&seed.to_le_bytes());
            secret[4..6].copy_from_slice(&(i as u16).to_le_bytes());
            SigningKey::from_bytes(&secret)
        })
        .collect();
    let mut rng = SplitMix(u64::from(seed) << 32 | n as u64);
    (0..n)
        .map(|i| {
            let key = &keys[i % n_keys];
            let msg = rng.bytes32();
            Item {
                pk: key.verifying_key().to_bytes(),
                msg,
                sig: key.sign(&msg).to_bytes(),
            }
        })
        .collect()
}

/// The curve25519-dalek backend this run uses: the best one the build compiled in (see
/// build.rs) that this CPU supports, by the same run-time test curve25519-dalek makes.
fn backend() -> &'static str {
    let compiled = env!("BENCH_DALEK_COMPILED");
    let has = |b: &str| compiled.split(',').any(|c| c == b);
    #[cfg(target_arch = "x86_64")]
    {
        if has("avx512")
            && std::is_x86_feature_detected!("avx512ifma")
            && std::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if has("simd") && std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    if has("fiat") { "fiat" } else { "serial" }
}

struct Args {
    seed: u32,
    n_single: usize,
    sizes: Vec<usize>,
    keys: Vec<usize>,
    reps: usize,
    reps_large: usize,
    reps_huge: usize,
}

fn parse_list(s: &str) -> Vec<usize> {
    s.split(',')
        .map(|x| x.trim().parse().expect("a comma-separated list of numbers"))
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        seed: 20261202,
        n_single: 5000,
        sizes: vec![64, 1000, 16000, 100000],
        keys: vec![1, 3, 100],
        reps: 5,
        reps_large: 3,
        reps_huge: 2,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => a.seed = value.parse().expect("--seed"),
            "--n-single" => a.n_single = value.parse().expect("--n-single"),
            "--sizes" => a.sizes = parse_list(value),
            "--keys" => a.keys = parse_list(value),
            "--reps" => a.reps = value.parse().expect("--reps"),
            "--reps-large" => a.reps_large = value.parse().expect("--reps-large"),
            "--reps-huge" => a.reps_huge = value.parse().expect("--reps-huge"),
            _ => panic!("unknown option {flag}"),
        }
    }
    a
}

/// Fastest of `reps` rounds; in each round every function runs once, in turn, so a burst of
/// load from other jobs hits them alike. Returns seconds per call for each.
fn fastest(fns: &mut [&mut dyn FnMut()], reps: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; fns.len()];
    for _ in 0..reps {
        for (f, b) in fns.iter_mut().zip(best.iter_mut()) {
            let t0 = Instant::now();
            f();
            *b = b.min(t0.elapsed().as_secs_f64());
        }
    }
    best
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Row<'a> {
    imp: &'a str,
    rule: &'a str,
    workload: &'a str,
    n: usize,
    keys: usize,
    seconds: f64,
    reps: usize,
}

fn emit(row: &Row) {
    println!(
        "{{\"impl\": {}, \"rule\": {}, \"workload\": {}, \"n\": {}, \"keys\": {}, \
         \"sig_per_s\": {:.1}, \"reps\": {}, \"toolchain\": {}, \"backend\": {}, \
         \"rustflags\": {}}}",
        json_str(row.imp),
        json_str(row.rule),
        json_str(row.workload),
        row.n,
        row.keys,
        row.n as f64 / row.seconds,
        row.reps,
        json_str(env!("BENCH_RUSTC")),
        json_str(backend()),
        json_str(env!("BENCH_RUSTFLAGS")),
    );
}

const COFACTORLESS: &str = "cofactorless ([s]B = R + [k]A)";
const STRICT: &str = "cofactorless, small-order A and R refused";
const ZIP215: &str = "ZIP-215 (cofactored)";
const DALEK_BATCH: &str = "cofactorless batch equation, all or nothing";
const ZEBRA_BATCH: &str = "ZIP-215 batch equation (cofactored), all or nothing";

fn dalek_batch(items: &[Item]) -> bool {
    let mut decoded: HashMap<[u8; 32], VerifyingKey> = HashMap::new();
    let mut keys = Vec::with_capacity(items.len());
    for it in items {
        let vk = match decoded.get(&it.pk) {
            Some(vk) => *vk,
            None => match VerifyingKey::from_bytes(&it.pk) {
                Ok(vk) => *decoded.entry(it.pk).or_insert(vk),
                Err(_) => return false,
            },
        };
        keys.push(vk);
    }
    let sigs: Vec<Signature> = items
        .iter()
        .map(|it| Signature::from_bytes(&it.sig))
        .collect();
    let msgs: Vec<&[u8]> = items.iter().map(|it| &it.msg[..]).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

fn zebra_batch(items: &[Item]) -> bool {
    let mut v = zbatch::Verifier::new();
    for it in items {
        v.queue((
            VerificationKeyBytes::from(it.pk),
            ed25519_zebra::Signature::from_bytes(&it.sig),
            &it.msg[..],
        ));
    }
    v.verify(UnwrapErr(SysRng)).is_ok()
}

fn check(ok: bool, what: &str) {
    if !ok {
        panic!("{what}: a valid signature was rejected");
    }
}

fn singles(a: &Args) {
    let n = a.n_single;
    // One key, decoded once outside the timed loop (both libraries keep a decoded key object).
    let one = make_items(1, n, a.seed);
    let dk = VerifyingKey::from_bytes(&one[0].pk).expect("key");
    let zk = VerificationKey::try_from(one[0].pk).expect("key");
    let mut d_verify = || {
        for it in &one {
            check(
                dk.verify(&it.msg, &Signature::from_bytes(&it.sig)).is_ok(),
                "dalek verify",
            );
        }
    };
    let mut d_strict = || {
        for it in &one {
            let ok = dk
                .verify_strict(&it.msg, &Signature::from_bytes(&it.sig))
                .is_ok();
            check(ok, "dalek verify_strict");
        }
    };
    let mut z_verify = || {
        for it in &one {
            let ok = zk
                .verify(&ed25519_zebra::Signature::from_bytes(&it.sig), &it.msg)
                .is_ok();
            check(ok, "zebra verify");
        }
    };
    let t = fastest(&mut [&mut d_verify, &mut d_strict, &mut z_verify], a.reps);
    let w = "single";
    emit(&Row {
        imp: "dalek verify",
        rule: COFACTORLESS,
        workload: w,
        n,
        keys: 1,
        seconds: t[0],
        reps: a.reps,
    });
    emit(&Row {
        imp: "dalek verify_strict",
        rule: STRICT,
        workload: w,
        n,
        keys: 1,
        seconds: t[1],
        reps: a.reps,
    });
    emit(&Row {
        imp: "zebra verify",
        rule: ZIP215,
        workload: w,
        n,
        keys: 1,
        seconds: t[2],
        reps: a.reps,
    });

    // A new key per signature: the key is decoded from its bytes for every signature.
    let distinct = make_items(n, n, a.seed ^ 0x99);
    let mut d_verify = || {
        for it in &distinct {
            let vk = VerifyingKey::from_bytes(&it.pk).expect("key");
            check(
                vk.verify(&it.msg, &Signature::from_bytes(&it.sig)).is_ok(),
                "dalek verify",
            );
        }
    };
    let mut d_strict = || {
        for it in &distinct {
            let vk = VerifyingKey::from_bytes(&it.pk).expect("key");
            let ok = vk
                .verify_strict(&it.msg, &Signature::from_bytes(&it.sig))
                .is_ok();
            check(ok, "dalek verify_strict");
        }
    };
    let mut z_verify = || {
        for it in &distinct {
            let vk = VerificationKey::try_from(it.pk).expect("key");
            let ok = vk
                .verify(&ed25519_zebra::Signature::from_bytes(&it.sig), &it.msg)
                .is_ok();
            check(ok, "zebra verify");
        }
    };
    let t = fastest(&mut [&mut d_verify, &mut d_strict, &mut z_verify], a.reps);
    let w = "single-new-key";
    emit(&Row {
        imp: "dalek verify",
        rule: COFACTORLESS,
        workload: w,
        n,
        keys: n,
        seconds: t[0],
        reps: a.reps,
    });
    emit(&Row {
        imp: "dalek verify_strict",
        rule: STRICT,
        workload: w,
        n,
        keys: n,
        seconds: t[1],
        reps: a.reps,
    });
    emit(&Row {
        imp: "zebra verify",
        rule: ZIP215,
        workload: w,
        n,
        keys: n,
        seconds: t[2],
        reps: a.reps,
    });
}

fn batches(a: &Args) {
    let biggest = a.sizes.iter().copied().max().unwrap_or(0);
    for &k in &a.keys {
        let all = make_items(k, biggest, a.seed.wrapping_add(k as u32));
        // Both must refuse a batch with one corrupted signature, or the timings mean nothing.
        let mut bad: Vec<Item> = all[..64.min(biggest)]
            .iter()
            .map(|i| Item {
                pk: i.pk,
                msg: i.msg,
                sig: i.sig,
            })
            .collect();
        if let Some(last) = bad.last_mut() {
            last.sig[40] ^= 1;
            assert!(
                !dalek_batch(&bad) && !zebra_batch(&bad),
                "a corrupted batch was accepted"
            );
        }
        for &n in &a.sizes {
            let items = &all[..n];
            let reps = match n {
                100000.. => a.reps_huge,
                16000.. => a.reps_large,
                _ => a.reps.max(20000 / n),
            };
            let mut d = || {
                check(
                    black_box(dalek_batch(black_box(items))),
                    "dalek verify_batch",
                )
            };
            let mut z = || check(black_box(zebra_batch(black_box(items))), "zebra batch");
            let t = fastest(&mut [&mut d, &mut z], reps);
            let w = "batch";
            emit(&Row {
                imp: "dalek verify_batch",
                rule: DALEK_BATCH,
                workload: w,
                n,
                keys: k,
                seconds: t[0],
                reps,
            });
            emit(&Row {
                imp: "zebra batch::Verifier",
                rule: ZEBRA_BATCH,
                workload: w,
                n,
                keys: k,
                seconds: t[1],
                reps,
            });
        }
    }
}

fn main() {
    let a = parse_args();
    eprintln!(
        "{}; RUSTFLAGS=[{}]; curve25519-dalek backends compiled: {}; running: {}",
        env!("BENCH_RUSTC"),
        env!("BENCH_RUSTFLAGS"),
        env!("BENCH_DALEK_COMPILED"),
        backend()
    );
    if a.n_single > 0 {
        singles(&a);
    }
    batches(&a);
}
