"""Hardware-held lock keys beside real Tailscale nodes: every story runs real `tailscaled` and
`tailscale` (built from the tailscale.com module) against Tailscale's test control server, with
the lock key in SoftHSM, made and used only by `tka`.

The hardware key never touches a node: `tka` works from a copy of a node's authority directory
(`--authority DIR`) and what it signs reaches the tailnet the ways a team on Tailscale's service
has: `tailscale lock init|add` on a node, `tailscale up --auth-key` with a key `tka` wrapped,
`tailscale lock revoke-keys --cosign|--finish` with blobs `tka` made or co-signed, and, for
node-key signatures (which Tailscale's service takes only from a node's own key), the control
server storing what `tka` signed, as our coordination service does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from realnet_harness import AUTH_KEY, RealNode, RealTailnet

from verifier import revocation
from verifier.aum import MessageKind
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import node_key_binary, parse_node_public

REPO = Path(__file__).resolve().parents[2]
FINISH = re.compile(r"tailscale lock revoke-keys --finish ([0-9A-F]+)")
COSIGN = re.compile(r"tailscale lock revoke-keys --cosign ([0-9A-F]+)")
SYNC = 30.0


def tka(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "signer.cli", *args], cwd=REPO, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def copy_authority(node: RealNode, dest: Path) -> Path:
    """What a team does: copy a node's tka-profiles/<id> off the node."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(node.tka_dir, dest)
    return dest


def wait_same_head(net: RealTailnet, nodes: list[RealNode]) -> str:
    head = str(nodes[0].lock_status()["Head"])

    def agreed() -> bool:
        nonlocal head
        heads = {str(n.lock_status().get("Head")) for n in nodes}
        head = heads.pop()
        return not heads and head != "None"

    net.wait_for(agreed, SYNC, "every node to reach the same authority head")
    return head


def trusted(node: RealNode) -> set[str]:
    return {k["Public"] for k in node.lock_status().get("TrustedKeys") or []}


def hsm_key(softhsm_token: Any, env: dict[str, str], name: str) -> tuple[str, str]:
    uri = softhsm_token.uri(object=name)
    out = tka(env, "key", "generate", uri)
    return uri, out.split()[0]


def locked_tailnet(
    net: RealTailnet, softhsm_token: Any, env: dict[str, str]
) -> tuple[str, str, RealNode, RealNode]:
    """n1 and n2 up; a real `tailscale lock init` on n1 trusting n1's own key and a SoftHSM key
    that `tka key generate` made."""
    hsm, hsm_pub = hsm_key(softhsm_token, env, "tailnet-lock-hsm")
    n1 = net.add_node("n1", auth_key=AUTH_KEY)
    n2 = net.add_node("n2", auth_key=AUTH_KEY)
    out = n1.tailscale("lock", "init", "--gen-disablements", "1", "--confirm", n1.lock_key,
                       hsm_pub).stdout
    assert re.search(r"disablement-secret:[0-9A-F]{64}", out), out
    net.wait_for(lambda: all(n.lock_status()["Enabled"] for n in (n1, n2)), SYNC,
                 "lock to be enabled on every node")
    wait_same_head(net, [n1, n2])
    assert hsm_pub in trusted(n2)
    return hsm, hsm_pub, n1, n2


def test_init_trusts_a_softhsm_key_and_tka_reads_the_real_directory(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net, env = real_tailnet, softhsm_token.env()
    _hsm, hsm_pub, _n1, n2 = locked_tailnet(net, softhsm_token, env)
    directory = copy_authority(n2, tmp_path / "authority")
    before = tree_digest(directory)
    status = tka(env, "status", "--authority", str(directory), "--json")
    assert str(n2.lock_status()["Head"]) in status and hsm_pub in status
    log = tka(env, "log", "--authority", str(directory))
    assert "checkpoint" in log and hsm_pub in log
    assert tree_digest(directory) == before


def test_node_signed_by_tka_on_softhsm_is_accepted_by_real_peers(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net, env = real_tailnet, softhsm_token.env()
    hsm, _, n1, n2 = locked_tailnet(net, softhsm_token, env)
    n3 = net.add_node("n3", auth_key=AUTH_KEY)
    key3 = n3.node_key
    net.wait_for(lambda: key3 in n1.filtered(), SYNC, "n3 to be filtered on n1 (unsigned)")

    directory = copy_authority(n1, tmp_path / "authority")
    out = tka(env, "sign", "--yes", "--authority", str(directory), "--key", hsm, key3,
              n3.lock_key)
    signature = base64.b64decode(out.split()[0])
    nks = NodeKeySignature.from_cbor(signature)
    assert nks.kind == SigKind.DIRECT and nks.wrapping_pubkey  # a real rotation key, never zero
    net.set_signature(key3, signature)  # stored as the coordination service stores it
    for peer in (n1, n2):
        net.wait_for(lambda p=peer: key3 in p.visible(), SYNC, f"n3 visible on {peer.name}")
    net.wait_for(lambda: n3.lock_status()["NodeKeySigned"], SYNC, "n3 to see itself signed")


def test_auth_keys_wrapped_on_softhsm_enrol_real_nodes(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    """Direct mode (the HSM key signs the credential; nothing to deliver) and revocable mode
    (a fresh credential key, trusted by an AddKey the HSM key signs, delivered by a real
    `tailscale lock revoke-keys --finish`): a real `tailscale up --auth-key` enrols a node that
    the other real nodes see as signed, with the signature the node itself made."""
    net, env = real_tailnet, softhsm_token.env()
    hsm, _, n1, n2 = locked_tailnet(net, softhsm_token, env)
    directory = copy_authority(n1, tmp_path / "authority")

    direct = tka(env, "sign", "--yes", "--mode", "direct", "--authority", str(directory),
                 "--key", hsm, AUTH_KEY).split()[0]
    assert direct.startswith(AUTH_KEY + "--TL")
    kiosk = net.add_node("kiosk", auth_key=direct)
    key = kiosk.node_key
    sent = net.control_node(key)["registered_signature"]
    assert sent, "the node sent no signature when it registered"
    nks = NodeKeySignature.from_cbor(base64.b64decode(sent))
    assert nks.kind == SigKind.ROTATION and nks.nested is not None
    assert nks.nested.kind == SigKind.CREDENTIAL
    for peer in (n1, n2):
        net.wait_for(lambda p=peer: key in p.visible(), SYNC, f"kiosk visible on {peer.name}")

    proc = subprocess.run([sys.executable, "-m", "signer.cli", "sign", "--yes", "--authority",
                           str(directory), "--key", hsm, "--wrapper-stableid", "nRealnet1CNTRL",
                           AUTH_KEY], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    wrapped = proc.stdout.strip()
    blob = FINISH.findall(proc.stderr)[0]
    assert revocation.from_blob(blob).kind == MessageKind.ADD_KEY
    n2.tailscale("lock", "revoke-keys", "--finish", blob)
    head = wait_same_head(net, [n1, n2])
    assert any("pre-auth key" in str(k.get("Meta")) for k in
               n1.lock_status()["TrustedKeys"]), n1.lock_status()["TrustedKeys"]
    printer = net.add_node("printer", auth_key=wrapped)
    key = printer.node_key
    for peer in (n1, n2):
        net.wait_for(lambda p=peer: key in p.visible(), SYNC, f"printer visible on {peer.name}")
    assert head


def test_key_additions_and_revocations_signed_on_softhsm_go_through_real_nodes(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    """`tka add --authority` on the HSM, delivered by a real `--finish`; a revocation started
    by a real `tailscale lock revoke-keys`, co-signed by `tka` on the HSM (with the tally), and
    finished by a real `--finish`; and the reverse (started by `tka`, co-signed by the node)."""
    net, env = real_tailnet, softhsm_token.env()
    hsm, hsm_pub, n1, n2 = locked_tailnet(net, softhsm_token, env)

    # A key for n2, added on the HSM and transmitted by n2.
    directory = copy_authority(n1, tmp_path / "authority")
    out = tka(env, "add", "--yes", "--authority", str(directory), "--key", hsm, n2.lock_key)
    n2.tailscale("lock", "revoke-keys", "--finish", FINISH.findall(out)[0])
    net.wait_for(lambda: n2.lock_key in trusted(n1), SYNC, "n1 to trust n2's key")
    wait_same_head(net, [n1, n2])

    # n2's key is compromised: n1 starts the revocation, the HSM co-signs it.
    started = n1.tailscale("lock", "revoke-keys", n2.lock_key).stdout
    blob = COSIGN.findall(started)[0]
    directory = copy_authority(n1, tmp_path / "authority")
    cosigned = tka(env, "revoke-keys", "--yes", "--authority", str(directory), "--key", hsm,
                   "--cosign", blob)
    assert "carries 2 vote(s)" in cosigned and "WINS" in cosigned
    assert f"revokes {n2.lock_key}" in cosigned
    finish = FINISH.findall(cosigned)[0]
    n1.tailscale("lock", "revoke-keys", "--finish", finish)
    net.wait_for(lambda: n2.lock_key not in trusted(n1) and n2.lock_key not in trusted(n2),
                 SYNC, "the revoked key to be gone on every node")
    assert hsm_pub in trusted(n2)

    # The reverse: tka starts on the HSM, the real node co-signs and finishes.
    n3 = net.add_node("n3", auth_key=AUTH_KEY)
    n1.tailscale("lock", "sign", n3.node_key, n3.lock_key)
    directory = copy_authority(n1, tmp_path / "authority")
    out = tka(env, "add", "--yes", "--authority", str(directory), "--key", hsm, n3.lock_key)
    n1.tailscale("lock", "revoke-keys", "--finish", FINISH.findall(out)[0])
    net.wait_for(lambda: n3.lock_key in trusted(n1), SYNC, "n1 to trust n3's key")
    wait_same_head(net, [n1, n3])
    directory = copy_authority(n1, tmp_path / "authority")
    started = tka(env, "revoke-keys", "--authority", str(directory), "--key", hsm, n3.lock_key)
    cosigned = n1.tailscale("lock", "revoke-keys", "--cosign", COSIGN.findall(started)[0]).stdout
    n1.tailscale("lock", "revoke-keys", "--finish", FINISH.findall(cosigned)[0])
    net.wait_for(lambda: n3.lock_key not in trusted(n1), SYNC, "n3's key revoked on n1")
    wait_same_head(net, [n1, n3])

    # Last, the node's own key goes: from now on only the HSM holds a lock key.
    directory = copy_authority(n1, tmp_path / "authority")
    out = tka(env, "remove", "--yes", "--authority", str(directory), "--key", hsm, n1.lock_key)
    n3.tailscale("lock", "revoke-keys", "--finish", FINISH.findall(out)[0])
    net.wait_for(lambda: trusted(n1) == {hsm_pub} and trusted(n3) == {hsm_pub}, SYNC,
                 "the HSM key to be the only trusted key")


def _forge_rotation(direct: NodeKeySignature, new_node_key: bytes) -> bytes:
    """A rotation signature "by" the all-zero wrapping key, made without any secret: the zero
    encoding is a point of order 4, so [k]A takes four values and S = 0 with R = -[k]A
    verifies under the cofactorless rule for one of the four R's, for about one message in
    four; the optional outer WrappingPubkey varies the message until one fits."""
    import hashlib as h
    import os

    order = 2**252 + 27742317777372353535851937790883648493
    multiples = [bytes([1]) + bytes(31), bytes(32), bytes([0xEC]) + b"\xff" * 30 + b"\x7f",
                 bytes(31) + b"\x80"]  # [0]A, [1]A, [2]A, [3]A for A = the zero encoding
    zero = bytes(32)
    for _ in range(200):
        unsigned = NodeKeySignature(kind=SigKind.ROTATION, pubkey=node_key_binary(new_node_key),
                                    nested=direct, wrapping_pubkey=os.urandom(32))
        message = unsigned.sig_hash()
        for j, r in enumerate(multiples):
            k = int.from_bytes(h.sha512(r + zero + message).digest(), "little") % order
            if (k + j) % 4 == 0:  # [S]B - [k]A = -[k]A = [j]A = R with S = 0
                return unsigned.replace(signature=r + bytes(32)).to_cbor()
    raise AssertionError("no forgery found in 200 tries")


def test_forged_rotation_on_a_zero_wrapping_key(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    """`tailscale lock sign nodekey:X` with no rotation key stores an all-zero wrapping key.
    Anyone can then sign a rotation to any node key Y: real peers accept Y and drop X (the
    longer rotation chain makes X obsolete). `tka` never emits such a signature, and our
    verifier agrees with the real peers' verdict."""
    net, env = real_tailnet, softhsm_token.env()
    _hsm, _, n1, n2 = locked_tailnet(net, softhsm_token, env)
    victim = net.add_node("victim", auth_key=AUTH_KEY)
    intruder = net.add_node("intruder", auth_key=AUTH_KEY)
    key_x, key_y = victim.node_key, intruder.node_key
    n1.tailscale("lock", "sign", key_x)  # the reference's default: no rotation key
    net.wait_for(lambda: key_x in n2.visible(), SYNC, "the victim visible on n2")
    direct = NodeKeySignature.from_cbor(base64.b64decode(
        net.control_node(key_x)["key_signature"]))
    assert direct.kind == SigKind.DIRECT and direct.wrapping_pubkey == bytes(32)

    forged = _forge_rotation(direct, parse_node_public(key_y))
    net.set_signature(key_y, forged)  # a compromised coordination server would do this
    net.wait_for(lambda: key_y in n2.visible(), SYNC, "the forged node to be accepted on n2")
    net.wait_for(lambda: key_x in n2.filtered() or key_x not in n2.visible(), SYNC,
                 "the victim to be dropped on n2 as rotated away")

    from signer.authority_dir import open_authority_dir

    directory = copy_authority(n2, tmp_path / "authority")
    authority = open_authority_dir(directory)
    authority.node_key_authorized(parse_node_public(key_y), forged)  # ours agrees: authorized

    # tka audit of what n2 itself printed: the same split, and the forgeable chain named.
    status = tmp_path / "status.json"
    status.write_text(n2.tailscale("lock", "status", "--json").stdout)
    proc = subprocess.run([sys.executable, "-m", "signer.cli", "audit", "--authority",
                           str(directory), "--status", str(status), "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["Disagreements"] == 0, proc.stdout + proc.stderr
    by_key = {p["NodeKey"]: p for p in report["Peers"]}
    assert by_key[key_y]["Authorized"] and by_key[key_y]["Name"] == "intruder"
    assert "all-zero" in by_key[key_y]["Forgeable"]
    assert by_key[key_x]["NodeVerdict"] == "filtered" and not by_key[key_x]["Authorized"]
    text = subprocess.run([sys.executable, "-m", "signer.cli", "audit", "--authority",
                           str(directory), "--status", str(status)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60).stdout
    assert "WARNING: 1 signature(s) anyone can extend" in text and "intruder" in text

    # With the signatures the coordination server hands out (the victim's included, which
    # the node's status no longer shows), the audit drops the victim by the rotation rule,
    # as the real node did.
    peers = tmp_path / "peers.txt"
    peers.write_text("".join(f"{n['node_key']} {n['key_signature']} # {n['name']}\n"
                             for n in net.control_nodes()
                             if n["key_signature"] and n["node_key"] != n2.node_key))
    proc = subprocess.run([sys.executable, "-m", "signer.cli", "audit", "--authority",
                           str(directory), "--peers", str(peers), "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    verdicts = {p["NodeKey"]: p for p in json.loads(proc.stdout)["Peers"]}
    assert verdicts[key_y]["Authorized"]
    assert not verdicts[key_x]["Authorized"] and "key rotation" in verdicts[key_x]["Reason"]
    assert {k for k, v in verdicts.items() if v["Authorized"]} == n2.visible()


def test_audit_of_a_real_node_agrees_with_its_own_filter(
    real_tailnet: RealTailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    """`tka audit` on a copy of a real node's directory, with the signatures the coordination
    server hands out, gives the node's own visible/filtered split: signed, unsigned, signed
    by an untrusted key, and a signature presented for another node's key."""
    net, env = real_tailnet, softhsm_token.env()
    _hsm, _, n1, n2 = locked_tailnet(net, softhsm_token, env)
    signed = net.add_node("signed", auth_key=AUTH_KEY)
    unsigned = net.add_node("unsigned", auth_key=AUTH_KEY)
    stranger = net.add_node("stranger", auth_key=AUTH_KEY)
    n1.tailscale("lock", "sign", signed.node_key, signed.lock_key)
    # Signed by a key the authority does not trust (the stranger's own lock key, via tka).
    from signer.backends.file import write_new_key_file

    untrusted = tmp_path / "untrusted.key"
    write_new_key_file(untrusted)
    directory = copy_authority(n1, tmp_path / "authority")
    out = subprocess.run([sys.executable, "-m", "signer.cli", "sign", "--yes", "--authority",
                          str(directory), "--key", f"file:{untrusted}", stranger.node_key],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "is not trusted" in out.stderr  # tka refuses to sign
    forged = NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(
        parse_node_public(stranger.node_key)), key_id=bytes(32), signature=bytes(64))
    net.set_signature(stranger.node_key, forged.to_cbor())
    expected_visible = {n2.node_key, signed.node_key}
    expected_filtered = {unsigned.node_key, stranger.node_key}
    net.wait_for(lambda: n1.visible() == expected_visible and n1.filtered() == expected_filtered,
                 SYNC, "n1's split into visible and filtered peers")

    directory = copy_authority(n1, tmp_path / "authority")
    before = tree_digest(directory)
    peers = tmp_path / "peers.txt"
    lines = []
    for node in net.control_nodes():
        if node["node_key"] != n1.node_key and node["key_signature"]:
            lines.append(f"{node['node_key']} {node['key_signature']}  # {node['name']}")
    peers.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "signer.cli", "audit", "--authority",
                           str(directory), "--peers", str(peers), "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # some peers are not authorized
    report = json.loads(proc.stdout)
    verdicts = {p["NodeKey"]: p["Authorized"] for p in report["Peers"]}
    assert {k for k, ok in verdicts.items() if ok} == expected_visible
    assert {k for k, ok in verdicts.items() if not ok} == expected_filtered - {unsigned.node_key}
    assert tree_digest(directory) == before
