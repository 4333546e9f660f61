"""One line, never a traceback (issue 11 item 5): every bad input below runs the real `tka` in a
subprocess and must end with exactly one `tka: …` line on stderr, nothing on stdout, exit code 2
for a usage error and 1 otherwise, and every state directory, key file, the service's database
and the data directory exactly as they were.

Each case runs on its own copy of one tailnet built once for the module (so cases cannot disturb
each other and run concurrently), with that copy as its working directory and data directory: a
file a failing command creates anywhere there is caught. The last-resort handler's
`internal error` line counts as a failure here, so each case passes only by its real cause.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from signer.echo import safe_text
from signer.render import log_human, log_json
from signer.softhsm import SOFTHSM_MODULE, init_softhsm_token, write_softhsm_conf
from verifier import AUM, Key

REPO = Path(__file__).resolve().parents[2]
EVIL_NAME = "mal\nlory\x1b[2J\u202e"  # a line break, a terminal command, a bidi override

# Runs argv[1:] without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (PR_CAPBSET_DROP, then exec),
# so that root, which the tests run as, is refused a mode-000 file like anyone else.
_DROP_DAC = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2):
    if libc.prctl(24, cap, 0, 0, 0):
        sys.exit(99)
os.execv(sys.argv[1], sys.argv[1:])
"""
CANNOT_DROP = 99


# -- the tailnet --------------------------------------------------------------------------------


@dataclass
class Net:
    base: Path  # the tailnet every case copies: state dirs, key files, control.db, xdg/
    cases: Path
    env: dict[str, str]
    hsm_uri: str
    blob: str  # a recovery AUM revoking `rogue`, signed by admin
    laptop_node_key: str
    laptop_lock_key: str

    def env_for(self, root: Path) -> dict[str, str]:
        return {**self.env, "XDG_DATA_HOME": str(root / "xdg")}

    def tka(
        self, root: Path, *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "signer.cli", *argv], cwd=root, input=stdin,
            env=env or self.env_for(root), capture_output=True, timeout=60,
        )

    def ok(self, node: str, *argv: str, root: Path | None = None) -> str:
        root = root or self.base
        proc = self.tka(root, *argv, "--state", str(root / node),
                        "--control", str(root / "control.db"))
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    def copy(self, name: str) -> Path:
        root = self.cases / name
        shutil.copytree(self.base, root, symlinks=True)
        return root


def _lock_public(root: Path, node: str) -> str:
    return "tlpub:" + json.loads((root / node / "node.json").read_text())["LockPublic"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Net:
    top = tmp_path_factory.mktemp("bad-input")
    base, cases = top / "base", top / "cases"
    base.mkdir()
    cases.mkdir()
    conf, _ = write_softhsm_conf(top / "softhsm")
    init_softhsm_token(conf, "bad-input", "so-pin-1234", "user-pin-1234")
    env = {
        **os.environ,
        "SOFTHSM2_CONF": str(conf),
        "TKA_PKCS11_MODULE": SOFTHSM_MODULE,
        "PYTHONPATH": str(REPO),
        # Hundreds of runs: compile the modules once, into a cache of this module's own.
        "PYTHONPYCACHEPREFIX": str(top / "pycache"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TKA_PKCS11_PIN", None)  # a PIN comes from the pin-source= under test only
    hsm_uri = "pkcs11:token=bad-input;object=k"
    n = Net(base, cases, env, hsm_uri, "", "", "")
    gen = n.tka(base, "key", "generate", hsm_uri,
                env={**n.env_for(base), "TKA_PKCS11_PIN": "user-pin-1234"})
    assert gen.returncode == 0, gen.stderr.decode()
    for name in ("backup", "rogue"):
        assert n.tka(base, "key", "generate", f"file:{base / name}.key").returncode == 0
    n.ok("admin", "node", "register", "--name", "admin")
    n.ok("laptop", "node", "register", "--name", "laptop")
    backup = n.tka(base, "key", "show", f"file:{base}/backup.key").stdout.decode().strip()
    rogue = n.tka(base, "key", "show", f"file:{base}/rogue.key").stdout.decode().strip()
    n.ok("admin", "init", "--confirm", _lock_public(base, "admin"), backup)
    n.ok("admin", "add", "--yes", rogue)
    out = n.ok("admin", "revoke-keys", rogue)  # prints the blob, changes nothing
    n.blob = re.findall(r"--cosign ([0-9A-F]+)", out)[0]
    n.ok("mallory", "node", "register", "--name", "mallory")  # after init: locked out
    for node in ("admin", "laptop", "mallory"):
        n.ok(node, "status")  # every node in sync: a failing command has nothing to catch up
    n.laptop_node_key = json.loads(n.ok("laptop", "status", "--json"))["NodeKey"]
    n.laptop_lock_key = _lock_public(base, "laptop")
    (base / "nodekeys.txt").write_text(n.laptop_node_key + "\n")
    return n


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` (type, mode, content or link target); the database by its rows,
    which do not depend on how much of them sits in the WAL."""
    out: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {mode}"
            elif not stat.S_ISREG(st.st_mode):
                out[rel] = f"special {mode}"
            elif name == ".lock" and st.st_size == 0:
                continue  # taking a node's lock creates it; it never holds anything
            elif not name.startswith("control.db"):
                out[rel] = f"file {mode} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    conn = sqlite3.connect(root / "control.db")
    try:
        out["control.db rows"] = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()
    return out


# -- the cases ----------------------------------------------------------------------------------

Setup = Callable[[Path], None]  # called with the case's copy of the tailnet


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # {root}: the case's copy; {bad}: the bad input's path; {blob}, …
    state: str | None = "admin"  # --state {root}/<state> (None: no --state, no --control)
    control: str | None = "{root}/control.db"
    code: int = 1
    says: str = ""  # a regular expression the line must match
    setup: Setup | None = None
    stdin: bytes = b""
    unprivileged: bool = False

    def __str__(self) -> str:
        return self.id


def _write(rel: str, data: bytes, mode: int = 0o600) -> Setup:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.write_bytes(data)
        path.chmod(mode)
    return setup


def _replace(rel: str, make: Callable[[Path], None]) -> Setup:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        make(path)
    return setup


BINARY = b"\xff\xfe\x00\x80binary\xc3("
DEEP_JSON = b"[" * 100_000
INFINITY_JSON = b'{"Version": 1, "Name": "admin", "NodeID": Infinity}'


def _mkdir(path: Path) -> None:
    path.mkdir()


def _mkfifo(path: Path) -> None:
    os.mkfifo(path)


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


def _loop(path: Path) -> None:
    path.symlink_to(path.name)


# A file the user names, in each way it can be bad: (setup of {bad}, what the line says).
BAD_FILES: dict[str, tuple[Setup, str, bool]] = {
    "binary": (_write("bad", BINARY), r"text|PEM", False),
    "directory": (_replace("bad", _mkdir), r"[Dd]irectory|not a regular file", False),
    "missing": (lambda root: None, r"No such file|does not exist", False),
    "dangling-link": (_replace("bad", _dangling), r"No such file|does not exist", False),
    "link-loop": (_replace("bad", _loop), r"symbolic links", False),
    "unreadable": (_write("bad", b"secret\n", 0o000), r"Permission denied", True),
}

# Commands that read a text file the user names ({bad}).
FILE_READERS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "sign": (("sign", "file:{bad}"), "admin"),
    "sign-deeplink": (("sign", "--deeplink", "file:{bad}"), "admin"),
    "disable-secret": (("disable", "--yes", "file:{bad}"), "admin"),
    "kdf-secret": (("disablement-kdf", "file:{bad}"), "admin"),
    "cosign-blob": (("revoke-keys", "--cosign", "--yes", "file:{bad}"), "admin"),
    "register-auth-key": (("node", "register", "--name", "newbie", "--auth-key", "file:{bad}"),
                          "newbie"),
    "register-control-ca": (("node", "register", "--name", "newbie", "--control-ca", "{bad}"),
                            "newbie"),
    "lock-key-file": (("add", "--yes", "--key", "file:{bad}", "{laptop_lock_key}"), "admin"),
    "key-show": (("key", "show", "file:{bad}"), None),
    "audit-peers": (("audit", "--authority", "{root}/admin/tka", "--peers", "{bad}"), None),
    "sign-nodekeys-in": (("key", "sign-nodekeys", "--key", "file:{root}/backup.key", "--in",
                          "{bad}", "--out", "-", "--unchecked", "--yes"), None),
    "pin-source": (("key", "sign-nodekeys", "--key", "{hsm_uri}?pin-source=file:{bad}", "--in",
                    "{root}/nodekeys.txt", "--out", "-", "--unchecked", "--yes"), None),
}


def _file_cases() -> Iterator[Case]:
    for command, (argv, state) in FILE_READERS.items():
        for kind, (setup, says, unprivileged) in BAD_FILES.items():
            yield Case(f"{command}/{kind}", argv, state, setup=setup, says=says,
                       unprivileged=unprivileged)


# The node's own state, corrupted: (setup, what the line says).
BAD_STATE: dict[str, tuple[Setup, str]] = {
    "node.json-binary": (_write("admin/node.json", BINARY), "node.json is corrupt"),
    "node.json-deep": (_write("admin/node.json", DEEP_JSON), "node.json is corrupt"),
    "node.json-infinity": (_write("admin/node.json", INFINITY_JSON), "node.json is corrupt"),
    "node.json-directory": (_replace("admin/node.json", _mkdir), "node.json is not a regular"),
    "node.json-fifo": (_replace("admin/node.json", _mkfifo), "node.json is not a regular"),
    "node.key-binary": (_write("admin/node.key", BINARY), "node.key: not text"),
    "node.key-directory": (_replace("admin/node.key", _mkdir), "node.key is not a regular"),
    "credential-binary": (_write("admin/node.credential", BINARY), "node.credential"),
    "credential-directory": (_replace("admin/node.credential", _mkdir), "node.credential"),
    "tka-is-a-file": (_replace("admin/tka", lambda p: p.write_bytes(BINARY)), "tka is not a dir"),
    "lock-file-directory": (_replace("admin/.lock", _mkdir), ".lock is not a regular"),
    "state-is-a-file": (_replace("admin", lambda p: p.write_bytes(BINARY)), "is not a directory"),
}


def _state_cases() -> Iterator[Case]:
    commands = {"status": ("status",), "add": ("add", "--yes", "{laptop_lock_key}")}
    for command, argv in commands.items():
        for kind, (setup, says) in BAD_STATE.items():
            yield Case(f"{command}/{kind}", argv, setup=setup, says=re.escape(says))
    yield Case("status/state-under-a-file", ("status",), "bad/node",
               setup=_write("bad", b"x"), says="no node state")


# A new node's state directory with something in the way.
REGISTER_STATE: dict[str, tuple[Setup, str]] = {
    "node.json-directory": (_replace("newbie/node.json", _mkdir), "node.json is not a regular"),
    "node.json-deep": (_write("newbie/node.json", DEEP_JSON), "node.json is corrupt"),
    "node.key-directory": (_replace("newbie/node.key", _mkdir), "node.key is not a regular"),
    "lock.key-directory": (_replace("newbie/lock.key", _mkdir), "lock.key is not a regular"),
    "credential-directory": (_replace("newbie/node.credential", _mkdir), "node.credential"),
    "state-is-a-file": (_write("newbie", BINARY), "is not a directory"),
    "state-under-a-file": (_write("newbie", BINARY), "Not a directory"),
}


def _register_cases() -> Iterator[Case]:
    for kind, (setup, says) in REGISTER_STATE.items():
        state = "newbie/x" if kind == "state-under-a-file" else "newbie"
        yield Case(f"register/{kind}", ("node", "register", "--name", "newbie"), state,
                   setup=setup, says=re.escape(says))
    yield Case("register/node.key-binary", ("node", "register", "--name", "newbie"), "newbie",
               setup=_write("newbie/node.key", BINARY), says="node.key: not text")


# Known failures, owned elsewhere: each case id with why it fails.
KNOWN: dict[str, str] = {}  # case id -> why it is known to fail (a strict xfail)


# --control that cannot work: (value, exit code, what the line says).
BAD_CONTROL: dict[str, tuple[str, int, str]] = {
    "ipv6-unclosed": ("http://[::1", 2, "not a valid URL"),
    "port-out-of-range": ("http://127.0.0.1:99999", 2, "Port out of range"),
    "port-not-a-number": ("http://127.0.0.1:port", 2, "not a valid URL"),
    "ftp": ("ftp://x", 2, "use http://HOST:PORT"),
    "no-host": ("http://", 2, "names no host"),
    "space": ("http://a b", 2, "no spaces"),
    "db-directory": ("{root}/admin/tka", 1, "is not a file"),
    "db-binary": ("{root}/nodekeys.txt", 1, "not a database|unusable"),
    "db-under-a-file": ("{root}/nodekeys.txt/control.db", 1, "nodekeys.txt/control.db"),
}


def _control_cases() -> Iterator[Case]:
    for kind, (value, code, says) in BAD_CONTROL.items():
        yield Case(f"status/control-{kind}", ("status",), control=value, code=code, says=says)
        if kind != "db-under-a-file":  # registration creates the database where it is told
            yield Case(f"register/control-{kind}", ("node", "register", "--name", "newbie"),
                       "newbie", control=value, code=code, says=says)
    # Only registration creates a service's database: anything else names the missing file.
    missing = "{root}/nothing/control.db"
    for command, argv in {
        "status": ("status",),
        "log": ("log",),
        "add": ("add", "--yes", "{laptop_lock_key}"),
        "sign": ("sign", "--yes", "{laptop_node_key}"),
        "disable": ("disable", "--yes", "disablement-secret:" + "00" * 32),
        "local-disable": ("local-disable", "--yes"),
        "cosign": ("revoke-keys", "--cosign", "--yes", "{blob}"),
    }.items():
        yield Case(f"{command}/control-missing", argv, control=missing,
                   says="no coordination database at .*nothing/control.db")
    yield Case("status/control-default-missing", ("status",), control=None,
               says="no coordination database at .*xdg/tka/control.sqlite")


USAGE: dict[str, tuple[str, ...]] = {
    "unknown-command": ("frobnicate",),
    "unknown-option": ("status", "--frobnicate"),
    "bad-int": ("log", "--limit", "many"),
    "bad-bool": ("remove", "--re-sign=maybe", "tlpub:00"),
    "missing-required": ("node", "register"),
    "node-without-subcommand": ("node",),
    "key-without-subcommand": ("key",),
    "appliance-without-subcommand": ("appliance",),
    "offline-without-step": ("offline",),
    "status-argument": ("status", "extra"),
    "bad-json-version": ("status", "--json=yes"),
    "bad-node-key": ("sign", "nodekey:zz"),
}


def _usage_cases() -> Iterator[Case]:
    for kind, argv in USAGE.items():
        state = "admin" if kind.startswith(("status", "bad-")) else None
        yield Case(f"usage/{kind}", argv, state, control="{root}/control.db" if state else None,
                   code=2)
    # No command is `tka status` with its defaults (as `tailscale lock` alone is `lock status`):
    # here a data directory without a node, so status's own one line.
    yield Case("usage/no-command", (), None, None, code=1,
               says=r"^tka: no node state in .*xdg/tka/node; run 'tka node register")


LONG = "x" * 5000


def _long_cases() -> Iterator[Case]:
    """What the user typed is repeated cut to a bounded length (signer.echo.ECHO_LIMIT)."""
    yield Case("long/option", ("status", "--" + LONG), None, None, code=2)
    yield Case("long/json-version", ("status", "--json=" + LONG), code=2)
    yield Case("long/file-argument", ("sign", f"file:{{root}}/{'y/' * 2000}secret"))
    yield Case("long/state", ("status",), "z/" * 1500)
    yield Case("long/state-name-too-long", ("status",), "n" * 300, says="File name too long")
    yield Case("long/control-url", ("status",), control="http://" + "h" * 3000 + ":1")
    yield Case("long/peers-path", ("audit", "--authority", "{root}/admin/tka", "--peers",
                                   "{root}/" + "p/" * 2000), None)


def _other_cases() -> Iterator[Case]:
    # Co-signing a recovery needs a key trusted where it forks: refused before anything signs.
    yield Case("cosign/untrusted-node-key", ("revoke-keys", "--cosign", "--yes", "{blob}"),
               "laptop", says="is not trusted at .* where the recovery forks")
    yield Case("cosign/untrusted-key-flag", ("revoke-keys", "--cosign", "--yes", "--key",
                                             "file:{root}/rogue.key", "{blob}"),
               says="is not trusted at .* where the recovery forks")
    yield Case("cosign/already-signed", ("revoke-keys", "--cosign", "--yes", "{blob}"),
               says="already signed")
    yield Case("cosign/deep-cbor", ("revoke-keys", "--cosign", "--yes", "81" * 5000 + "00"),
               says="nesting")
    yield Case("stdin/binary-secret", ("disable", "--yes"), stdin=BINARY + b"\n",
               says="disablement secret on stdin is not UTF-8")
    yield Case("stdin/binary-peers", ("audit", "--authority", "{root}/admin/tka", "--peers",
                                      "-"), None, None, stdin=BINARY, says="stdin is not UTF-8")
    yield Case("stdin/binary-node-keys", ("key", "sign-nodekeys", "--key",
                                          "file:{root}/backup.key", "--in", "-", "--out", "-",
                                          "--unchecked", "--yes"),
               None, None, stdin=BINARY, says="stdin is not UTF-8")
    yield Case("audit/authority-is-a-file", ("audit", "--authority", "{root}/nodekeys.txt",
                                             "--peers", "/dev/null"), None, None,
               says="is not a directory")
    yield Case("tka/aum-file-corrupt", ("status",), setup=_corrupt_an_aum, says="corrupt")


def _corrupt_an_aum(root: Path) -> None:
    aum = next(p for p in sorted((root / "admin" / "tka").rglob("*"))
               if p.is_file() and len(p.name) == 52)
    aum.write_bytes(BINARY)


CASES = [*_file_cases(), *_state_cases(), *_register_cases(), *_control_cases(),
         *_usage_cases(), *_long_cases(), *_other_cases()]
assert len({str(c) for c in CASES}) == len(CASES), "case ids must be unique"


# -- running them -------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: bytes
    stderr: str
    changes: list[str]


def _fill(text: str, net: Net, root: Path) -> str:
    for name, value in (("{root}", str(root)), ("{blob}", net.blob), ("{hsm_uri}", net.hsm_uri),
                        ("{laptop_lock_key}", net.laptop_lock_key),
                        ("{laptop_node_key}", net.laptop_node_key)):
        text = text.replace(name, value)
    return text.replace("{bad}", str(root / "bad"))


def run_case(net: Net, case: Case) -> Outcome:
    root = net.copy(re.sub(r"[^A-Za-z0-9.-]", "_", case.id))
    if case.setup is not None:
        case.setup(root)
    argv = [_fill(a, net, root) for a in case.argv]
    if case.state is not None:
        argv += ["--state", str(root / case.state)]
        if case.control is not None:
            argv += ["--control", _fill(case.control, net, root)]
    before = snapshot(root)
    command = [sys.executable, "-m", "signer.cli", *argv]
    if case.unprivileged and os.geteuid() == 0:
        command = [sys.executable, "-c", _DROP_DAC, *command]
    proc = subprocess.run(command, cwd=root, env=net.env_for(root), input=case.stdin,
                          capture_output=True, timeout=60)
    after = snapshot(root)
    changes = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return Outcome(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), changes)


@pytest.fixture(scope="module")
def outcomes(net: Net, request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected case, started at once on its own copy."""
    wanted = {
        str(item.callspec.params["case"])
        for item in request.session.items
        if getattr(item, "function", None) is test_bad_input
    }
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        yield {str(c): pool.submit(run_case, net, c) for c in CASES if str(c) in wanted}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=str(c), marks=[pytest.mark.xfail(strict=True, reason=KNOWN[str(c)])]
                  if str(c) in KNOWN else []) for c in CASES],
)
def test_bad_input(case: Case, outcomes: dict[str, Future[Outcome]]) -> None:
    out = outcomes[str(case)].result()
    if case.unprivileged and out.code == CANNOT_DROP:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE here")
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tka: "), out.stderr
    line = lines[0]
    assert out.code == case.code, (out.code, line)
    assert "internal error" not in line and "cannot write the output" not in line, line
    assert len(line) <= 320, f"{len(line)} characters: {line[:200]}…"
    assert re.search(case.says, line), line
    assert out.stdout == b"", out.stdout[:300]
    assert not out.changes, f"storage changed: {out.changes}"


# -- text other parties chose ---------------------------------------------------------------------


def test_a_hostile_node_name_is_refused_or_shown_escaped(net: Net) -> None:
    """Registering a name with a line break and a terminal command: the service refuses it in
    one line (nothing is left behind) or, if it takes it, `tka status` shows it escaped."""
    root = net.copy("hostile-name")
    before = snapshot(root)
    name = "evil\n\x1b[31mred"
    proc = net.tka(root, "node", "register", "--name", name, "--state", str(root / "evil"),
                   "--control", str(root / "control.db"))
    if proc.returncode != 0:
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("tka: ")
        assert "\x1b" not in lines[0]
        assert snapshot(root) == before
        return
    shown = net.ok("admin", "status", root=root)
    assert safe_text(name) in shown and "\x1b" not in shown


def test_status_escapes_the_names_the_service_sends(net: Net) -> None:
    """A service (or whoever controls it) chose a peer's name: text and JSON show it inert."""
    root = net.copy("service-names")
    conn = sqlite3.connect(root / "control.db")
    with conn:
        conn.execute("UPDATE nodes SET name = ? WHERE name = 'mallory'", (EVIL_NAME,))
    conn.close()
    text = net.ok("admin", "status", root=root)
    assert "\x1b" not in text and "\u202e" not in text
    peer_lines = [line for line in text.splitlines() if line.startswith("\tmal")]
    assert len(peer_lines) == 1 and peer_lines[0].startswith("\t" + safe_text(EVIL_NAME) + "\t")
    raw = net.ok("admin", "status", "--json", root=root)
    assert "\x1b" not in raw and "\u202e" not in raw
    doc = json.loads(raw)
    assert [p["DNSName"] for p in doc["FilteredPeers"]] == [EVIL_NAME]  # the same string


def test_log_escapes_key_metadata() -> None:
    """Key metadata is whoever signed the AUM's choice (tka log text and JSON)."""
    meta = {"purpose": "pre-auth key", "wrapper_stableid": EVIL_NAME, "k\x1b]0;x\x07": "v"}
    aum = AUM(kind=1, prev_aum_hash=bytes(32), key=Key(kind=1, votes=1, public=bytes(32),
                                                        meta=meta))
    text = log_human([(bytes(aum.hash()), aum)])
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert f"wrapper_stableid:{safe_text(EVIL_NAME)}" in text
    raw = log_json([(bytes(aum.hash()), aum)])
    assert "\x1b" not in raw and "\u202e" not in raw and "\x07" not in raw
    assert json.loads(raw)["Messages"][0]["AUM"]["Key"]["Meta"] == dict(sorted(meta.items()))


def test_a_trusted_cosigner_still_signs(net: Net) -> None:
    """The trust check refuses only keys whose signature would not count."""
    root = net.copy("trusted-cosign")
    out = net.ok("laptop", "revoke-keys", "--cosign", "--yes", "--key",
                 f"file:{root}/backup.key", net.blob, root=root)
    assert "Co-signing completed successfully." in out


def test_a_corrupt_appliance_identity_file_is_one_error(tmp_path: Path) -> None:
    """The appliance identities tka pinned (JSON it reads on every contact), deeply nested or
    with a number int() cannot take, are a StorageError (one line), not a crash."""
    from signer.backends.appliance.identity import IdentityPins
    from verifier.errors import StorageError

    path = tmp_path / "appliance-identities.json"
    entry = '{"identity": "' + "00" * 32 + '", "first_seen": Infinity}'
    for data in (DEEP_JSON, b'{"version": 1, "devices": {"d": ' + entry.encode() + b"}}"):
        path.write_bytes(data)
        path.chmod(0o600)
        with pytest.raises(StorageError, match="corrupt"):
            IdentityPins(path).get("d")


# -- the last resort ------------------------------------------------------------------------------


def test_the_last_resort_is_one_line_naming_only_the_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug still ends in one line; it names the exception's type only, since the text of an
    unexpected error may quote what it was given (here, a secret)."""
    from signer.cli import lock_handlers, main

    def broken(_args: object) -> int:
        raise ValueError("disablement-secret:" + "AB" * 32)

    monkeypatch.setattr(lock_handlers, "cmd_log", broken)
    assert main(["log"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "tka: internal error (ValueError); please report it\n"
