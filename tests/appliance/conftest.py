"""Fixtures for the appliance's host side against the real firmware stub.

- `stub`: a fresh stub process (its own flash file and UI socket) reached through its pty;
  killed at the end of the test. Built first if `build/stub` has no binary yet.
- `pins`: the identity-pin file in the test's own data directory (`XDG_DATA_HOME` is pointed
  at `tmp_path`, so `tka` subprocesses use it too).
- `ready`: the stub set up with a random PIN, a key `admin`, a genesis signed by that key and
  the device enrolled in it (`signer.backends.appliance.stubkit.provision`).
- `tka_env`: the environment for `python -m signer.cli appliance …` subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from signer.appliance_stub import DEFAULT_STUB, REPO_ROOT, STUB_ENV, ApplianceStub

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # bench.lineproxy, bench.soak_appliance
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.stubkit import Provisioned, provision


@pytest.fixture(scope="session")
def stub_built() -> Path:
    """The stub binary; built with CMake (as scripts/setup.sh does) when it is missing."""
    override = os.environ.get(STUB_ENV)
    if override:
        return Path(override)
    if not DEFAULT_STUB.is_file():
        build = REPO_ROOT / "build" / "stub"
        subprocess.run(["cmake", "-S", str(REPO_ROOT), "-B", str(build),
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "tka-appliance-stub",
                        "-j2"], check=True, capture_output=True)
    return DEFAULT_STUB


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("TKA_APPLIANCE_PIN", raising=False)
    monkeypatch.delenv("TKA_APPLIANCE_DEVICE", raising=False)
    return home


@pytest.fixture
def pins(data_home: Path) -> IdentityPins:
    return IdentityPins()


@pytest.fixture
def stub(stub_built: Path, tmp_path: Path) -> Iterator[ApplianceStub]:
    device = ApplianceStub(tmp_path / "device", binary=stub_built).start()
    try:
        yield device
    finally:
        device.kill()


@pytest.fixture
def ready(stub: ApplianceStub, pins: IdentityPins) -> Iterator[Provisioned]:
    provisioned = provision(stub, pins=pins)
    try:
        yield provisioned
    finally:
        provisioned.backend.close()


@pytest.fixture
def tka_env(data_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(data_home)
    env.pop("TKA_APPLIANCE_PIN", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env

