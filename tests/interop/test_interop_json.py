"""`tka status --json` and `tka log --json` against the reference's own schema-v1 encoders
(tailscale.com/feature/tailnetlock/tslockjsonv1), byte for byte."""

from __future__ import annotations

import os
import random
from typing import Any

from nacl.signing import SigningKey
from test_interop_wire import _authority, _random_updates
from tka_oracle import Oracle

from signer.render import LockStatus, PeerView, log_json, status_json
from verifier.aum import AUM
from verifier.key import Key
from verifier.nks import NodeKeySignature, SigKind
from verifier.textforms import node_key_binary


def _key_desc(k: Key) -> dict[str, Any]:
    return {"kind": k.kind, "votes": k.votes, "public": (k.public or b"").hex(),
            "meta": dict(k.meta) or None}


def _peer_desc(p: PeerView) -> dict[str, Any]:
    return {"name": p.dns_name, "id": int(p.stable_id[1:]), "stable_id": p.stable_id,
            "ips": list(p.tailscale_ips), "node_key": p.node_key.hex(),
            "nks": None if p.signature is None else p.signature.to_cbor().hex()}


def test_log_json_matches_go(oracle: Oracle) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    signers = [SigningKey(rng.randbytes(32))]
    auth, genesis = _authority(signers)
    chain = [genesis, *_random_updates(rng, auth, signers, 70)]
    entries: list[tuple[bytes, AUM]] = [(bytes(a.hash()), a) for a in reversed(chain)]
    go = oracle.call("log_json", aums=[a.to_cbor().hex() for _, a in entries])
    assert go["error_text"] is None
    assert log_json(entries) == go["text"]
    assert log_json([]) == oracle.call("log_json", aums=[])["text"]


def _nks(rng: random.Random, node: bytes, signer: SigningKey) -> NodeKeySignature:
    unsigned = NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node),
                                key_id=bytes(signer.verify_key), wrapping_pubkey=rng.randbytes(32))
    return NodeKeySignature(kind=unsigned.kind, pubkey=unsigned.pubkey, key_id=unsigned.key_id,
                            wrapping_pubkey=unsigned.wrapping_pubkey,
                            signature=signer.sign(unsigned.sig_hash()).signature)


def test_status_json_matches_go(oracle: Oracle) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    signer = SigningKey(rng.randbytes(32))
    own = rng.randbytes(32)
    keys = (
        Key(public=bytes(signer.verify_key), votes=2),
        Key(public=rng.randbytes(32), votes=1,
            meta={"purpose": "pre-auth key", "authkey_stableid": "k<&>1"}),
    )
    peers = tuple(
        PeerView(stable_id=f"n{i}", dns_name=f"peer{i}.example.ts.net.",
                 tailscale_ips=(f"100.64.0.{i}", f"fd7a:115c:a1e0::{i + 1:x}"),
                 node_key=node, signature=_nks(rng, node, signer))
        for i, node in enumerate(rng.randbytes(32) for _ in range(3))
    )
    filtered = (PeerView(stable_id="n9", dns_name="locked.", tailscale_ips=(),
                         node_key=rng.randbytes(32)),)
    statuses = [
        LockStatus(enabled=False, public_key=bytes(signer.verify_key), node_key=own),
        LockStatus(enabled=True, public_key=bytes(signer.verify_key), node_key=own,
                   head=rng.randbytes(32), node_key_signed=True,
                   node_key_signature=_nks(rng, own, signer), trusted_keys=keys,
                   visible_peers=peers, filtered_peers=filtered, state_id=rng.getrandbits(64)),
        LockStatus(enabled=True, public_key=bytes(signer.verify_key), node_key=own,
                   head=rng.randbytes(32), node_key_signed=False, trusted_keys=keys),
    ]
    for st in statuses:
        desc = {
            "enabled": st.enabled, "head": None if st.head is None else st.head.hex(),
            "public": None if st.public_key is None else st.public_key.hex(),
            "node_key": None if st.node_key is None else st.node_key.hex(),
            "signed": st.node_key_signed,
            "nks": None if st.node_key_signature is None else st.node_key_signature.to_cbor().hex(),
            "keys": [_key_desc(k) for k in st.trusted_keys],
            "visible": [_peer_desc(p) for p in st.visible_peers],
            "filtered": [_peer_desc(p) for p in st.filtered_peers],
            "state_id": st.state_id,
        }
        assert status_json(st) == oracle.call("status_json", status=desc)["text"]
