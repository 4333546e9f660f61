"""The harness itself, end to end with real `tailscaled` and `tailscale`: nodes join and see each
other, a real `tailscale lock init` reaches every node, the lock filters unsigned peers until
`tailscale lock sign`, a node enrolled with a wrapped auth key is accepted with the signature it
sent at register (the control server keeps it), and `tailscale lock add` goes through
sync/send.

`tailscale lock init` signs every node the control server lists at that moment (its
NeedSignatures), so n2 and n3 join after the init to be the unsigned ones.
"""

from __future__ import annotations

import base64
import re

import nacl.signing
from realnet_harness import AUTH_KEY, RealNode, RealTailnet

from verifier import authkey
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import format_tlpub

SYNC = 30.0
DISABLEMENT = re.compile(r"disablement-secret:([0-9A-F]{64})")


def trusted(node: RealNode) -> set[str]:
    return {k["Public"] for k in node.lock_status_json().get("TrustedKeys") or []}


def heads(nodes: list[RealNode]) -> set[str | None]:
    return {n.lock_head() for n in nodes}


def test_real_nodes_lock_sign_register_capture_and_sync_send(real_tailnet: RealTailnet) -> None:
    net = real_tailnet
    assert net.tka() == {"enabled": False, "head": "", "aums": []}

    n1 = net.add_node("n1", auth_key=AUTH_KEY)
    outside = nacl.signing.SigningKey.generate()
    outside_pub = format_tlpub(bytes(outside.verify_key))

    # A real init on n1, trusting n1's own lock key and a key made here.
    out = n1.tailscale("lock", "init", "--gen-disablements", "1", "--confirm", n1.lock_key,
                       outside_pub).stdout
    secrets = DISABLEMENT.findall(out)
    assert len(secrets) == 1, out
    net.wait_for(lambda: net.tka()["enabled"] and n1.lock_status_json()["Enabled"], SYNC,
                 "lock enabled on n1 and on the control server", n1)
    assert trusted(n1) == {n1.lock_key, outside_pub}
    assert n1.lock_status_json()["NodeKeySigned"], "init signs the node it runs on"

    # n2 and n3 join the locked tailnet: they learn the authority, but nobody signed them.
    n2 = net.add_node("n2", auth_key=AUTH_KEY)
    n3 = net.add_node("n3", auth_key=AUTH_KEY)
    nodes = [n1, n2, n3]
    net.wait_for(lambda: all(n.lock_status_json()["Enabled"] for n in nodes), SYNC,
                 "lock enabled on every node")
    net.wait_for(lambda: heads(nodes) == {net.tka()["head"]}, SYNC,
                 "every node at the control server's head")
    unsigned = {n2.node_key, n3.node_key}
    net.wait_for(lambda: n1.filtered() == unsigned and not n1.visible(), SYNC,
                 "n2 and n3 filtered on n1", n1)
    assert not n1.peer_names(), "filtered peers are not in n1's status"

    # n1's own lock key signs them; the control server keeps the signatures (sign endpoint).
    for key in sorted(unsigned):
        n1.tailscale("lock", "sign", key)
    for node in nodes:
        others = {n.node_key for n in nodes} - {node.node_key}
        net.wait_for(lambda n=node, o=others: n.visible() == o and not n.filtered(), SYNC,
                     f"every other node visible on {node.name}", node)
        net.wait_for(lambda n=node: n.peer_names() == {m.name for m in nodes} - {n.name},
                     SYNC, f"every other node in {node.name}'s tailscale status", node)
    assert all(n["key_signature"] for n in net.nodes())

    # A wrapped pre-approved auth key whose credential the outside key signed: the node signs
    # its own node key at register, and the other nodes accept it with that signature.
    wrapping = nacl.signing.SigningKey.generate()
    credential = NodeKeySignature(kind=SigKind.CREDENTIAL, key_id=bytes(outside.verify_key),
                                  wrapping_pubkey=bytes(wrapping.verify_key))
    credential = NodeKeySignature(
        kind=credential.kind, key_id=credential.key_id,
        wrapping_pubkey=credential.wrapping_pubkey,
        signature=outside.sign(credential.sig_hash()).signature,
    )
    wrapped = authkey.wrap(AUTH_KEY, credential,
                           bytes(wrapping) + bytes(wrapping.verify_key))
    n4 = net.add_node("n4", auth_key=wrapped)
    key4 = n4.node_key
    record = net.control_node(key4)
    assert record["registered_signature"], "the node sent no signature at register"
    assert record["key_signature"] == record["registered_signature"]
    sent = NodeKeySignature.from_cbor(base64.b64decode(record["registered_signature"]))
    assert sent.kind == SigKind.ROTATION and sent.nested == credential
    for peer in nodes:
        net.wait_for(lambda p=peer: key4 in p.visible(), SYNC, f"n4 visible on {peer.name}",
                     peer)
    net.wait_for(lambda: n4.lock_status_json()["NodeKeySigned"], SYNC, "n4 to see itself signed",
                 n4)

    # `tailscale lock add` on n1 goes through sync/send and reaches every node.
    head = net.tka()["head"]
    added = format_tlpub(bytes(nacl.signing.SigningKey.generate().verify_key))
    n1.tailscale("lock", "add", added)
    assert net.tka()["head"] != head
    everyone = [*nodes, n4]
    net.wait_for(lambda: all(added in trusted(n) for n in everyone), SYNC,
                 "every node to trust the added key")
    net.wait_for(lambda: heads(everyone) == {net.tka()["head"]}, SYNC,
                 "every node at the new head")
    assert len(net.tka()["aums"]) == 2  # genesis and the AddKey
