"""Hostile request bodies over real HTTP: every wrongly typed field of every message, deep
nesting, bytes that are not UTF-8, bodies that are not objects. Each is a 400 with one JSON
string line, and the database (every table, compared as a dump) is unchanged."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from control_harness import (
    Node,
    Response,
    auth_key,
    b64,
    direct_nks,
    dump,
    enable_lock,
    enrol,
    genesis_for,
    post,
)
from nacl.signing import SigningKey

from control.http import ControlHTTPServer, serve
from signer.control_client import HttpTransport
from verifier.credential import new_credential
from verifier.textforms import format_nlpub, format_node_public

WRONG = [1, -1.5, True, [], ["x"], {}, {"a": "b"}]


@dataclass
class Net:
    db: Path
    server: ControlHTTPServer
    admin: Node
    other: Node
    key: str

    def send(self, endpoint: str, message: Any, credential: str | None = None) -> Response:
        return post(self.server.url, endpoint, message, credential or self.admin.credential)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    db = tmp_path / "control.db"
    server = serve(db)
    try:
        key = auth_key(db, reusable=True, tailnet_lock=True)
        admin = enrol(HttpTransport(server.url), "admin", key)
        other = enrol(HttpTransport(server.url), "other", key)
        yield Net(db, server, admin, other, key)
    finally:
        server.shutdown()


def _register_base(net: Net) -> dict[str, Any]:
    return {
        "NodeKey": format_node_public(os.urandom(32)),
        "Name": "new",
        "NLKey": format_nlpub(bytes(SigningKey.generate().verify_key)),
        "NodeKeySignature": None,
        "Auth": {"AuthKey": net.key},
    }


def _mutations(base: dict[str, Any], required: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in base:
        values = list(WRONG) + ([None] if field in required else [])
        for value in values:
            if type(value) is type(base[field]) and isinstance(value, list | dict):
                continue  # of the right type (its content is tested separately)
            yield f"{field}={value!r}", {**base, field: value}


def _assert_all_refused(
    net: Net, endpoint: str, base: dict[str, Any], required: set[str],
    credential: str | None = None, extra: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    before = dump(net.db)
    for what, message in [*_mutations(base, required), *extra]:
        response = net.send(endpoint, message, credential)
        assert response.status == 400, (endpoint, what, response.body[:200])
        response.assert_error_line(400)
        assert dump(net.db) == before, (endpoint, what)


def test_wrongly_typed_fields_while_unlocked(net: Net) -> None:
    credential = new_credential()
    _assert_all_refused(
        net, "register", _register_base(net), {"NodeKey", "Name"}, credential,
        extra=[
            ("Auth.AuthKey=1", {**_register_base(net), "Auth": {"AuthKey": 1}}),
            ("Auth.AuthKey=[]", {**_register_base(net), "Auth": {"AuthKey": ["k"]}}),
        ],
    )
    node = {"NodeKey": net.admin.node_key_text}
    _assert_all_refused(net, "netmap", node, {"NodeKey"})
    genesis = b64(genesis_for(net.admin).to_cbor())
    _assert_all_refused(net, "tka/init/begin", {**node, "GenesisAUM": genesis},
                        {"NodeKey", "GenesisAUM"})
    _assert_all_refused(net, "tka/bootstrap", {**node, "Head": ""}, {"NodeKey"})
    # init/finish is reached only with an initialization in progress.
    assert net.send("tka/init/begin", {**node, "GenesisAUM": genesis}).status == 200
    finish = {**node, "Signatures": {"1": b64(direct_nks(net.admin.lock, net.admin.node_key))},
              "SupportDisablement": b64(b"support")}
    _assert_all_refused(
        net, "tka/init/finish", finish, {"NodeKey"},
        extra=[(f"Signatures[1]={v!r}", {**finish, "Signatures": {"1": v}})
               for v in [*WRONG, None]]
        + [("Signatures key", {**finish, "Signatures": {"99999999999999999999": "AA=="}}),
           ("Signatures key", {**finish, "Signatures": {"-1": "AA=="}})],
    )


def test_wrongly_typed_fields_while_locked(net: Net) -> None:
    genesis = enable_lock(net.admin, [net.other])
    head = str(genesis.hash())
    node = {"NodeKey": net.admin.node_key_text}
    register = {**_register_base(net),
                "NodeKeySignature": b64(direct_nks(net.admin.lock, os.urandom(32)))}
    _assert_all_refused(net, "register", register, {"NodeKey", "Name"}, new_credential())
    _assert_all_refused(net, "netmap", node, {"NodeKey"})
    _assert_all_refused(net, "tka/bootstrap", {**node, "Head": head}, {"NodeKey"})
    _assert_all_refused(net, "tka/sync/offer", {**node, "Head": head, "Ancestors": [head]},
                        {"NodeKey", "Head"},
                        extra=[("Ancestors=[1]", {**node, "Head": head, "Ancestors": [1]}),
                               ("Ancestors=[[]]", {**node, "Head": head, "Ancestors": [[]]})])
    send = {**node, "Head": head, "MissingAUMs": ["AA=="], "Interactive": False}
    _assert_all_refused(net, "tka/sync/send", send, {"NodeKey"},
                        extra=[("MissingAUMs=[1]", {**send, "MissingAUMs": [1]}),
                               ("Interactive='true'", {**send, "Interactive": "true"})])
    _assert_all_refused(net, "tka/disable",
                        {**node, "Head": head, "DisablementSecret": b64(b"wrong")},
                        {"NodeKey", "DisablementSecret"})
    phone = os.urandom(32)
    _assert_all_refused(net, "tka/sign", {**node, "Signature": b64(direct_nks(
        net.admin.lock, phone))}, {"NodeKey", "Signature"})
    _assert_all_refused(net, "tka/affected-sigs", {**node, "KeyID": b64(os.urandom(32))},
                        {"NodeKey", "KeyID"})


def test_bodies_that_are_not_json_objects(net: Net) -> None:
    enable_lock(net.admin)
    before = dump(net.db)
    deep = b'{"NodeKey": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    nested_field = b'{"NodeKey": ' + b"[" * 500 + b"]" * 500 + b"}"  # parses; wrong type
    bodies = {
        "deeply nested": deep,
        "nested inside a field": nested_field,
        "not UTF-8": b'{"NodeKey": "\xff\xfe\xfd"}',
        "UTF-16": '{"NodeKey": "x"}'.encode("utf-16"),
        "lone surrogate": b'{"NodeKey": "\\ud800"}',
        "NaN": b'{"NodeKey": NaN}',
        "array": b"[]",
        "string": b'"netmap"',
        "number": b"1",
        "null": b"null",
        "truncated": b'{"NodeKey": ',
        "binary": os.urandom(256),
    }
    for endpoint in ("netmap", "register", "tka/sync/send", "tka/disable"):
        for what, body in bodies.items():
            response = net.send(endpoint, body)
            response.assert_error_line(400)
            assert dump(net.db) == before, (endpoint, what)
    # A body that is fine but names a surrogate inside a string the service stores.
    response = post(net.server.url, "register",
                    b'{"NodeKey": "' + format_node_public(os.urandom(32)).encode()
                    + b'", "Name": "\\udfff", "Auth": {"AuthKey": "' + net.key.encode() + b'"}}',
                    new_credential())
    response.assert_error_line(400)
    assert dump(net.db) == before
