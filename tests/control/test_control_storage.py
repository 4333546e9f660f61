"""The database on disk: file modes, the support disablement secret (only ever sealed), and the
migration of a version-1 database that kept it in plaintext."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_harness import (
    aum_signer,
    auth_key,
    db_bytes,
    enable_lock,
    enrol,
    post,
)
from nacl.signing import SigningKey

from control.__main__ import main
from control.db import MIGRATIONS, connect, schema_version
from control.http import serve
from control.service import (
    ControlService,
    default_support_key_path,
    write_support_key,
)
from signer.control_client import HttpTransport, InProcessTransport
from verifier.authority import Authority, new_state_ids
from verifier.credential import new_credential
from verifier.disablement import disablement_kdf
from verifier.key import ed25519_key
from verifier.state import State
from verifier.storage import SQLiteStorage
from verifier.textforms import format_nlpub, format_node_public


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_is_created_0600_in_0700_directories(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "a" / "b" / "control.db"
    transport = InProcessTransport(str(db))
    try:
        admin = enrol(transport, "admin", None, as_owner=True)
        enable_lock(admin, support=b"s" * 32)  # also makes the support key beside the database
        assert Path(str(db) + "-wal").exists()
        for path in (db, Path(str(db) + "-wal"), Path(str(db) + "-shm"),
                     default_support_key_path(db)):
            assert _mode(path) == 0o600, path
    finally:
        transport.close()
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    # The HTTP server creates its database the same way.
    served = tmp_path / "c" / "served.db"
    serve(served).shutdown()
    assert _mode(served) == 0o600 and _mode(served.parent) == 0o700


def test_support_secret_is_never_stored_in_plaintext(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    support = os.urandom(32)
    server = serve(db)
    try:
        admin = enrol(HttpTransport(server.url), "admin", auth_key(db, tailnet_lock=True))
        enable_lock(admin, support=support)
        # While serving (WAL not checkpointed) and after.
        for secret in (support, base64.b64encode(support)):
            assert secret not in db_bytes(db)
    finally:
        server.shutdown()
    for secret in (support, base64.b64encode(support)):
        assert secret not in db_bytes(db)
    # Support opens it with the private key (made beside the database on first use).
    assert main(["support-disable", "--db", str(db)]) == 0
    conn = sqlite3.connect(db)
    try:
        enabled, disabled_secret = conn.execute(
            "SELECT enabled, disabled_secret FROM tka").fetchone()
    finally:
        conn.close()
    assert (enabled, bytes(disabled_secret)) == (0, support)


def _v1_database(db: Path, support: bytes) -> tuple[bytes, bytes, SigningKey]:
    """A database as version 1 left it: lock enabled, the support secret in plaintext, a node
    registered without a credential. Returns that node's key, its lock key and the admin's."""
    admin_lock = SigningKey.generate()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    id1, id2 = new_state_ids()
    state = State(disablement_values=(disablement_kdf(b"admin"), disablement_kdf(support)),
                  keys=(ed25519_key(bytes(admin_lock.verify_key)),), state_id1=id1, state_id2=id2)
    Authority.create(SQLiteStorage(conn), state, aum_signer(admin_lock))
    node_key, lock = os.urandom(32), bytes(SigningKey.generate().verify_key)
    conn.execute("INSERT INTO nodes(name, node_key, lock_key) VALUES ('old', ?, ?)",
                 (node_key, lock))
    conn.execute("UPDATE tka SET enabled = 1, support_secret = ? WHERE id = 1", (support,))
    conn.close()
    assert support in db.read_bytes()
    return node_key, lock, admin_lock


def test_a_v1_database_is_migrated_and_its_support_secret_sealed(tmp_path: Path) -> None:
    db = tmp_path / "control.db"
    support = os.urandom(32)
    node_key, lock, _ = _v1_database(db, support)
    service = ControlService(db)
    try:
        assert schema_version(service.conn) == len(MIGRATIONS) == 2
        plain, sealed = service.conn.execute(
            "SELECT support_secret, support_sealed FROM tka").fetchone()
        assert plain is None and sealed is not None and support not in bytes(sealed)
    finally:
        service.close()
    assert support not in db_bytes(db)
    assert _mode(default_support_key_path(db)) == 0o600

    # The node registered before credentials claims one with an enrolment key, once.
    server = serve(db)
    try:
        message = {"NodeKey": format_node_public(node_key), "Name": "old",
                   "NLKey": format_nlpub(lock), "Auth": {"AuthKey": auth_key(db)}}
        credential = new_credential()
        claimed = post(server.url, "register", message, credential)
        assert claimed.status == 200 and claimed.json()["NodeID"] == 1
        netmap = post(server.url, "netmap", {"NodeKey": format_node_public(node_key)}, credential)
        assert netmap.status == 200 and netmap.json()["TKAInfo"]["Head"]
        again = {**message, "Auth": {"AuthKey": auth_key(db)}}
        post(server.url, "register", again, new_credential()).assert_error_line(400)
    finally:
        server.shutdown()
    assert main(["support-disable", "--db", str(db)]) == 0
    conn = connect(db)
    try:
        assert bytes(conn.execute("SELECT disabled_secret FROM tka").fetchone()[0]) == support
    finally:
        conn.close()


def test_support_key_made_ahead_lives_elsewhere(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "control.db"
    key_file = tmp_path / "offline" / "support.key"
    key_file.parent.mkdir(mode=0o700)
    assert main(["support-key", "create", "--db", str(db), "--out", str(key_file)]) == 0
    assert _mode(key_file) == 0o600
    transport = InProcessTransport(str(db))
    try:
        admin = enrol(transport, "admin", None, as_owner=True)
        support = os.urandom(32)
        enable_lock(admin, support=support)
    finally:
        transport.close()
    assert not default_support_key_path(db).exists()  # nothing private beside the database
    capsys.readouterr()
    # Changing the support key while a secret is sealed to it is refused.
    assert main(["support-key", "create", "--db", str(db), "--out", str(tmp_path / "k2")]) == 1
    assert not (tmp_path / "k2").exists()
    assert "sealed to the current support key" in capsys.readouterr().err
    wrong = tmp_path / "wrong.key"
    write_support_key(wrong)
    assert main(["support-disable", "--db", str(db), "--support-key", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert "does not open the sealed support secret" in err and err.count("\n") == 1
    assert main(["support-disable", "--db", str(db), "--support-key", str(key_file)]) == 0
