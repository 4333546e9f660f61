"""`tka log --graph`: every stored AUM as a tree, the head and the AUMs a revocation's fork
discarded marked; text, DOT (checked with Graphviz when it is installed) and SVG."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from signer.graph import build_graph, render_dot, render_text
from verifier import revocation
from verifier.authority import Authority, new_state_ids
from verifier.builder import UpdateBuilder
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage
from verifier.textforms import format_aum_hash, format_tlpub

REPO = Path(__file__).resolve().parents[2]


def _signer(sk: SigningKey) -> AUMSigner:
    return AUMSigner.over_digest(bytes(sk.verify_key), lambda d: sk.sign(d).signature)


def _pub(sk: SigningKey) -> bytes:
    return bytes(sk.verify_key)


class Forked:
    """Keys A and B trusted at genesis; A adds C, C adds D (C is compromised); a recovery
    checkpoint without C, signed by A and B, forks from genesis and wins: add-C and add-D are
    discarded."""

    def __init__(self, root: Path) -> None:
        self.a, self.b, self.c, self.d = (SigningKey.generate() for _ in range(4))
        id1, id2 = new_state_ids()
        state = State(disablement_values=(disablement_kdf(b"s" * 32),),
                      keys=(ed25519_key(_pub(self.a)), ed25519_key(_pub(self.b))),
                      state_id1=id1, state_id2=id2)
        self.root = root
        authority, self.genesis = Authority.create(FilesystemStorage(root), state,
                                                   _signer(self.a))
        build = UpdateBuilder(authority, _signer(self.a))
        build.add_key(ed25519_key(_pub(self.c), votes=1))
        (self.add_c,) = build.finalize()
        authority.inform([self.add_c])
        build = UpdateBuilder(authority, _signer(self.c))
        build.add_key(ed25519_key(_pub(self.d), votes=2))
        (self.add_d,) = build.finalize()
        authority.inform([self.add_d])
        parent = revocation.fork_point(authority, [_pub(self.c)], _pub(self.a))
        assert parent == self.genesis.hash()
        recovery = revocation.recovery_aum(authority, [_pub(self.c)], parent)
        recovery = _signer(self.a).sign(recovery)
        self.recovery = _signer(self.b).sign(recovery)
        authority.inform([self.recovery])
        assert authority.head == self.recovery.hash()
        self.authority = authority

    @staticmethod
    def short(aum_hash: bytes) -> str:
        return format_aum_hash(aum_hash)[:10]


@pytest.fixture
def forked(tmp_path: Path) -> Forked:
    return Forked(tmp_path / "tka")


def _line(text: str, aum_hash: bytes) -> str:
    # The tree's lines, not the summary (which names the head in full).
    (line,) = [x for x in text.splitlines()[:-1] if Forked.short(aum_hash) in x]
    return line


def test_text_tree_marks_the_head_and_the_discarded_branch(forked: Forked) -> None:
    text = render_text(build_graph(forked.authority), unicode=False)
    lines = text.splitlines()
    genesis = _line(text, forked.genesis.hash())
    add_c, add_d = _line(text, forked.add_c.hash()), _line(text, forked.add_d.hash())
    head = _line(text, forked.recovery.hash())
    # Oldest first: genesis at the root column, the discarded branch off it, the head last.
    assert lines.index(genesis) == 0
    assert genesis.startswith("* ") and " checkpoint " in genesis
    assert add_c.startswith("|-x ") and add_c.endswith("[discarded]")
    assert add_d.startswith("| x ") and add_d.endswith("[discarded]")
    assert lines.index(add_c) < lines.index(add_d) < lines.index(head)
    assert head.startswith("@ ") and head.endswith("(head)") and "[discarded]" not in head
    # Kinds, key IDs and votes as `tka log` writes them.
    assert f"add-key {format_tlpub(_pub(forked.c))} votes=1" in add_c
    assert f"add-key {format_tlpub(_pub(forked.d))} votes=2" in add_d
    assert format_tlpub(_pub(forked.a)) in head and format_tlpub(_pub(forked.b)) in head
    assert format_tlpub(_pub(forked.c)) not in head
    assert lines[-1] == (f"4 AUMs, 1 fork, 2 discarded; head "
                         f"{format_aum_hash(forked.recovery.hash())}")
    assert "\x1b" not in text


def test_unicode_and_colour(forked: Forked) -> None:
    text = render_text(build_graph(forked.authority), unicode=True, color=True)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain != text
    assert "├─○ " + Forked.short(forked.add_c.hash()) in plain
    assert "│ ○ " + Forked.short(forked.add_d.hash()) in plain
    assert "◉ " + Forked.short(forked.recovery.hash()) in plain
    assert plain == render_text(build_graph(forked.authority), unicode=True)


def test_dot_names_every_aum_and_parses(forked: Forked, tmp_path: Path) -> None:
    dot = render_dot(build_graph(forked.authority))
    assert dot.startswith("digraph tka {") and dot.rstrip().endswith("}")
    full = {aum: format_aum_hash(aum.hash()) for aum in
            (forked.genesis, forked.add_c, forked.add_d, forked.recovery)}
    for name in full.values():
        assert re.search(rf'^  "{name}" \[', dot, re.M), name
    assert f'"{full[forked.genesis]}" -> "{full[forked.add_c]}" [style=dashed' in dot
    assert f'"{full[forked.add_c]}" -> "{full[forked.add_d]}" [style=dashed' in dot
    assert f'"{full[forked.genesis]}" -> "{full[forked.recovery]}";' in dot
    head_line = next(x for x in dot.splitlines() if x.startswith(f'  "{full[forked.recovery]}" ['))
    assert "peripheries=2" in head_line and "(head)" in head_line
    assert "dashed" not in head_line
    if shutil.which("dot") is not None:
        proc = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "<svg" in proc.stdout


def _tka(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_graph_from_an_authority_directory(forked: Forked) -> None:
    where = ("--authority", str(forked.root))
    proc = _tka("log", "--graph", *where)
    assert proc.returncode == 0, proc.stderr
    assert _line(proc.stdout, forked.add_d.hash()).endswith("[discarded]")
    assert _line(proc.stdout, forked.recovery.hash()).endswith("(head)")
    assert "\x1b" not in proc.stdout  # not a terminal: no colours
    # The plain log still lists the active chain only.
    plain = _tka("log", "--json", *where)
    kinds = [m["AUM"]["MessageKind"] for m in json.loads(plain.stdout)["Messages"]]
    assert kinds == ["checkpoint", "checkpoint"]

    dot = _tka("log", "--graph=dot", *where)
    assert dot.returncode == 0 and dot.stdout.startswith("digraph tka {"), dot.stderr

    for bad, message in ((("--graph=png",), "--graph takes text, dot, svg"),
                         (("--graph", "--json"), "--graph and --json do not go together")):
        proc = _tka("log", *bad, *where)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert proc.stderr.startswith("tka: ") and message in proc.stderr


def test_svg_with_graphviz_or_one_line_without(forked: Forked) -> None:
    where = ("--authority", str(forked.root))
    if shutil.which("dot") is not None:
        proc = _tka("log", "--graph=svg", *where)
        assert proc.returncode == 0, proc.stderr
        assert "<svg" in proc.stdout and Forked.short(forked.add_c.hash()) in proc.stdout
    # Without Graphviz on PATH: one line saying to install it.
    env = {"PATH": "/nonexistent", "HOME": str(forked.root.parent)}
    proc = _tka("log", "--graph=svg", *where, env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tka: ") and "install graphviz" in proc.stderr


def test_linear_chain_has_no_branches(tmp_path: Path) -> None:
    a = SigningKey.generate()
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"s" * 32),),
                  keys=(ed25519_key(_pub(a)),), state_id1=id1, state_id2=id2)
    authority, _ = Authority.create(FilesystemStorage(tmp_path / "tka"), state, _signer(a))
    build = UpdateBuilder(authority, _signer(a))
    build.add_key(ed25519_key(_pub(SigningKey.generate())))
    build.set_key_vote(_pub(a), 3)
    authority.inform(build.finalize())
    text = render_text(build_graph(authority), unicode=False)
    body = text.splitlines()[:-1]
    assert [x.split()[0] for x in body] == ["*", "*", "@"]
    assert "update-key " + format_tlpub(_pub(a)) + " votes=3" in body[2]
    assert text.splitlines()[-1].startswith("3 AUMs, 0 forks, 0 discarded; head ")


def test_cli_graph_on_a_node(tmp_path: Path) -> None:
    """The node route (`--state`/`--control`, synced with the service first)."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    node = ("--state", str(tmp_path / "a"), "--control", str(tmp_path / "control.db"))

    def ok(*args: str) -> str:
        proc = _tka(*args, *node, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    ok("node", "register", "--name", "a")
    lock = json.loads((tmp_path / "a" / "node.json").read_text())["LockPublic"]
    other = format_tlpub(_pub(SigningKey.generate()))
    ok("init", "--confirm", f"tlpub:{lock}")
    ok("add", "--yes", other)
    lines = ok("log", "--graph").splitlines()
    assert len(lines) == 3 and lines[-1].startswith("2 AUMs, 0 forks, 0 discarded; head ")
    assert " checkpoint tlpub:" + lock in lines[0] and "[discarded]" not in lines[0]
    assert f" add-key {other} votes=1 (head)" in lines[1]
    assert ok("log", "--graph=dot").startswith("digraph tka {")
