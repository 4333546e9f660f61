"""Getting a firmware stub (`signer.appliance_stub.ApplianceStub`) to the point where it signs:
set up with a PIN, a key generated, a genesis signed by that key and the device enrolled in it.
For tests, the demo and the benchmarks; never used with a real device's PIN.

    stub = ApplianceStub(tmp / "dev").start()
    ready = provision(stub, pins=IdentityPins(tmp / "pins.json"))
    nks, digest = unsigned_direct_nks(ready.public, os.urandom(32))
    signature = ready.backend.sign(digest, nks_context(nks))
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from signer.appliance_stub import ApplianceStub, Screen
from signer.backends.appliance.api import Appliance, Notify
from signer.backends.appliance.backend import ApplianceBackend
from signer.backends.appliance.identity import IdentityPins
from signer.backends.appliance.uri import ApplianceUri
from signer.backends.base import SigningContext
from signer.signing import aum_signer
from verifier.authority import Authority, new_state_ids
from verifier.key import Key, ed25519_key
from verifier.nks import NodeKeySignature, SigKind
from verifier.state import State
from verifier.storage import MemoryStorage
from verifier.textforms import node_key_binary


@dataclass
class Provisioned:
    stub: ApplianceStub
    pin: str
    key: str
    public: bytes
    backend: ApplianceBackend
    authority: Authority
    uri: ApplianceUri


def approve_all(_screen: Screen) -> bool:
    return True


def genesis_authority(
    backend: ApplianceBackend, *, extra_keys: tuple[Key, ...] = (),
    disablement_values: tuple[bytes, ...] = (),
) -> Authority:
    """A new authority whose genesis the device signs (the device's key is trusted)."""
    id1, id2 = new_state_ids()
    state = State(
        keys=(ed25519_key(backend.public_key()), *extra_keys),
        disablement_values=disablement_values or (secrets.token_bytes(32),),
        state_id1=id1,
        state_id2=id2,
    )
    authority, _genesis = Authority.create(MemoryStorage(), state, aum_signer(backend))
    return authority


def unsigned_direct_nks(key_public: bytes, node_key: bytes, rotation: bytes = b""
                        ) -> tuple[NodeKeySignature, bytes]:
    nks = NodeKeySignature(kind=SigKind.DIRECT, pubkey=node_key_binary(node_key),
                           key_id=key_public, wrapping_pubkey=rotation)
    return nks, nks.sig_hash()


def nks_context(
    nks: NodeKeySignature, *, deeplink: str | None = None, timeout_seconds: float | None = None
) -> SigningContext:
    return SigningContext(purpose="node-key-signature", summary="authorize a node key",
                          payload=nks.to_cbor(), deeplink=deeplink,
                          timeout_seconds=timeout_seconds)


def provision(
    stub: ApplianceStub,
    *,
    pins: IdentityPins,
    pin: str | None = None,
    key: str = "admin",
    notify: Notify | None = None,
    device: str | None = None,
    decide: Callable[[Screen], bool] = approve_all,
    extra_keys: tuple[Key, ...] = (),
) -> Provisioned:
    """Set up a blank stub, generate `key`, sign a genesis with it and enroll the device; the
    screens on the way are answered with `decide` (then automatic answering stops)."""
    assert stub.ui is not None
    pin = pin or f"pin-{secrets.token_hex(6)}"
    path = device or stub.serial
    stub.ui.auto(decide)
    try:
        dev = Appliance.open(path, notify=notify)
        try:
            dev.setup(pin)
            dev.generate_key(key)
            uri = ApplianceUri(device=path, key=key)
            backend = ApplianceBackend(uri, appliance=dev, pins=pins, notify=notify)
        except BaseException:
            dev.close()
            raise
        authority = genesis_authority(backend, extra_keys=extra_keys)
        backend.track(authority)
    finally:
        stub.ui.auto(None)
    return Provisioned(stub=stub, pin=pin, key=key, public=backend.public_key(),
                       backend=backend, authority=authority, uri=uri)
