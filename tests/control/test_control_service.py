"""The coordination service on a real SQLite file, in-process and over real HTTP.

Nodes enrol as the embedded database's owner in-process, and with an admin's enrolment key over
HTTP (the admin node's key grants the tailnet-lock capability); every later call carries the
node's credential."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from control_harness import (
    Node,
    aum_signer,
    auth_key,
    b64,
    direct_nks,
    dump,
    enable_lock,
    enrol,
)
from nacl.signing import SigningKey

from control.db import MIGRATIONS, connect, schema_version
from control.http import serve
from control.service import AuthError, ForbiddenError
from signer.control_client import ControlClient, HttpTransport, InProcessTransport, Transport
from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.builder import UpdateBuilder
from verifier.errors import ControlError, StorageError
from verifier.key import ed25519_key
from verifier.storage import MemoryStorage
from verifier.textforms import format_node_public


@dataclass
class Tailnet:
    transport: Transport
    db: Path
    over_http: bool

    def enrol(self, name: str, *, tailnet_lock: bool = False) -> Node:
        if not self.over_http:
            return enrol(self.transport, name, None, as_owner=True)
        return enrol(self.transport, name, auth_key(self.db, tailnet_lock=tailnet_lock))


@pytest.fixture(params=["in-process", "http"])
def tailnet(request: pytest.FixtureRequest, tmp_path: Path) -> Tailnet:
    db = tmp_path / "control.db"
    if request.param == "in-process":
        t: Transport = InProcessTransport(str(db))
        request.addfinalizer(t.close)
        return Tailnet(t, db, False)
    server = serve(db)
    request.addfinalizer(server.shutdown)
    return Tailnet(HttpTransport(server.url), db, True)


def test_enable_sign_sync_and_disable(tailnet: Tailnet) -> None:
    admin = tailnet.enrol("admin", tailnet_lock=True)
    other = tailnet.enrol("other")
    assert admin.client.netmap()["TKAInfo"] is None
    with pytest.raises(ControlError, match="checkpoint"):
        admin.client.init_begin(b64(AUM(kind=MessageKind.NO_OP).to_cbor()))  # not a genesis
    genesis = enable_lock(admin, [other], secret=b"s")
    head = other.client.netmap()["TKAInfo"]["Head"]
    assert head == str(genesis.hash())
    boot = other.client.bootstrap("")
    assert base64.b64decode(boot["GenesisAUM"]) == genesis.to_cbor()
    peers = {p["Name"]: p for p in admin.client.netmap()["Peers"]}
    assert base64.b64decode(peers["other"]["KeySignature"]) == direct_nks(
        admin.lock, other.node_key
    )

    # A node enrolled later is signed by admin (tka/sign), then the authority grows by sync.
    phone = tailnet.enrol("phone")
    admin.client.submit_signature(b64(direct_nks(admin.lock, phone.node_key)))
    assert "KeySignature" in phone.client.netmap()["Self"]
    storage = MemoryStorage()
    authority = Authority.bootstrap(storage, genesis)
    update = UpdateBuilder(authority, aum_signer(admin.lock))
    update.add_key(ed25519_key(bytes(phone.lock.verify_key)))
    aums = update.finalize()
    sent = admin.client.sync_send(head, [b64(a.to_cbor()) for a in aums], True)
    assert sent["Head"] == str(aums[-1].hash())
    offer = other.client.sync_offer(head, [])
    assert [base64.b64decode(a) for a in offer["MissingAUMs"]] == [a.to_cbor() for a in aums]
    head = sent["Head"]

    with pytest.raises(ControlError, match="incorrect disablement secret"):
        other.client.disable(head, b64(b"wrong"))
    assert other.client.netmap()["TKAInfo"] == {"Head": head}
    other.client.disable(head, b64(b"s"))
    assert other.client.netmap()["TKAInfo"] == {"Disabled": True}
    assert base64.b64decode(other.client.bootstrap(head)["DisablementSecret"]) == b"s"


def test_interactive_change_on_a_moved_head_is_answered_not_applied(tailnet: Tailnet) -> None:
    """sync/send with Interactive refuses a change whose first AUM's parent is not the head:
    it answers with the current head and applies nothing (the writer rebuilds)."""
    admin = tailnet.enrol("admin", tailnet_lock=True)
    genesis = enable_lock(admin)
    authority = Authority.bootstrap(MemoryStorage(), genesis)
    first = UpdateBuilder(authority, aum_signer(admin.lock))
    first.add_key(ed25519_key(bytes(SigningKey.generate().verify_key)))
    winner = first.finalize()
    rival = UpdateBuilder(authority, aum_signer(admin.lock))
    rival.add_key(ed25519_key(bytes(SigningKey.generate().verify_key)))
    late = rival.finalize()  # built on the genesis too
    head = str(genesis.hash())
    assert admin.client.sync_send(head, [b64(a.to_cbor()) for a in winner], True)["Head"] == str(
        winner[-1].hash()
    )
    before = dump(tailnet.db)
    answer = admin.client.sync_send(head, [b64(a.to_cbor()) for a in late], True)
    assert answer["Head"] == str(winner[-1].hash())
    assert dump(tailnet.db) == before


def test_rejected_requests_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    transport = InProcessTransport(str(db))
    try:
        node = enrol(transport, "a", None, as_owner=True)
        client = node.client
        before = dump(db)
        bad: list[tuple[Callable[[], object], type[ControlError]]] = [
            (lambda: client.register("a", None), ControlError),  # same node, other lock key
            (lambda: client.init_begin("not base64!"), ControlError),
            (lambda: client.init_begin(b64(b"\xa1\x01")), ControlError),
            (lambda: client.submit_signature(b64(b"x")), ControlError),
            (lambda: ControlClient(transport, "nodekey:zz", node.credential).netmap(),
             ControlError),
            (lambda: ControlClient(transport, format_node_public(bytes(32)),
                                   node.credential).netmap(), ForbiddenError),
            (lambda: ControlClient(transport, node.node_key_text).netmap(), AuthError),
            (lambda: ControlClient(transport, node.node_key_text, "nodecred:" + "0" * 64)
             .netmap(), AuthError),
            (lambda: transport.call("no/such/endpoint", {}, node.credential), ControlError),
            # The in-process transport without the owner's flag needs an enrolment key too.
            (lambda: enrol(transport, "b", None), AuthError),
        ]
        for call, kind in bad:
            with pytest.raises(kind) as err:
                call()
            assert "\n" not in str(err.value)
            assert dump(db) == before
    finally:
        transport.close()


def test_migrations_are_versioned_and_refuse_the_future(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    conn = connect(db)
    assert schema_version(conn) == len(MIGRATIONS)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this tka understands"):
        connect(db)
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="unusable"):
        connect(tmp_path / "junk.db")


def test_concurrent_clients_over_http(tmp_path: Path) -> None:
    server = serve(tmp_path / "control.db")
    try:
        errors: list[BaseException] = []

        key = auth_key(tmp_path / "control.db", reusable=True)

        def register(i: int) -> None:
            try:
                enrol(HttpTransport(server.url), f"n{i}", key)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        last = enrol(HttpTransport(server.url), "last", key)
        assert len(last.client.netmap()["Peers"]) == 12
    finally:
        server.shutdown()
    with pytest.raises(ControlError, match="cannot reach the coordination service"):
        HttpTransport(server.url, timeout=2).call("netmap", {})
