# Entry points. `make demo` and `make test` each set everything up first (scripts/setup.sh).
PYTHON ?= python3
.PHONY: setup demo test test-python test-c lint bench bench-c bench-rust fuzz clean

setup:
	bash scripts/setup.sh

demo: setup
	$(PYTHON) -m signer.demo

test: setup lint test-c test-python

# The appliance tests drive the firmware stub; after test-c they drive its ASan/UBSan build, so
# every hostile frame and call the Python tests send also runs under the sanitizers.
SANITIZED_STUB := build/c/firmware_stub/tka-appliance-stub
test-python:
	@if [ -x $(SANITIZED_STUB) ]; then echo "test-python: appliance stub under ASan/UBSan ($(SANITIZED_STUB))"; fi
	if [ -x $(SANITIZED_STUB) ]; then export TKA_APPLIANCE_STUB=$(CURDIR)/$(SANITIZED_STUB); fi; \
	$(PYTHON) -m pytest -q

test-c:
	cmake -S . -B build/c -DCMAKE_BUILD_TYPE=Debug -DTKA_SANITIZE=ON >/dev/null
	cmake --build build/c -j2
	ctest --test-dir build/c --output-on-failure
	# The threaded bulk path once more under ThreadSanitizer, in its own build tree.
	cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DTKA_TSAN=ON >/dev/null
	cmake --build build/tsan --target test_peers_threads -j2
	TSAN_OPTIONS=halt_on_error=1 build/tsan/test_peers_threads

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

bench: setup
	$(PYTHON) bench/run.py

# The native core timed from C (no Python in the loop), Release build, inputs made by Python.
bench-c: setup
	cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build/bench --target bench_native -j2
	$(PYTHON) bench/make_native_inputs.py build/bench/inputs
	build/bench/bench_native build/bench/inputs

# Our verifier beside ed25519-dalek and ed25519-zebra (bench/rust, built with cargo from
# crates.io; needs a Rust toolchain, uses a nightly one too where rustup has it).
bench-rust: setup
	nice -n 10 $(PYTHON) bench/bench_rust.py

# libFuzzer over the native core (installs clang); FUZZ_SECONDS defaults to 30 minutes.
FUZZ_SECONDS ?= 1800
fuzz: setup
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build *.egg-info verifier/_native*.so tests/interop/tka-interop bench/rust/target
