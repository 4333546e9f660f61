"""`tka audit`: peers' node-key signatures checked against an authority directory in
Tailscale's filesystem layout, read-only, with one line per unauthorized peer."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from signer.cli import main
from verifier.authority import Authority, new_state_ids
from verifier.builder import UpdateBuilder
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.nks import NodeKeySignature, SigKind
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import FilesystemStorage
from verifier.textforms import format_node_public, node_key_binary


def _signer(sk: SigningKey) -> AUMSigner:
    return AUMSigner.over_digest(bytes(sk.verify_key), lambda d: sk.sign(d).signature)


def _direct(signer: SigningKey, node_key: bytes) -> bytes:
    nks = NodeKeySignature(
        kind=SigKind.DIRECT, pubkey=node_key_binary(node_key), key_id=bytes(signer.verify_key)
    )
    return nks.replace(signature=signer.sign(nks.sig_hash()).signature).to_cbor()


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def lock(tmp_path: Path) -> tuple[Path, SigningKey, SigningKey]:
    """An authority directory with two trusted keys, then one of them removed."""
    admin, retired = SigningKey(bytes(range(32))), SigningKey(bytes(range(1, 33)))
    id1, id2 = new_state_ids()
    state = State(
        disablement_values=(disablement_kdf(b"s" * 32),),
        keys=(ed25519_key(bytes(admin.verify_key)), ed25519_key(bytes(retired.verify_key))),
        state_id1=id1,
        state_id2=id2,
    )
    directory = tmp_path / "tka"
    auth, _ = Authority.create(FilesystemStorage(directory), state, _signer(admin))
    builder = UpdateBuilder(auth, _signer(admin))
    builder.remove_key(bytes(retired.verify_key))
    auth.inform(builder.finalize())
    return directory, admin, retired


def test_audit_names_each_unauthorized_peer_and_changes_nothing(
    lock: tuple[Path, SigningKey, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, admin, retired = lock
    keys = [bytes([i]) * 32 for i in range(1, 5)]
    good = _direct(admin, keys[0])
    tampered = bytearray(_direct(admin, keys[2]))
    tampered[-1] ^= 1
    peers = tmp_path / "peers.txt"
    peers.write_text(
        "# exported from a netmap\n"
        f"{format_node_public(keys[0])} {base64.b64encode(good).decode()}\n"
        f"{format_node_public(keys[1])} {_direct(admin, keys[1]).hex()}\n"
        "\n"
        f"{format_node_public(keys[2])} {base64.b64encode(bytes(tampered)).decode()}\n"
        f"{format_node_public(keys[3])} {base64.b64encode(_direct(retired, keys[3])).decode()}\n"
    )
    before = _tree(directory)
    assert main(["audit", "--authority", str(directory), "--peers", str(peers)]) == 1
    out = capsys.readouterr().out
    assert "4 peers: 2 authorized, 2 not authorized" in out
    assert f"line 5: {format_node_public(keys[2])}: SignatureError: invalid signature" in out
    assert f"line 6: {format_node_public(keys[3])}: NotTrustedError: key: key not found" in out
    assert main(["audit", "--authority", str(directory), "--peers", str(peers), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [p["Authorized"] for p in doc["Peers"]] == [True, True, False, False]
    assert [p["Line"] for p in doc["Peers"]] == [2, 3, 5, 6]
    assert doc["TrustedKeys"] == 1
    assert _tree(directory) == before


def test_every_peer_authorized_exits_zero_and_json_is_schema_2(
    lock: tuple[Path, SigningKey, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, admin, _ = lock
    node_key = bytes(range(32, 64))
    peers = tmp_path / "peers.txt"
    peers.write_text(f"{format_node_public(node_key)} {_direct(admin, node_key).hex()}\n")
    base = ["audit", "--authority", str(directory), "--peers", str(peers)]
    assert main(base) == 0
    assert "1 peers: 1 authorized, 0 not authorized" in capsys.readouterr().out
    # Audit's JSON is its own document, version 2; --json=2 asks for it, 1 is gone.
    assert main([*base, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["SchemaVersion"] == "2"
    assert main([*base, "--json=2"]) == 0
    assert json.loads(capsys.readouterr().out) == doc
    assert main([*base, "--json=1"]) == 1
    assert capsys.readouterr().err == "tka: unrecognised version: 1\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nodekey:1234 00", "peers.txt:1:"),
        (f"{format_node_public(bytes(32))}", "expected `nodekey:<hex> <signature>`"),
        (f"{format_node_public(bytes(32))} not*base64", "neither hex nor standard base64"),
    ],
)
def test_a_bad_peer_line_is_one_line_naming_it(
    lock: tuple[Path, SigningKey, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: str,
    message: str,
) -> None:
    directory, _, _ = lock
    peers = tmp_path / "peers.txt"
    peers.write_text(line + "\n")
    assert main(["audit", "--authority", str(directory), "--peers", str(peers)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tka: ") and message in err


def test_missing_or_corrupt_authority_is_reported_and_left_alone(
    lock: tuple[Path, SigningKey, SigningKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, _, _ = lock
    peers = tmp_path / "peers.txt"
    peers.write_text("")
    missing = tmp_path / "nowhere"
    assert main(["audit", "--authority", str(missing), "--peers", str(peers)]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert not missing.exists()
    victim = next(p for p in directory.rglob("*") if p.is_file() and len(p.name) == 52)
    victim.write_bytes(b"\xff" + victim.read_bytes()[1:])
    before = _tree(directory)
    assert main(["audit", "--authority", str(directory), "--peers", str(peers)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tka: ")
    assert _tree(directory) == before


def _status_doc(directory: Path, admin: SigningKey, peers: list[tuple[str, bytes]]) -> dict:
    """A `tailscale lock status --json` document as Tailscale's CLI writes it (schema "1")."""
    from verifier.textforms import format_aum_hash, format_tlpub

    head = Authority.open(FilesystemStorage(directory)).head
    visible = []
    for name, node_key in peers:
        nks = NodeKeySignature.from_cbor(_direct(admin, node_key))
        visible.append({
            "ID": "n1", "DNSName": name, "TailscaleIPs": ["100.64.0.9"],
            "NodeKey": format_node_public(node_key),
            "NodeKeySignature": {
                "SigKind": "direct", "PublicKey": f"tlpub:{nks.pubkey.hex()}",
                "KeyID": f"tlpub:{nks.key_id.hex()}",
                "Signature": base64.urlsafe_b64encode(nks.signature).decode(),
            },
        })
    return {
        "SchemaVersion": "1", "Enabled": True, "PublicKey": format_tlpub(bytes(32)),
        "NodeKey": format_node_public(bytes(32)), "Head": format_aum_hash(head),
        "NodeKeySigned": True,
        "TrustedKeys": [{"Kind": "25519", "Votes": 1,
                         "Public": format_tlpub(bytes(admin.verify_key))}],
        "VisiblePeers": visible,
        "FilteredPeers": [{"ID": "n9", "DNSName": "gone", "TailscaleIPs": [],
                           "NodeKey": format_node_public(bytes(range(32)))}],
        "State": 1,
    }


def test_status_json_from_a_node_html_report_and_bad_documents(
    lock: tuple[Path, SigningKey, SigningKey], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, admin, _ = lock
    before = _tree(directory)
    hostile = "<script>alert(1)</script>"
    doc = _status_doc(directory, admin, [("web", bytes(32 * [7])), (hostile, bytes(32 * [8]))])
    status = tmp_path / "status.json"
    status.write_text(json.dumps(doc))
    page = tmp_path / "report.html"
    # Exit 1: the node filters one peer (and so does the audit), though nothing disagrees.
    assert main(["audit", "--authority", str(directory), "--status", str(status), "--json",
                 "--html", str(page)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["SchemaVersion"] == "2" and report["Disagreements"] == 0
    assert [p["Name"] for p in report["Peers"]] == ["web", hostile, "gone"]
    gone = report["Peers"][2]
    assert gone["NodeVerdict"] == "filtered" and not gone["Authorized"]
    text = page.read_text()
    assert hostile not in text and "&lt;script&gt;" in text and "<script" not in text

    # The node says it shows a peer whose signature does not verify here: said loudly.
    doc["VisiblePeers"][0]["NodeKeySignature"]["Signature"] = base64.urlsafe_b64encode(
        bytes(64)).decode()
    status.write_text(json.dumps(doc))
    assert main(["audit", "--authority", str(directory), "--status", str(status)]) == 1
    assert "DISAGREEMENT: 1 peer(s)" in capsys.readouterr().out

    bad = {
        "not-json": "{", "a list": "[]", "schema 2": json.dumps({**doc, "SchemaVersion": "2"}),
        "no head": json.dumps({k: v for k, v in doc.items() if k != "Head"}),
        "other head": json.dumps({**doc, "Head": "A" * 52}),
        "other keys": json.dumps({**doc, "TrustedKeys": []}),
        "bad kind": json.dumps({**doc, "VisiblePeers": [
            {**doc["VisiblePeers"][1], "NodeKeySignature": {"SigKind": "x", "Signature": ""}}]}),
        "peers not list": json.dumps({**doc, "VisiblePeers": {}}),
    }
    for what, content in bad.items():
        status.write_text(content)
        assert main(["audit", "--authority", str(directory), "--status", str(status)]) == 1, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tka: ") and "Traceback" not in err, what
    assert _tree(directory) == before
