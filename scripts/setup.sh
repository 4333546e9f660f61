#!/usr/bin/env bash
# Installs everything tka-signer needs on a fresh Debian (bookworm) machine, as root, and
# builds the project in place. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# graphviz: `dot` for `tka log --graph=svg` (and its test).
APT_PACKAGES=(softhsm2 opensc libsodium-dev pkg-config build-essential cmake libgtest-dev graphviz)

source scripts/apt.sh
ensure_apt_packages "${APT_PACKAGES[@]}"

PYTHON=${PYTHON:-python3}
echo "setup: installing Python packages and building the native core" >&2
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[dev]"

echo "setup: building the appliance firmware stub (build/stub)" >&2
cmake -S . -B build/stub -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/stub --target tka-appliance-stub -j2 >/dev/null

if [ -f tests/interop/go.mod ]; then
    echo "setup: fetching Go modules for the interop oracle" >&2
    # go.mod names the toolchain the reference needs; GOTOOLCHAIN=auto fetches it from the proxy.
    (cd tests/interop && export GOTOOLCHAIN=auto && go mod download && go build -p 2 -o tka-interop .)
fi

if [ -f tests/realnet/go.mod ]; then
    # Real tailscaled and tailscale from the pinned tailscale.com module, and the control
    # server around Tailscale's test control server (tests/realnet). Rebuilt only when the
    # module or the harness changed; the first build takes a few minutes.
    bin=tests/realnet/bin
    stamp="$bin/.built"
    if [ ! -f "$stamp" ] || [ ! -x "$bin/tailscaled" ] || [ ! -x "$bin/tailscale" ] ||
        [ ! -x "$bin/realnet-control" ] ||
        [ -n "$(find tests/realnet/go.mod tests/realnet/go.sum tests/realnet/harness -newer "$stamp" -print -quit)" ]; then
        echo "setup: building tailscaled, tailscale and realnet-control (tests/realnet)" >&2
        (cd tests/realnet && export GOTOOLCHAIN=auto && go mod download &&
            go build -p 2 -o bin/ tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale &&
            go build -p 2 -o bin/realnet-control ./harness)
        touch "$stamp"
    fi
fi
