"""`tka audit --status`: what a real node printed with `tailscale lock status --json`, audited
against its authority directory with tailscaled's netmap filter (the key-rotation rule
included), forgeable signatures warned about, an HTML report, and bad input refused in one
line with the directory untouched.

Each status document is written in both of Tailscale's forms, each twice:
- `tailscale lock status --json` (SchemaVersion "1"): by our own `tka status --json` writer
  (which tests/interop proves byte-identical to Tailscale's) and, when the Go oracle of
  tests/interop is built, by Tailscale's own encoder (tslockjsonv1.StatusResponse of a real
  ipnstate.TailnetLockStatus);
- the ipnstate.TailnetLockStatus itself as the LocalAPI's tka/status marshals it (filtered
  peers with their signatures): by `_ipnstate_json` below, following Go's encoding/json rules,
  and by Go's json.MarshalIndent of the real struct (the test that both agree is below)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from signer.audit import EXEMPT, FILTERED_UNSIGNED, NO_SIGNATURE
from signer.cli import main
from signer.render import LockStatus, PeerView, key_kind_name, status_json
from signer.status_json import FORM_IPNSTATE, FORM_V1, parse_status
from verifier.authority import Authority, new_state_ids
from verifier.disablement import disablement_kdf
from verifier.key import Key, ed25519_key
from verifier.netmap_filter import ROTATED, ROTATION_TIE
from verifier.nks import NodeKeySignature, SigKind
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage
from verifier.textforms import format_nlpub, format_node_public, node_key_binary

INTEROP = Path(__file__).resolve().parents[1] / "interop"
ADMIN = SigningKey(bytes(range(32)))
# The identity point, encoded non-canonically (y = p + 1): small order, so anyone can sign
# "with" it: R = the identity, S = 0 verifies for every message.
IDENTITY_NONCANONICAL = bytes([0xEE]) + b"\xff" * 30 + b"\x7f"
IDENTITY_SIG = bytes([1]) + bytes(63)

Writer = Callable[[LockStatus, dict[bytes, NodeKeySignature]], str]


@dataclasses.dataclass(frozen=True)
class Render:
    """One way of writing a node's status: `form` is which of Tailscale's two forms."""

    name: str
    form: str
    write: Writer

    def __call__(self, st: LockStatus, filtered_sigs: dict[bytes, NodeKeySignature]) -> str:
        return self.write(st, filtered_sigs)

    @property
    def has_filtered_signatures(self) -> bool:
        return self.form == FORM_IPNSTATE


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def _signed(nks: NodeKeySignature, key: SigningKey) -> NodeKeySignature:
    return nks.replace(signature=key.sign(nks.sig_hash()).signature)


def direct(node_key: bytes, wrapping: bytes = b"") -> NodeKeySignature:
    return _signed(NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                                    key_id=bytes(ADMIN.verify_key), wrapping_pubkey=wrapping),
                   ADMIN)


def rotate(old: NodeKeySignature, new_key: bytes, by: SigningKey | None,
           wrapping: bytes = b"") -> NodeKeySignature:
    """A rotation to `new_key` on top of `old`, signed by `old`'s wrapping key `by`, or forged
    (R = identity, S = 0) when `by` is None: valid only if that key is the identity point."""
    unsigned = NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(new_key),
                                nested=old, wrapping_pubkey=wrapping)
    if by is None:
        return unsigned.replace(signature=IDENTITY_SIG)
    return _signed(unsigned, by)


def keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """An authority directory (Tailscale's layout) trusting ADMIN."""
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"s" * 32),),
                  keys=(ed25519_key(bytes(ADMIN.verify_key)),), state_id1=id1, state_id2=id2)
    signer = AUMSigner.over_digest(bytes(ADMIN.verify_key), lambda d: ADMIN.sign(d).signature)
    path = tmp_path / "tka-profiles" / "profile-1234"
    Authority.create(FilesystemStorage(path), state, signer)
    return path


def _ours(st: LockStatus, _: dict[bytes, NodeKeySignature]) -> str:
    return status_json(st)


def _b64(data: bytes) -> str | None:
    return base64.b64encode(data).decode() if data else None  # a nil []byte is null


def _go_nks(nks: NodeKeySignature | None) -> dict[str, object]:
    """tka.NodeKeySignature through Go's encoding/json (no JSON tags): SigKind a number, the
    byte fields standard base64 or null; None is the zero signature."""
    nks = nks or NodeKeySignature(kind=0)
    return {"SigKind": nks.kind, "Pubkey": _b64(nks.pubkey), "KeyID": _b64(nks.key_id),
            "Signature": _b64(nks.signature),
            "Nested": None if nks.nested is None else _go_nks(nks.nested),
            "WrappingPubkey": _b64(nks.wrapping_pubkey)}


def _ipnstate_json(st: LockStatus, filtered_sigs: dict[bytes, NodeKeySignature]) -> str:
    """ipnstate.TailnetLockStatus as the LocalAPI's tka/status marshals it."""

    def peer(p: PeerView, sig: NodeKeySignature | None) -> dict[str, object]:
        return {"Name": p.dns_name, "ID": int(p.stable_id[1:]), "StableID": p.stable_id,
                "TailscaleIPs": list(p.tailscale_ips), "NodeKey": format_node_public(p.node_key),
                "NodeKeySignature": _go_nks(sig)}

    assert st.head is not None and st.public_key is not None and st.node_key is not None
    doc = {
        "Enabled": st.enabled, "Head": list(st.head), "PublicKey": format_nlpub(st.public_key),
        "NodeKey": format_node_public(st.node_key), "NodeKeySigned": st.node_key_signed,
        "NodeKeySignature": _go_nks(st.node_key_signature),
        "TrustedKeys": [{"Kind": key_kind_name(k.kind), "Key": format_nlpub(k.public or b""),
                         "Metadata": dict(k.meta) or None, "Votes": k.votes}
                        for k in st.trusted_keys],
        "VisiblePeers": [peer(p, p.signature) for p in st.visible_peers],
        "FilteredPeers": [peer(p, filtered_sigs.get(p.node_key)) for p in st.filtered_peers],
        "StateID": st.state_id,
    }
    return json.dumps(doc, indent="\t")


def _peer_desc(p: PeerView, sig: NodeKeySignature | None) -> dict[str, object]:
    return {"name": p.dns_name, "id": int(p.stable_id[1:]), "stable_id": p.stable_id,
            "ips": list(p.tailscale_ips), "node_key": p.node_key.hex(),
            "nks": None if sig is None else sig.to_cbor().hex()}


@pytest.fixture(scope="module")
def oracle() -> Iterator[Any]:
    sys.path.insert(0, str(INTEROP))
    try:
        from tka_oracle import BINARY, Oracle, build  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(INTEROP))
    try:
        build()
    except Exception as err:  # no Go toolchain here: the Go half is skipped
        if not BINARY.exists():
            pytest.skip(f"Go oracle not built: {err}")
    o = Oracle()
    try:
        yield o
    finally:
        o.close()


def _go_writer(o: Any, op: str) -> Writer:
    def go(st: LockStatus, filtered_sigs: dict[bytes, NodeKeySignature]) -> str:
        # Go is handed the filtered peers' signatures too, as tailscaled's status has them:
        # the versioned JSON schema leaves them out, the LocalAPI's keeps them.
        desc = {
            "enabled": st.enabled, "head": None if st.head is None else st.head.hex(),
            "public": None if st.public_key is None else st.public_key.hex(),
            "node_key": None if st.node_key is None else st.node_key.hex(),
            "signed": st.node_key_signed,
            "nks": None if st.node_key_signature is None else st.node_key_signature.to_cbor().hex(),
            "keys": [{"kind": k.kind, "votes": k.votes, "public": (k.public or b"").hex(),
                      "meta": dict(k.meta) or None} for k in st.trusted_keys],
            "visible": [_peer_desc(p, p.signature) for p in st.visible_peers],
            "filtered": [_peer_desc(p, filtered_sigs.get(p.node_key)) for p in st.filtered_peers],
            "state_id": st.state_id,
        }
        return str(o.call(op, status=desc)["text"])

    return go


@pytest.fixture(params=["v1-ours", "v1-go", "ipnstate-ours", "ipnstate-go"])
def render(request: pytest.FixtureRequest) -> Render:
    name = str(request.param)
    form = FORM_V1 if name.startswith("v1") else FORM_IPNSTATE
    if name.endswith("ours"):
        return Render(name, form, _ours if form == FORM_V1 else _ipnstate_json)
    o = request.getfixturevalue("oracle")
    return Render(name, form, _go_writer(
        o, "status_json" if form == FORM_V1 else "status_ipnstate_json"))


def status_of(directory: Path, visible: list[tuple[str, bytes, NodeKeySignature]],
              filtered: list[tuple[str, bytes, NodeKeySignature | None]],
              render: Writer) -> str:
    authority = Authority.open(FilesystemStorage(directory))
    own = os.urandom(32)
    n = iter(range(1, 1000))

    def view(name: str, key: bytes, sig: NodeKeySignature | None) -> PeerView:
        i = next(n)
        return PeerView(stable_id=f"n{i}", dns_name=name, tailscale_ips=(f"100.64.0.{i}",),
                        node_key=key, signature=sig)

    st = LockStatus(
        enabled=True, public_key=os.urandom(32), node_key=own, head=bytes(authority.head),
        node_key_signed=True, node_key_signature=direct(own),
        trusted_keys=tuple(Key(public=k.public, votes=k.votes) for k in authority.keys()),
        visible_peers=tuple(view(*p) for p in visible),
        filtered_peers=tuple(view(name, key, None) for name, key, _ in filtered),
        state_id=authority.state.state_id1 or 0,
    )
    return render(st, {key: sig for _, key, sig in filtered if sig is not None})


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_longer_rotation_chain_drops_a_clone(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str]
) -> None:
    rot = SigningKey.generate()
    k0, k1, k2, clone, web = keys(5)
    first = direct(k0, bytes(rot.verify_key))
    second = rotate(first, k1, rot, bytes(rot.verify_key))
    third = rotate(second, k2, rot, bytes(rot.verify_key))
    cloned = rotate(first, clone, rot, bytes(rot.verify_key))  # one rotation from one start
    before = _tree(directory)

    # What the node shows: the newest key of the chain and web; the clone and the previous
    # keys filtered (without their signatures: the schema leaves them out).
    status = tmp_path / "status.json"
    status.write_text(status_of(
        directory, [("laptop.example.ts.net.", k2, third), ("web.example.ts.net.", web,
                                                           direct(web))],
        [("laptop-old.example.ts.net.", k1, second), ("clone.example.ts.net.", clone, cloned)],
        render))
    # Either form carries decoded fields only: re-encoded, they are the bytes the node had.
    # The LocalAPI's form keeps the filtered peers' signatures, the versioned one leaves them out.
    parsed = parse_status(status.read_text(), "status.json")
    assert parsed.form == render.form
    filtered_sigs = ([second.to_cbor(), cloned.to_cbor()] if render.has_filtered_signatures
                     else [None, None])
    assert [p.signature for p in parsed.peers] == [third.to_cbor(), direct(web).to_cbor(),
                                                   *filtered_sigs]
    code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and err == "", err
    assert f"peers from: {render.form}" in out
    assert "4 peers: 2 authorized, 2 not authorized" in out
    why = ROTATED if render.has_filtered_signatures else FILTERED_UNSIGNED
    assert f"clone.example.ts.net. {format_node_public(clone)}: {why}" in out
    assert "DISAGREEMENT" not in out and "WARNING" not in out
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    report = json.loads(out)
    assert report["SchemaVersion"] == "2" and report["Disagreements"] == 0
    assert report["Input"] == render.form
    assert (report["Visible"], report["Filtered"]) == (2, 2)
    assert [(p["Name"], p["Authorized"], p["Visible"], p["NodeVerdict"], p["Reason"])
            for p in report["Peers"]] == [
        ("laptop.example.ts.net.", True, True, "visible", ""),
        ("web.example.ts.net.", True, True, "visible", ""),
        ("laptop-old.example.ts.net.", False, False, "filtered", why),
        ("clone.example.ts.net.", False, False, "filtered", why)]

    # The signatures the coordination server hands out (every one, as in a netmap): the clone
    # and the previous keys are dropped by the rotation rule, named from the comments.
    peers = tmp_path / "peers.txt"
    peers.write_text("".join(
        f"{format_node_public(k)} {base64.b64encode(s.to_cbor()).decode()} # {name}\n"
        for name, k, s in [("old", k0, first), ("older", k1, second), ("laptop", k2, third),
                           ("clone", clone, cloned)]))
    code, out, _ = run(capsys, "--authority", str(directory), "--peers", str(peers), "--json")
    verdicts = {p["Name"]: (p["Authorized"], p["Reason"]) for p in json.loads(out)["Peers"]}
    assert code == 1 and verdicts == {"old": (False, ROTATED), "older": (False, ROTATED),
                                      "laptop": (True, ""), "clone": (False, ROTATED)}

    # A node that shows the clone would disagree with tailscaled's rule: said loudly.
    status.write_text(status_of(
        directory, [("laptop", k2, third), ("clone", clone, cloned)], [], render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1
    assert "DISAGREEMENT: 1 peer(s) where the node's own verdict differs" in out
    assert f"  clone {format_node_public(clone)}: the node shows it" in out
    assert _tree(directory) == before


def test_forgeable_signatures_are_warned_about_not_dropped(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str]
) -> None:
    rot = SigningKey.generate()
    zero, tiny, chained, outer, fine, plain = keys(6)
    tiny_start = direct(os.urandom(32), IDENTITY_NONCANONICAL)
    peers = [
        # `tailscale lock sign nodekey:…` without a rotation key: an all-zero wrapping key.
        ("zero", zero, direct(zero, bytes(32))),
        # A small-order wrapping key, non-canonically encoded.
        ("tiny", tiny, direct(tiny, IDENTITY_NONCANONICAL)),
        # A rotation forged (no secret) on top of a direct signature with that key.
        ("chained", chained, rotate(tiny_start, chained, None, bytes(rot.verify_key))),
        # A genuine rotation whose own wrapping key, the next rotation's, is all-zero.
        ("outer", outer, rotate(direct(os.urandom(32), bytes(rot.verify_key)), outer, rot,
                                bytes(32))),
        ("fine", fine, direct(fine, bytes(rot.verify_key))),
        ("plain", plain, direct(plain)),
    ]
    status = tmp_path / "status.json"
    status.write_text(status_of(directory, peers, [], render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 0, out  # a warning is not a verdict
    assert "6 peers: 6 authorized, 0 not authorized" in out
    assert "WARNING: 4 signature(s) anyone can extend with a forged rotation" in out
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    report = json.loads(out)
    warned = {p["Name"]: p["Forgeable"] for p in report["Peers"]}
    assert report["Forgeable"] == 4 and all(p["Authorized"] for p in report["Peers"])
    assert warned["zero"].startswith("its wrapping key is all-zero")
    assert warned["tiny"].startswith("its wrapping key is a small-order point")
    assert "level 1 of its rotation chain (a direct signature)" in warned["chained"]
    assert "small-order" in warned["chained"]
    assert warned["outer"].startswith("its wrapping key is all-zero")
    assert warned["fine"] == "" and warned["plain"] == ""


def test_html_report_escapes_hostile_names(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = keys(3)
    hostile = ['<script>alert("x")</script>', "<img src=x onerror=alert(1)>", "a&b'\"</td>"]
    status = tmp_path / "status.json"
    bad = direct(c).replace(signature=bytes(64))
    status.write_text(status_of(directory, [(hostile[0], a, direct(a, bytes(32))),
                                            (hostile[1], b, direct(b)), (hostile[2], c, bad)],
                                [], render))
    page = tmp_path / "report.html"
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status),
                       "--html", str(page))
    assert code == 1 and "DISAGREEMENT: 1 peer(s)" in out
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<style>" in text
    for name in hostile:
        assert name not in text
    assert "<script" not in text and "<img" not in text and "</td>\"" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "a&amp;b&#x27;&quot;&lt;/td&gt;" in text
    assert "Forgeable signatures" in text and "Disagreements with the node" in text
    assert format_node_public(a) in text and "tlpub:" in text  # the trusted key
    # Everything a browser could fetch or run would be a tag or attribute we did not write.
    for needle in ("src=", "href=", "<link", "<iframe", "javascript:"):
        assert needle not in text.replace("src=x", "")


def test_peers_export_from_a_status_feeds_audit(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, gone = keys(3)
    status = tmp_path / "status.json"
    status.write_text(status_of(directory, [("alpha.ts.net.", a, direct(a)),
                                            ("be#ta\nevil", b, direct(b))],
                                [("gone", gone, direct(gone))], render))
    out_file = tmp_path / "peers.txt"
    assert main(["peers", "export", "--status", str(status), "--out", str(out_file)]) == 0
    # The LocalAPI's form has the filtered peer's signature too (here a good one: the status
    # is made up, so the audit of the export disagrees with nothing but finds it authorized).
    n = 3 if render.has_filtered_signatures else 2
    assert (f"wrote {n} signed peer(s); {3 - n} without a signature left out"
            in capsys.readouterr().err)
    lines = out_file.read_text().splitlines()
    assert len(lines) == n and lines[0].startswith(f"{format_node_public(a)} ")
    assert lines[0].endswith(" # alpha.ts.net.") and "\n" not in lines[1]
    code, out, _ = run(capsys, "--authority", str(directory), "--peers", str(out_file), "--json")
    report = json.loads(out)
    assert code == 0 and report["Input"] == "peers file"
    assert [p["Name"] for p in report["Peers"]] == [
        "alpha.ts.net.", "be ta\\x0aevil", "gone"][:n]
    assert all(p["Authorized"] for p in report["Peers"])


def _deep_nested(levels: int, direct_kind: object = "direct",
                 rotation_kind: object = "rotation") -> dict[str, object]:
    sig: dict[str, object] = {"SigKind": direct_kind, "Signature": ""}
    for _ in range(levels):
        sig = {"SigKind": rotation_kind, "Signature": "", "Nested": sig}
    return sig


def _mutations(doc: dict[str, object]) -> dict[str, str]:
    peer = doc["VisiblePeers"][0]  # type: ignore[index]
    sig = peer["NodeKeySignature"]

    def with_peer(**fields: object) -> str:
        return json.dumps({**doc, "VisiblePeers": [{**peer, **fields}]})

    def with_sig(**fields: object) -> str:
        return with_peer(NodeKeySignature={**sig, **fields})

    def without(key: str) -> str:
        return json.dumps({k: v for k, v in doc.items() if k != key})

    return {
        "empty": "", "not JSON": "{", "a list": "[]", "a string": '"status"',
        "deeply nested": "[" * 100_000, "not UTF-8 safe JSON": '{"SchemaVersion": "\\ud800"}',
        "no SchemaVersion": without("SchemaVersion"),
        "schema 2": json.dumps({**doc, "SchemaVersion": "2"}),
        "schema as a number": json.dumps({**doc, "SchemaVersion": 1}),
        "lock disabled": json.dumps({**doc, "Enabled": False}),
        "no Head": without("Head"), "Head a number": json.dumps({**doc, "Head": 7}),
        "Head not base32": json.dumps({**doc, "Head": "!" * 52}),
        "no NodeKey": without("NodeKey"),
        "no TrustedKeys": without("TrustedKeys"),
        "TrustedKeys of numbers": json.dumps({**doc, "TrustedKeys": [1]}),
        "TrustedKeys Public a number": json.dumps({**doc, "TrustedKeys": [{"Public": 5}]}),
        "VisiblePeers an object": json.dumps({**doc, "VisiblePeers": {}}),
        "VisiblePeers of numbers": json.dumps({**doc, "VisiblePeers": [1]}),
        "FilteredPeers a string": json.dumps({**doc, "FilteredPeers": "x"}),
        "peer NodeKey missing": json.dumps({**doc, "VisiblePeers": [
            {k: v for k, v in peer.items() if k != "NodeKey"}]}),
        "peer NodeKey a list": with_peer(NodeKey=[1]),
        "no NodeKeySignature": with_peer(NodeKeySignature=None),
        "SigKind unknown": with_sig(SigKind="sideways"),
        "SigKind a list": with_sig(SigKind=["direct"]),
        "PublicKey a number": with_sig(PublicKey=5),
        "PublicKey not hex": with_sig(PublicKey="tlpub:zz"),
        "KeyID without prefix": with_sig(KeyID="00" * 32),
        "Signature not base64": with_sig(Signature="***"),
        "Signature a number": with_sig(Signature=3),
        "Nested a list": with_sig(Nested=[]),
        "nested too deeply": with_peer(NodeKeySignature=_deep_nested(40)),
        "WrappingPublicKey an object": with_sig(WrappingPublicKey={}),
    }


def test_bad_status_documents_are_one_line_and_change_nothing(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = os.urandom(32)
    doc = json.loads(status_of(directory, [("a", a, direct(a))], [], _ours))
    before = _tree(directory)
    status = tmp_path / "status.json"
    for what, content in _mutations(doc).items():
        status.write_text(content)
        code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
        assert code == 1 and out == "", (what, out)
        assert err.count("\n") == 1 and err.startswith("tka: "), (what, err)
        assert "internal error" not in err and "Traceback" not in err, (what, err)
        assert len(err) < 600, (what, err)
    with status.open("wb") as fh:  # huge: larger than any status document
        fh.truncate((64 << 20) + 1)
    code, _, err = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and "larger than 64 MiB" in err
    assert _tree(directory) == before


def test_an_authority_that_is_not_one_or_of_another_tailnet(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = os.urandom(32)
    status = tmp_path / "status.json"
    status.write_text(status_of(directory, [("a", a, direct(a))], [], _ours))

    def refused(authority: Path, says: str) -> None:
        before = _tree(authority) if authority.is_dir() else None
        code, out, err = run(capsys, "--authority", str(authority), "--status", str(status))
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert err.startswith("tka: ") and says in err and "internal error" not in err, err
        assert (_tree(authority) if authority.is_dir() else None) == before

    refused(tmp_path / "nowhere", "no such directory")
    refused(status, "is not a directory")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "holds no AUMs")
    refused(directory.parent.parent, "pass its tka-profiles/<id> directory (profile-1234)")

    # Another tailnet's directory: a status of this one does not fit it, and says so.
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = SigningKey.generate()
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"t" * 32),),
                  keys=(ed25519_key(bytes(other.verify_key)),), state_id1=id1, state_id2=id2)
    Authority.create(FilesystemStorage(other_root / "tka"), state, AUMSigner.over_digest(
        bytes(other.verify_key), lambda d: other.sign(d).signature))
    refused(other_root / "tka", "different tailnets")
    # The same head but other trusted keys listed in the status.
    doc = json.loads(status.read_text())
    doc["TrustedKeys"] = [{**doc["TrustedKeys"][0], "Public": "tlpub:" + "11" * 32}]
    status.write_text(json.dumps(doc))
    refused(directory, "other trusted keys than the authority directory")

    # A corrupt AUM in the directory.
    status.write_text(status_of(directory, [("a", a, direct(a))], [], _ours))
    victim = next(p for p in directory.rglob("*") if p.is_file() and len(p.name) == 52)
    victim.write_bytes(b"\xff" + victim.read_bytes()[1:])
    refused(directory, "corrupt")


@pytest.fixture(params=["ipnstate-ours", "ipnstate-go"])
def ipnstate_render(request: pytest.FixtureRequest) -> Render:
    if request.param == "ipnstate-ours":
        return Render("ipnstate-ours", FORM_IPNSTATE, _ipnstate_json)
    return Render("ipnstate-go", FORM_IPNSTATE,
                  _go_writer(request.getfixturevalue("oracle"), "status_ipnstate_json"))


def test_our_ipnstate_writer_is_gos(directory: Path, oracle: Any) -> None:
    """`_ipnstate_json` (used where Go is missing) writes what Go's json.MarshalIndent of a real
    ipnstate.TailnetLockStatus does, value for value."""
    rot = SigningKey.generate()
    a, b, c, d = keys(4)
    first = direct(a, bytes(rot.verify_key))
    visible = [("a.ts.net.", b, rotate(first, b, rot, bytes(32))), ("unsigned", c, None)]
    filtered = [("old", a, first), ("gone", d, None)]
    go = _go_writer(oracle, "status_ipnstate_json")
    ours = _ipnstate_json
    # status_of draws random keys, so both writers are given the same LockStatus.
    seen: list[LockStatus] = []
    sigs: dict[bytes, NodeKeySignature] = {}

    def capture(st: LockStatus, filtered_sigs: dict[bytes, NodeKeySignature]) -> str:
        seen.append(st)
        sigs.update(filtered_sigs)
        return ""

    status_of(directory, visible, filtered, capture)
    st = seen[0].replace(trusted_keys=tuple(
        k.replace(meta={"z": "1", "a": "<&>"}) for k in seen[0].trusted_keys))
    assert json.loads(ours(st, sigs)) == json.loads(go(st, sigs))


def test_the_localapi_form_gives_the_filtered_peers_their_reasons(
    directory: Path, tmp_path: Path, ipnstate_render: Render,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ipnstate.TailnetLockStatus keeps the filtered peers' signatures, so the audit re-runs
    the node's whole filter: the rotation rule (a longer chain from the same wrapping key
    drops the clone; equally long chains drop each other), a missing signature, an untrusted
    signer, each named by the node's host name and agreeing with the node."""
    rot, rot2, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    k0, k1, k2, clone, t0, twin1, twin2, bare, alien, web = keys(10)
    first = direct(k0, bytes(rot.verify_key))
    second = rotate(first, k1, rot, bytes(rot.verify_key))
    third = rotate(second, k2, rot, bytes(rot.verify_key))
    cloned = rotate(first, clone, rot, bytes(rot.verify_key))
    start = direct(t0, bytes(rot2.verify_key))
    tied1 = rotate(start, twin1, rot2, bytes(rot2.verify_key))
    tied2 = rotate(start, twin2, rot2, bytes(rot2.verify_key))
    untrusted = _signed(NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(alien),
                                         key_id=bytes(stranger.verify_key)), stranger)
    before = _tree(directory)
    status = tmp_path / "status.json"
    status.write_text(status_of(
        directory, [("laptop.ts.net.", k2, third), ("web.ts.net.", web, direct(web))],
        [("laptop-old.ts.net.", k1, second), ("clone.ts.net.", clone, cloned),
         ("twin1.ts.net.", twin1, tied1), ("twin2.ts.net.", twin2, tied2),
         ("bare.ts.net.", bare, None), ("alien.ts.net.", alien, untrusted)],
        ipnstate_render))
    assert "SchemaVersion" not in json.loads(status.read_text())
    code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and err == "", err
    assert "8 peers: 2 authorized, 6 not authorized" in out and "DISAGREEMENT" not in out
    for name, key, why in [("laptop-old.ts.net.", k1, ROTATED), ("clone.ts.net.", clone, ROTATED),
                           ("twin1.ts.net.", twin1, ROTATION_TIE),
                           ("twin2.ts.net.", twin2, ROTATION_TIE),
                           ("bare.ts.net.", bare, NO_SIGNATURE),
                           ("alien.ts.net.", alien, "NotTrustedError: key: key not found")]:
        assert f"{name} {format_node_public(key)}: {why}\n" in out, (name, out)
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    report = json.loads(out)
    assert report["Input"] == FORM_IPNSTATE and report["Disagreements"] == 0
    assert [(p["Name"], p["NodeVerdict"], p["Visible"]) for p in report["Peers"]][:3] == [
        ("laptop.ts.net.", "visible", True), ("web.ts.net.", "visible", True),
        ("laptop-old.ts.net.", "filtered", False)]
    # The LocalAPI's status of a node that kept the clone disagrees with tailscaled's rule.
    status.write_text(status_of(directory, [("laptop", k2, third), ("clone", clone, cloned)],
                                [("old", k1, second)], ipnstate_render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and f"  clone {format_node_public(clone)}: the node shows it" in out
    assert _tree(directory) == before


def test_forgeable_wrapping_keys_in_the_localapi_form_are_named(
    directory: Path, tmp_path: Path, ipnstate_render: Render,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A zero and a small-order wrapping key, at a visible peer and at a filtered one whose
    forged rotation the node dropped by the rotation rule: warned about, by name, counted;
    the verdicts are tailscaled's."""
    zero, tiny, victim, forged_key = keys(4)
    victim_sig = direct(victim, IDENTITY_NONCANONICAL)
    forged = rotate(victim_sig, forged_key, None, bytes(32))  # no secret needed
    status = tmp_path / "status.json"
    # The forged rotation wins the rotation rule: the victim is dropped as rotated away.
    status.write_text(status_of(
        directory, [("zero.ts.net.", zero, direct(zero, bytes(32))),
                    ("tiny.ts.net.", tiny, direct(tiny, IDENTITY_NONCANONICAL)),
                    ("intruder.ts.net.", forged_key, forged)],
        [("victim.ts.net.", victim, victim_sig)], ipnstate_render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and "DISAGREEMENT" not in out
    assert f"victim.ts.net. {format_node_public(victim)}: {ROTATED}" in out
    assert "WARNING: 4 signature(s) anyone can extend with a forged rotation" in out
    for name in ("zero.ts.net.", "tiny.ts.net.", "intruder.ts.net.", "victim.ts.net."):
        assert f"\n  {name} nodekey:" in out, name
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    report = json.loads(out)
    warned = {p["Name"]: p["Forgeable"] for p in report["Peers"]}
    assert report["Forgeable"] == 4
    assert warned["zero.ts.net."].startswith("its wrapping key is all-zero")
    assert warned["tiny.ts.net."].startswith("its wrapping key is a small-order point")
    assert warned["victim.ts.net."].startswith("its wrapping key is a small-order point")
    assert warned["intruder.ts.net."].startswith("its wrapping key is all-zero")
    assert "level 1 of its rotation chain" not in warned["intruder.ts.net."]


def test_a_peer_the_node_shows_without_a_signature_is_exempt(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str]
) -> None:
    """tailscaled keeps a peer without a signature only when the coordination server marks it
    UnsignedPeerAPIOnly; the status then shows the zero signature ("invalid", or 0), which
    is no signature, not a document error. Kept: exit 0, and said."""
    a, apionly, gone = keys(3)
    status = tmp_path / "status.json"
    status.write_text(status_of(directory, [("a", a, direct(a)), ("apionly", apionly, None)],
                                [("gone", gone, None)], render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and "DISAGREEMENT" not in out  # gone is filtered
    assert "3 peers: 1 authorized, 1 not authorized, 1 exempt" in out
    assert "NOTE: 1 peer(s) the node keeps without a signature" in out
    assert f"  apionly {format_node_public(apionly)}\n" in out
    gone_why = NO_SIGNATURE if render.has_filtered_signatures else FILTERED_UNSIGNED
    assert f"gone {format_node_public(gone)}: {gone_why}" in out
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    peer = json.loads(out)["Peers"][1]
    assert (peer["Authorized"], peer["Exempt"], peer["Visible"], peer["Reason"]) == (
        False, True, True, EXEMPT)
    status.write_text(status_of(directory, [("apionly", apionly, None)], [], render))
    code, out, _ = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 0 and "1 peers: 0 authorized, 0 not authorized, 1 exempt" in out


def test_a_status_given_as_the_peers_file_is_read_as_a_status(
    directory: Path, tmp_path: Path, render: Render, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = keys(2)
    text = status_of(directory, [("a.ts.net.", a, direct(a))], [("b.ts.net.", b, direct(b))],
                     render)
    status = tmp_path / "status.json"
    status.write_text("\n  " + text)
    as_status = run(capsys, "--authority", str(directory), "--status", str(status), "--json")
    as_peers = run(capsys, "--authority", str(directory), "--peers", str(status), "--json")
    assert as_status == as_peers and as_status[0] == 1
    assert json.loads(as_peers[1])["Input"] == render.form
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert run(capsys, "--authority", str(directory), "--peers", "-", "--json") == as_status


def _ipnstate_mutations(doc: dict[str, Any]) -> dict[str, str]:
    peer = doc["VisiblePeers"][0]
    sig = peer["NodeKeySignature"]

    def with_sig(**fields: object) -> str:
        return json.dumps({**doc, "VisiblePeers": [{**peer, "NodeKeySignature": {
            **sig, **fields}}]})

    return {
        "no Enabled": json.dumps({k: v for k, v in doc.items() if k != "Enabled"}),
        "Enabled a string": json.dumps({**doc, "Enabled": "true"}),
        "lock disabled": json.dumps({**doc, "Enabled": False, "Head": None}),
        "Head null": json.dumps({**doc, "Head": None}),
        "Head 31 bytes": json.dumps({**doc, "Head": doc["Head"][:31]}),
        "Head with 256": json.dumps({**doc, "Head": [256, *doc["Head"][1:]]}),
        "Head with true": json.dumps({**doc, "Head": [True, *doc["Head"][1:]]}),
        "Head as text (schema 1 without its version)": json.dumps({**doc, "Head": "A" * 52}),
        "NodeKey null": json.dumps({**doc, "NodeKey": None}),
        "TrustedKeys an object": json.dumps({**doc, "TrustedKeys": {}}),
        "TrustedKeys Key missing": json.dumps({**doc, "TrustedKeys": [{"Votes": 1}]}),
        "TrustedKeys Key not nlpub": json.dumps({**doc, "TrustedKeys": [{"Key": "x"}]}),
        "VisiblePeers of strings": json.dumps({**doc, "VisiblePeers": ["x"]}),
        "no NodeKeySignature": json.dumps({**doc, "VisiblePeers": [
            {k: v for k, v in peer.items() if k != "NodeKeySignature"}]}),
        "SigKind a name": with_sig(SigKind="direct"),
        "SigKind 256": with_sig(SigKind=256),
        "SigKind false": with_sig(SigKind=False),
        "Pubkey hex": with_sig(Pubkey="tlpub:00"),
        "KeyID a number": with_sig(KeyID=3),
        "Signature URL-safe": with_sig(Signature="-_-_"),
        "Nested a string": with_sig(Nested="x"),
        "Nested too deeply": with_sig(Nested=_deep_nested(40, 1, 2)),
        "WrappingPubkey a list": with_sig(WrappingPubkey=[1]),
    }


def test_bad_localapi_documents_are_one_line_and_change_nothing(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = os.urandom(32)
    doc = json.loads(status_of(directory, [("a", a, direct(a))], [], _ipnstate_json))
    before = _tree(directory)
    status = tmp_path / "status.json"
    for what, content in _ipnstate_mutations(doc).items():
        status.write_text(content)
        code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
        assert code == 1 and out == "", (what, out)
        assert err.count("\n") == 1 and err.startswith(f"tka: {status}"), (what, err)
        assert "internal error" not in err and "Traceback" not in err, (what, err)
        assert len(err) < 600, (what, err)
    # Another tailnet's (or another time's) status: its head is not the directory's.
    status.write_text(json.dumps({**doc, "Head": [7] * 32}))
    code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and err.count("\n") == 1 and "different tailnets" in err, err
    status.write_text(json.dumps({**doc, "TrustedKeys": None}))
    code, out, err = run(capsys, "--authority", str(directory), "--status", str(status))
    assert code == 1 and "other trusted keys than the authority directory" in err, err
    assert _tree(directory) == before
