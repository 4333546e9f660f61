"""The coordination service on a real SQLite file, in-process and over real HTTP."""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from control.db import MIGRATIONS, connect, schema_version
from control.http import serve
from signer.control_client import ControlClient, HttpTransport, InProcessTransport, Transport
from verifier.authority import Authority, new_state_ids
from verifier.disablement import disablement_kdf
from verifier.errors import ControlError, StorageError
from verifier.key import ed25519_key
from verifier.signing import AUMSigner
from verifier.state import State
from verifier.storage import MemoryStorage
from verifier.textforms import format_nlpub, format_node_public


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(params=["in-process", "http"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Transport:
    db = tmp_path / "control.db"
    if request.param == "in-process":
        t: Transport = InProcessTransport(str(db))
        request.addfinalizer(t.close)
        return t
    server = serve(db)
    request.addfinalizer(server.shutdown)
    return HttpTransport(server.url)


def _node(transport: Transport, name: str, lock: SigningKey) -> ControlClient:
    client = ControlClient(transport, format_node_public(os.urandom(32)))
    client.register(name, format_nlpub(bytes(lock.verify_key)))
    return client


def test_enable_sign_sync_and_disable(transport: Transport) -> None:
    admin_lock = SigningKey.generate()
    admin = _node(transport, "admin", admin_lock)
    other = _node(transport, "other", SigningKey.generate())
    assert admin.netmap()["TKAInfo"] is None
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"s"),),
                  keys=(ed25519_key(bytes(admin_lock.verify_key)),), state_id1=id1, state_id2=id2)
    signer = AUMSigner.over_digest(
        bytes(admin_lock.verify_key), lambda d: admin_lock.sign(d).signature
    )
    _, genesis = Authority.create(MemoryStorage(), state, signer)
    need = admin.init_begin(base64.b64encode(genesis.to_cbor()).decode())["NeedSignatures"]
    assert [n["NodeID"] for n in need] == [1, 2]
    admin.init_finish({}, None)
    head = other.netmap()["TKAInfo"]["Head"]
    assert head == str(genesis.hash())
    boot = other.bootstrap("")
    assert base64.b64decode(boot["GenesisAUM"]) == genesis.to_cbor()
    with pytest.raises(ControlError, match="incorrect disablement secret"):
        other.disable(head, base64.b64encode(b"wrong").decode())
    assert other.netmap()["TKAInfo"] == {"Head": head}
    other.disable(head, base64.b64encode(b"s").decode())
    assert other.netmap()["TKAInfo"] == {"Disabled": True}
    assert base64.b64decode(other.bootstrap(head)["DisablementSecret"]) == b"s"


def test_rejected_requests_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    transport = InProcessTransport(str(db))
    try:
        client = _node(transport, "a", SigningKey.generate())
        before = _dump(db)
        bad = [
            lambda: client.register("a", None),  # duplicate name
            lambda: client.init_begin("not base64!"),
            lambda: client.init_begin(base64.b64encode(b"\xa1\x01").decode()),
            lambda: client.submit_signature(base64.b64encode(b"x").decode()),
            lambda: ControlClient(transport, "nodekey:zz").netmap(),
            lambda: ControlClient(transport, format_node_public(bytes(32))).netmap(),
            lambda: transport.call("no/such/endpoint", {}),
        ]
        for call in bad:
            with pytest.raises(ControlError) as err:
                call()
            assert "\n" not in str(err.value)
            assert _dump(db) == before
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

        def register(i: int) -> None:
            try:
                _node(HttpTransport(server.url), f"n{i}", SigningKey.generate())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        client = _node(HttpTransport(server.url), "last", SigningKey.generate())
        assert len(client.netmap()["Peers"]) == 12
    finally:
        server.shutdown()
    with pytest.raises(ControlError, match="cannot reach the coordination service"):
        HttpTransport(server.url, timeout=2).call("netmap", {})
