"""`tka --version`, and the runtime dependencies pyproject.toml declares are exactly what the
runtime imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_distributions() -> None:
    proc = subprocess.run([sys.executable, "-m", "signer.cli", "--version"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"tka {version('tka-signer')}"


def test_the_runtime_imports_no_undeclared_or_test_only_package() -> None:
    # Every command module, and the service, loaded in a fresh interpreter: which third-party
    # top-level packages came in?
    probe = (
        "import sys, signer.cli, control.http, control.service\n"
        "from signer.cli import COMMAND_MODULES\n"
        "import importlib\n"
        "[importlib.import_module(m) for m in COMMAND_MODULES]\n"
        "import signer.backends.pkcs11, signer.backends.appliance.backend\n"
        # What is imported only where it is used (start-up time, issue 14 item 4).
        "from verifier.disablement import disablement_kdf; disablement_kdf(b'')\n"
        "print('\\n'.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    modules = {"cffi": "_cffi_backend", "cbor2": "cbor2", "PyNaCl": "nacl",
               "argon2-cffi": "argon2", "python-pkcs11": "pkcs11", "pyserial": "serial",
               "shtab": "shtab"}
    names = [d.split(">")[0].split("=")[0].strip() for d in declared]
    assert set(names) == set(modules), "a runtime dependency without a module to check"
    for name in names:
        assert modules[name] in loaded, f"{name} is declared but the runtime never imports it"
    # Nothing else from outside the standard library, but what python-pkcs11 itself loads.
    third_party = {m for m in loaded if m not in sys.stdlib_module_names
                   and not m.startswith("_") and m not in {"signer", "verifier", "control"}}
    assert third_party <= set(modules.values()) | {"asn1crypto", "certifi"}, third_party
