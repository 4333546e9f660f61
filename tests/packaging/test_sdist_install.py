"""The distribution as a fresh machine gets it: the sdist built from the working tree carries
what compiling `verifier._native` needs, installs into a new venv (build dependencies fetched
from the package index pip is configured with), and the installed `tka` works, native core
included, from outside the source tree. Then `pip install .` from a clean clone, the same way.

Each step runs in a copy of the tree (tracked and new files, as `git` lists them), so nothing
here writes into the working tree and nothing of the working tree is imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

# Run by the venv's interpreter with cwd outside the tree: verifies with the native core,
# creates a one-key authority in the directory given (Authority.create verifies its genesis
# signature natively) and says where the modules came from.
PROBE = """
import sys
from pathlib import Path
import nacl.signing
import verifier, verifier._native
from verifier import ed25519
from verifier.authority import Authority, new_state_ids
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage
from verifier.textforms import format_tlpub

sk = nacl.signing.SigningKey(bytes(range(32)))
pk = bytes(sk.verify_key)
sig = sk.sign(b"tka").signature
assert ed25519.verify(pk, b"tka", sig)
assert not ed25519.verify(pk, b"tkb", sig)
assert ed25519.verify_batch([(pk, b"tka", sig), (pk, b"tkb", sig)]) == [True, False]
id1, id2 = new_state_ids()
state = State(disablement_values=(disablement_kdf(b"s" * 32),), keys=(ed25519_key(pk),),
              state_id1=id1, state_id2=id2)
signer = AUMSigner.over_digest(pk, lambda d: sk.sign(d).signature)
Authority.create(FilesystemStorage(Path(sys.argv[1])), state, signer)
print(verifier.__file__)
print(verifier._native.__file__)
print(format_tlpub(pk))
"""


# The installed distribution's file list and metadata, NUL-separated.
INSTALLED = """
from importlib.metadata import distribution
d = distribution("tka-signer")
print("\\n".join(str(f) for f in d.files or ()), d.read_text("METADATA"), sep="\\0", end="")
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*cmd: str | Path, cwd: Path, timeout: float = 120) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (cmd, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


def _clean_clone(dest: Path) -> Path:
    """The files a clean clone with the working tree's changes holds: tracked (unless deleted)
    and untracked-but-not-ignored ones. No build/, egg-info, compiled extension or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clean clone has")
    root = tmp_path_factory.mktemp("packaging")
    _clean_clone(root / "src")
    yield root


@pytest.fixture(scope="module")
def venv(work: Path) -> Venv:
    v = Venv(work / "venv")
    _run(sys.executable, "-m", "venv", v.root, cwd=work)
    _run(v.python, "-m", "pip", "install", "-q", "build", cwd=work)
    return v


def _members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        top = f"tka_signer-{VERSION}/"
        return {m.name.removeprefix(top) for m in tar.getmembers() if m.isfile()}


def _check_installed(venv: Venv, where: Path) -> None:
    """`tka` from the venv, cwd outside the tree: the version, the native core, a command."""
    site = _run(venv.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=where).strip()
    assert _run(venv.bin("tka"), "--version", cwd=where).strip() == f"tka {VERSION}"
    authority = where / "authority"
    shutil.rmtree(authority, ignore_errors=True)
    probe = where / "probe.py"
    probe.write_text(PROBE)
    package, native, tlpub = _run(venv.python, probe, authority, cwd=where).split()
    assert Path(package).is_relative_to(site), package
    assert Path(native).is_relative_to(site) and Path(native).suffix == ".so", native
    assert not Path(package).is_relative_to(REPO)
    status = _run(venv.bin("tka"), "status", "--authority", authority, cwd=where)
    assert "Tailnet Lock is ENABLED." in status and tlpub in status
    log = _run(venv.bin("tka"), "log", "--authority", authority, cwd=where)
    assert "(checkpoint)" in log and tlpub in log


def test_sdist_carries_the_native_build_and_installs_in_a_fresh_venv(
    work: Path, venv: Venv
) -> None:
    dist = work / "dist"
    _run(venv.python, "-m", "build", "--sdist", "--outdir", dist, work / "src", cwd=work)
    (sdist,) = dist.glob("*.tar.gz")
    members = _members(sdist)
    native = {str(p.relative_to(REPO)) for p in (REPO / "native").rglob("*")
              if p.suffix in {".c", ".h"}}
    needed = {"native/build.py", "native/include/tka_native.h", "LICENSE", "setup.py",
              "pyproject.toml", "README.md", "verifier/py.typed"}
    assert needed | native <= members, sorted((needed | native) - members)
    assert not any(m.endswith((".so", ".o")) or "__pycache__" in m for m in members)

    # pip builds a wheel from the sdist alone and installs it: the compiled extension and the
    # licence are among the files it installed.
    _run(venv.python, "-m", "pip", "install", "-q", sdist, cwd=work, timeout=300)
    record, meta = _run(venv.python, "-c", INSTALLED, cwd=work).split("\0")
    assert any(n.startswith("verifier/_native") and n.endswith(".so") for n in record.split())
    assert f"tka_signer-{VERSION}.dist-info/licenses/LICENSE" in record.split()
    assert "License-Expression: BSD-3-Clause" in meta
    outside = work / "outside-sdist"
    outside.mkdir()
    _check_installed(venv, outside)


def test_pip_install_dot_from_a_clean_clone(work: Path, venv: Venv) -> None:
    _run(venv.python, "-m", "pip", "uninstall", "-q", "-y", "tka-signer", cwd=work)
    _run(venv.python, "-m", "pip", "install", "-q", ".", cwd=work / "src", timeout=300)
    outside = work / "outside-clone"
    outside.mkdir()
    _check_installed(venv, outside)
