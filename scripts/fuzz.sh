#!/usr/bin/env bash
# Fuzzes the native core with libFuzzer for N seconds (default 1800), starting from the
# committed corpus, then merges whatever new coverage it found back into tests/fuzz/corpus
# (minimized). Crashes are written to build/fuzz/artifacts/ and make the script fail.
#   bash scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-1800}

source scripts/apt.sh
ensure_apt_packages clang libclang-rt-14-dev

CC=clang cmake -S . -B build/fuzz -DTKA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz --target fuzz_tka -j2 >/dev/null
work=build/fuzz/work
rm -rf "$work" && mkdir -p "$work" build/fuzz/artifacts
cp tests/fuzz/corpus/* "$work"/
build/fuzz/fuzz_tka "$work" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -timeout=10 \
    -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/
# Keep the corpus small: the minimal set of inputs that covers what the old corpus and
# this run's findings cover together.
merged=build/fuzz/merged
rm -rf "$merged" && mkdir -p "$merged"
build/fuzz/fuzz_tka -merge=1 "$merged" tests/fuzz/corpus "$work" >/dev/null 2>&1
rm -f tests/fuzz/corpus/* && cp "$merged"/* tests/fuzz/corpus/
echo "fuzz: corpus now has $(ls tests/fuzz/corpus | wc -l) inputs" >&2
