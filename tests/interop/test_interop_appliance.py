"""What the signer appliance signs is accepted by Tailscale's Go implementation: a genesis, an
AddKey and a RemoveKey made on the firmware stub (reached through its pty with pyserial, the
person's presses played by the test), a node-key signature and a batch of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from tka_oracle import Oracle

from signer.appliance_stub import ApplianceStub
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.stubkit import Provisioned, approve_all, provision
from signer.nks_signing import sign_direct_nks, sign_direct_nks_many
from signer.signing import aum_signer
from verifier.builder import UpdateBuilder
from verifier.key import ed25519_key


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Provisioned]:
    stub = ApplianceStub(tmp_path / "device").start()
    try:
        ready = provision(stub, pins=IdentityPins(tmp_path / "pins.json"))
        assert stub.ui is not None
        stub.ui.auto(approve_all)
        yield ready
        ready.backend.close()
    finally:
        stub.kill()


def test_appliance_signatures_are_accepted_by_go(oracle: Oracle, device: Provisioned) -> None:
    authority = device.authority
    genesis = authority.head_aum
    go = oracle.bootstrap(genesis.to_cbor())
    assert go["error_text"] is None, go
    handle = go["handle"]

    # Key changes signed on the device: Go's Inform takes them.
    other = ed25519_key(bytes(SigningKey.generate().verify_key))
    builder = UpdateBuilder(authority, aum_signer(device.backend))
    builder.add_key(other)
    updates = builder.finalize()
    authority.inform(updates)
    builder = UpdateBuilder(authority, aum_signer(device.backend))
    builder.remove_key(other.public or b"")
    removal = builder.finalize()
    authority.inform(removal)
    result = oracle.inform(handle, [u.to_cbor() for u in (*updates, *removal)])
    assert result["error_text"] is None, result
    assert result["head"] == authority.head.hex()

    # Node-key signatures, one and a batch, under the new head.
    device.backend.track(authority)
    node = os.urandom(32)
    rotation = bytes(SigningKey.generate().verify_key)  # a real key: the device refuses others
    one = sign_direct_nks(device.backend, node, rotation)
    go_verdict = oracle.call("nka", handle=handle, node_key=node.hex(), cbor=one.hex())
    assert go_verdict["error_text"] is None, go_verdict
    nodes = [os.urandom(32) for _ in range(20)]
    batch = sign_direct_nks_many(device.backend, [(n, b"") for n in nodes])
    for node_key, blob in zip(nodes, batch, strict=True):
        verdict = oracle.call("nka", handle=handle, node_key=node_key.hex(), cbor=blob.hex())
        assert verdict["error_text"] is None, verdict
    # And Go refuses one of them for another node key: the check is real.
    wrong = oracle.call("nka", handle=handle, node_key=nodes[0].hex(), cbor=batch[1].hex())
    assert wrong["error_text"] == "signature does not authorize nodeKey"
    oracle.close_authority(handle)
