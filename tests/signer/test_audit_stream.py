"""`tka audit` reads its peers as a stream and judges them a window at a time: the reports must
be byte for byte those of the whole-input implementation it replaced (audit_reference.py, kept
as the oracle), however the input is cut into chunks and windows; memory must grow with the
peers' packed bytes only; bad input mid-stream is one line and writes nothing."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import audit_reference as reference
import pytest
from nacl.signing import SigningKey

import signer.audit as streaming
from signer.cli import main
from signer.status_json import FORM_IPNSTATE, NodeStatus, StatusPeer
from verifier.authority import Authority, new_state_ids
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.netmap_filter import ROTATED, ROTATION_TIE
from verifier.nks import NodeKeySignature, SigKind
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage
from verifier.textforms import format_node_public, node_key_binary

ADMIN = SigningKey(bytes(range(40, 72)))
STRANGER = SigningKey(bytes(range(80, 112)))
# The identity point, encoded non-canonically (y = p + 1): small order; R = identity, S = 0
# verifies under it for every message, so anyone can sign a rotation "with" it.
IDENTITY_NONCANONICAL = bytes([0xEE]) + b"\xff" * 30 + b"\x7f"
IDENTITY_SIG = bytes([1]) + bytes(63)


def _signed(nks: NodeKeySignature, key: SigningKey) -> NodeKeySignature:
    return nks.replace(signature=key.sign(nks.sig_hash()).signature)


def direct(node_key: bytes, wrapping: bytes = b"", by: SigningKey = ADMIN) -> NodeKeySignature:
    return _signed(NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                                    key_id=bytes(by.verify_key), wrapping_pubkey=wrapping), by)


def credential(wrapping: bytes) -> NodeKeySignature:
    return _signed(NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=bytes(ADMIN.verify_key),
                                    wrapping_pubkey=wrapping), ADMIN)


def rotate(old: NodeKeySignature, new_key: bytes, by: SigningKey | None,
           wrapping: bytes = b"") -> NodeKeySignature:
    unsigned = NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(new_key),
                                nested=old, wrapping_pubkey=wrapping)
    return unsigned.replace(signature=IDENTITY_SIG) if by is None else _signed(
        unsigned, by)


@pytest.fixture(scope="module")
def authority_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"s" * 32),),
                  keys=(ed25519_key(bytes(ADMIN.verify_key)),), state_id1=id1, state_id2=id2)
    signer = AUMSigner.over_digest(bytes(ADMIN.verify_key), lambda d: ADMIN.sign(d).signature)
    path = tmp_path_factory.mktemp("stream") / "tka"
    Authority.create(FilesystemStorage(path), state, signer)
    return path


@pytest.fixture(scope="module")
def authority(authority_dir: Path) -> Authority:
    return streaming.open_authority_readonly(authority_dir)


def corpus(rng: random.Random) -> list[tuple[str, bytes, bytes]]:
    """(name, node key, NKS bytes): every kind of verdict, warning and rotation outcome."""
    k = [rng.randbytes(32) for _ in range(40)]
    r = [SigningKey(rng.randbytes(32)) for _ in range(8)]
    pub = [bytes(x.verify_key) for x in r]
    first = direct(k[0], pub[0])
    clone_a, clone_b = rotate(first, k[1], r[0]), rotate(first, k[2], r[0])  # a tie
    start = direct(k[3], pub[1])
    longer = rotate(rotate(start, k[4], r[1], pub[2]), k[5], r[2])  # drops the shorter one
    shorter = rotate(start, k[6], r[1])
    cred = credential(pub[3])
    tiny = direct(k[7], IDENTITY_NONCANONICAL)
    tampered = bytearray(direct(k[8]).to_cbor())
    tampered[-1] ^= 1
    peers = [
        ("web.example.ts.net", k[9], direct(k[9]).to_cbor()),
        ("", k[10], direct(k[10], pub[4]).to_cbor()),
        ("zero", k[11], direct(k[11], bytes(32)).to_cbor()),
        ("tiny", k[7], tiny.to_cbor()),
        ("forged-on-tiny", k[12], rotate(tiny, k[12], None).to_cbor()),
        ("old-self", k[0], first.to_cbor()),
        ("clone-a", k[1], clone_a.to_cbor()),
        ("clone-b", k[2], clone_b.to_cbor()),
        ("start", k[3], start.to_cbor()),
        ("longer", k[5], longer.to_cbor()),
        ("shorter", k[6], shorter.to_cbor()),
        ("middle", k[4], direct(k[4]).to_cbor()),
        ("cred-1", k[13], rotate(cred, k[13], r[3]).to_cbor()),
        ("cred-2", k[14], rotate(cred, k[14], r[3]).to_cbor()),
        ("tampered", k[8], bytes(tampered)),
        ("stranger", k[15], direct(k[15], by=STRANGER).to_cbor()),
        ("wrong-key", k[16], direct(k[17]).to_cbor()),
        ("garbage", k[18], b"\xff\x00 not a signature"),
        ("noncanonical head", k[19], b"\xb8\x03" + direct(k[19]).to_cbor()[1:]),
        ("<script>alert(1)</script> & \"q\"", k[20], direct(k[20]).to_cbor()),
        ("ünïcødé ☃", k[21], direct(k[21], bytes(32)).to_cbor()),
        ("duplicate of clone-a", k[1], direct(k[1]).to_cbor()),
        ("duplicate of web", k[9], direct(k[9]).to_cbor()),
        ("nested zero", k[22], rotate(direct(k[23], bytes(32)), k[22], None).to_cbor()),
    ]
    rng.shuffle(peers)
    return peers


def peers_text(peers: list[tuple[str, bytes, bytes]], rng: random.Random) -> str:
    """A peers file as people write them: base64 or hex, comments, blanks, odd spacing."""
    out = ["# exported by hand", ""]
    for name, key, nks in peers:
        sig = nks.hex() if rng.random() < 0.3 else base64.b64encode(nks).decode()
        gap = rng.choice([" ", "  ", "\t"])
        out.append(f"{format_node_public(key)}{gap}{sig}" + (f" # {name}" if name else ""))
        if rng.random() < 0.1:
            out.append("   # a comment between peers")
    return "\n".join(out) + "\n"


def _stream(authority: Authority, data: bytes, chunk: int | None = None) -> streaming.AuditReport:
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    table = streaming.read_peer_lines(pieces, "peers.txt", streaming.PeerTable(authority.state))
    return streaming.audit(authority, table)


def _written(write: Callable[..., None], *args: object) -> str:
    out = io.StringIO()
    write(*args, out)
    return out.getvalue()


def _assert_same_reports(authority: Authority, new: streaming.AuditReport,
                         old: reference.AuditReport) -> None:
    assert _written(streaming.write_human, new) == reference.report_human(old)
    assert _written(streaming.write_json, new) == reference.report_json(old)
    assert _written(lambda r, o: streaming.write_html(r, authority, o), new) == \
        reference.report_html(old, authority)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_streamed_reports_equal_the_whole_input_ones(
    authority: Authority, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    text = peers_text(corpus(rng), rng)
    old = reference.audit(authority, reference.parse_peer_lines(text, "peers.txt"))
    assert old.unauthorized and old.forgeable  # the corpus has both
    reasons = {p.reason for p in old.peers}
    assert ROTATED in reasons and ROTATION_TIE in reasons
    data = text.encode()
    _assert_same_reports(authority, _stream(authority, data), old)
    # Windows of a few peers (the rotation rule spans them) and chunks cut anywhere, inside
    # lines and inside UTF-8 characters.
    monkeypatch.setattr(streaming.PeerTable, "WINDOW", 3)
    for chunk in (1, 7, 64, 1000):
        _assert_same_reports(authority, _stream(authority, data, chunk), old)


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_reports_written_in_small_batches_are_the_same(
    authority: Authority, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # The writers format a batch of peers at a time, plain names and plain peers without a
    # step of their own: batches that cut anywhere, some with only plain peers and names, some
    # with hostile or non-ASCII names, and with or without node verdicts.
    rng = random.Random(4)
    peers = corpus(rng)
    peers += [(f"plain-{i}", key, direct(key).to_cbor())
              for i, key in enumerate(rng.randbytes(32) for _ in range(12))]
    # Printable ASCII that JSON still escapes (DEL, a quote, a backslash), or HTML does.
    peers += [(name, key, direct(key).to_cbor()) for name, key in
              zip(["del\x7f", 'q"uote', "back\\slash", "amp&", "tilde~"],
                  (rng.randbytes(32) for _ in range(5)), strict=False)]
    text = peers_text(peers, rng)
    old = reference.audit(authority, reference.parse_peer_lines(text, "peers.txt"))
    monkeypatch.setattr(streaming, "_BATCH", batch)
    _assert_same_reports(authority, _stream(authority, text.encode()), old)
    status_peers = [StatusPeer(name, key, NodeKeySignature.from_cbor(nks).to_cbor(),
                               visible=i % 3 != 0)
                    for i, (name, key, nks) in enumerate(peers[-12:])]
    status_peers.append(StatusPeer("shown unsigned", rng.randbytes(32), None, True))
    status = NodeStatus(bytes(authority.head), frozenset({bytes(ADMIN.verify_key)}), bytes(32),
                        tuple(status_peers), FORM_IPNSTATE)
    old = reference.audit(authority, reference.peers_from_status(status, authority, "s.json"),
                          status.form)
    new = streaming.audit(authority, streaming.peers_from_status(status, authority, "s.json"),
                          status.form)
    _assert_same_reports(authority, new, old)


@pytest.mark.parametrize("ending", ["\r\n", "\r", "\x85", "\u2028", "\x0c", "\x1e"])
def test_every_line_break_python_knows_splits_lines_as_before(
    authority: Authority, ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    text = peers_text(corpus(rng)[:8], rng).replace("\n", ending)
    text = text.replace(" # ", "\t#\x1f")  # \x1f: whitespace to str, not to bytes
    old = reference.audit(authority, reference.parse_peer_lines(text, "peers.txt"))
    assert len(old.peers) == 8
    monkeypatch.setattr(streaming.PeerTable, "WINDOW", 2)
    for chunk in (None, 1, 5, 33):
        _assert_same_reports(authority, _stream(authority, text.encode(), chunk), old)


def test_status_documents_give_the_same_reports(authority: Authority,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    peers = corpus(rng)
    status_peers = []
    for i, (name, key, nks) in enumerate(peers):
        decoded = None
        try:
            decoded = NodeKeySignature.from_cbor(nks).to_cbor()
        except Exception:
            continue  # a status carries decoded fields only
        status_peers.append(StatusPeer(name, key, decoded, visible=i % 3 != 0))
    status_peers += [
        StatusPeer("filtered, signature left out", rng.randbytes(32), None, False, omitted=True),
        StatusPeer("shown unsigned", rng.randbytes(32), None, True),
        StatusPeer("filtered unsigned", rng.randbytes(32), None, False),
    ]
    status = NodeStatus(bytes(authority.head), frozenset({bytes(ADMIN.verify_key)}), bytes(32),
                        tuple(status_peers), FORM_IPNSTATE)
    old = reference.audit(authority, reference.peers_from_status(status, authority, "s.json"),
                          status.form)
    assert old.disagreements and old.exempt
    for window in (streaming.PeerTable.WINDOW, 4):
        monkeypatch.setattr(streaming.PeerTable, "WINDOW", window)
        new = streaming.audit(authority, streaming.peers_from_status(status, authority, "s.json"),
                              status.form)
        _assert_same_reports(authority, new, old)


def _big_peers_file(path: Path, count: int, bad_line: int | None = None) -> None:
    """`count` peers, 500 distinct ones repeated (signing each is what costs)."""
    rng = random.Random(count)
    distinct = []
    for i in range(500):
        key = rng.randbytes(32)
        nks = direct(key, bytes(32) if i == 7 else b"")
        distinct.append(f"{format_node_public(key)} {base64.b64encode(nks.to_cbor()).decode()}")
    with open(path, "w") as fh:
        for i in range(count):
            if bad_line is not None and i + 1 == bad_line:
                fh.write("nodekey:zz not-a-peer\n")
            fh.write(f"{distinct[i % 500]} # node-{i}.example.ts.net\n")


def _traced_peak(authority: Authority, path: Path) -> int:
    tracemalloc.start()
    try:
        with open(path, "rb") as fh:
            table = streaming.read_peer_lines(streaming.byte_chunks(fh, "p"), "p",
                                              streaming.PeerTable(authority.state))
        report = streaming.audit(authority, table)
        with open(os.devnull, "w") as out:
            streaming.write_json(report, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_the_packed_peers_not_with_the_input(
    authority: Authority, tmp_path: Path
) -> None:
    small, large = tmp_path / "20k.txt", tmp_path / "40k.txt"
    _big_peers_file(small, 20_000)
    _big_peers_file(large, 40_000)
    peak_small, peak_large = _traced_peak(authority, small), _traced_peak(authority, large)
    per_peer = (peak_large - peak_small) / 20_000
    # Kept per peer: its node key (32), line and name offsets (16), the name (~22); the
    # file has 270 bytes a line, which the whole-input reader held several times over.
    assert small.stat().st_size > 5_000_000
    assert per_peer < 120, per_peer
    assert peak_small < 8 << 20, peak_small


def test_a_bad_line_mid_stream_is_one_line_and_nothing_is_written(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "authority"
    _copy_authority(authority_dir, directory)
    peers = tmp_path / "peers.txt"
    _big_peers_file(peers, 20_000, bad_line=15_001)
    page = tmp_path / "report.html"
    assert main(["audit", "--authority", str(directory), "--peers", str(peers), "--json",
                 "--html", str(page)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("tka: peers.txt:15001: expected a node key (nodekey:<64 hex "
                            "digits>): got 2 digits after the prefix\n").replace(
        "peers.txt", str(peers))
    assert not page.exists() and list(tmp_path.glob("report.html*")) == []
    page.write_text("the previous report")
    # Invalid UTF-8 far into the file: one line too, and the old report stays.
    with open(peers, "ab") as fh:
        fh.write(b"\xff\xfe\n")
    lines = peers.read_bytes().split(b"\n")
    peers.write_bytes(b"\n".join(lines[:15_000] + lines[15_001:]))
    assert main(["audit", "--authority", str(directory), "--peers", str(peers),
                 "--html", str(page)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"tka: {peers} is not UTF-8 text\n"
    assert page.read_text() == "the previous report"


def test_the_html_report_is_written_whole_or_not_at_all(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "authority"
    _copy_authority(authority_dir, directory)
    peers = tmp_path / "peers.txt"
    _big_peers_file(peers, 3000)
    missing = tmp_path / "no-such-dir" / "report.html"
    assert main(["audit", "--authority", str(directory), "--peers", str(peers),
                 "--html", str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("tka: cannot write ")
    assert captured.out == "" and not missing.parent.exists()
    page = tmp_path / "report.html"
    # Every peer authorized (one of them with a forgeable signature): exit 0.
    assert main(["audit", "--authority", str(directory), "--peers", str(peers),
                 "--html", str(page)]) == 0
    assert "WARNING: 6 signature(s) anyone can extend" in capsys.readouterr().out
    text = page.read_text()
    assert text.startswith("<!doctype html>") and text.endswith("</body></html>\n")
    assert text.count("<tr class=ok>") == 3000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("report")] == ["report.html"]
    assert oct(page.stat().st_mode & 0o777) == "0o644"


def test_stdin_streams_like_a_file(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "authority"
    _copy_authority(authority_dir, directory)
    rng = random.Random(12)
    text = peers_text(corpus(rng), rng)
    peers = tmp_path / "peers.txt"
    peers.write_text(text)
    assert main(["audit", "--authority", str(directory), "--peers", str(peers), "--json"]) == 1
    from_file = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert main(["audit", "--authority", str(directory), "--peers", "-", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == from_file
    assert from_file["Filtered"] > 0 and from_file["Forgeable"] > 0


def _copy_authority(source: Path, directory: Path) -> None:
    import shutil

    shutil.copytree(source, directory)
