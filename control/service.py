"""The coordination service (spec §13): node registry, the tailnet's authority, node-key
signatures and disablement, reached through the JSON messages of §13.2.

Every request runs in one SQLite transaction: a rejected request changes nothing. Requests
identify the calling node by `NodeKey` (text form). The embedded service trusts its caller the
way Tailscale's control trusts the Noise channel; see docs/control.md.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control.db import connect, transaction
from verifier.aum import AUM
from verifier.authority import Authority
from verifier.errors import ControlError, DecodeError, TKAError
from verifier.nks import NodeKeySignature, SigKind
from verifier.storage import MemoryStorage, SQLiteStorage
from verifier.sync import SyncOffer, missing_aums, sync_offer
from verifier.textforms import (
    decode_base64_field,
    format_node_public,
    parse_nl_public,
    parse_node_public,
)

Message = dict[str, Any]
CAPABILITY_VERSION = 145


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def unb64(value: Any, field: str) -> bytes:
    """A base64 request field; a malformed one is the service's refusal of the request."""
    try:
        return decode_base64_field(value, field)
    except DecodeError as err:
        raise ControlError(str(err)) from None


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{field}: expected a string")
    return value


class ControlService:
    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.conn: sqlite3.Connection = connect(self.db_path)
        self.storage = SQLiteStorage(self.conn)
        self._handlers: dict[str, Callable[[Message], Message]] = {
            "register": self.register,
            "netmap": self.netmap,
            "tka/init/begin": self.init_begin,
            "tka/init/finish": self.init_finish,
            "tka/bootstrap": self.bootstrap,
            "tka/sync/offer": self.sync_offer,
            "tka/sync/send": self.sync_send,
            "tka/disable": self.disable,
            "tka/sign": self.submit_signature,
            "tka/affected-sigs": self.affected_signatures,
        }

    def close(self) -> None:
        self.conn.close()

    def handle(self, endpoint: str, request: Message) -> Message:
        """Dispatch one message inside one transaction. Errors are ControlError, one line."""
        handler = self._handlers.get(endpoint)
        if handler is None:
            raise ControlError(f"unknown endpoint {endpoint!r}")
        if not isinstance(request, dict):
            raise ControlError("request body must be a JSON object")
        try:
            with transaction(self.conn):
                return handler(request)
        except ControlError:
            raise
        except TKAError as err:
            raise ControlError(str(err)) from None

    # --- helpers -------------------------------------------------------------------------------

    def _tka_row(self) -> sqlite3.Row | tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT enabled, disabled_secret, support_secret, pending_genesis, pending_node_key "
            "FROM tka WHERE id = 1"
        ).fetchone()
        assert row is not None
        return tuple(row)

    def _enabled(self) -> bool:
        return bool(self._tka_row()[0])

    def _authority(self) -> Authority:
        if not self._enabled():
            raise ControlError("tailnet lock is not enabled")
        return Authority.open(self.storage)

    def _caller(self, request: Message) -> tuple[int, bytes]:
        try:
            node_key = parse_node_public(_text(request.get("NodeKey"), "NodeKey"))
        except DecodeError as err:
            raise ControlError(f"NodeKey: {err}") from None
        row = self.conn.execute(
            "SELECT node_id FROM nodes WHERE node_key = ?", (node_key,)
        ).fetchone()
        if row is None:
            raise ControlError(
                f"unknown node {format_node_public(node_key)}; "
                "register it first (tka node register)"
            )
        return int(row[0]), node_key

    def _node_json(self, row: tuple[Any, ...]) -> Message:
        node_id, name, node_key, lock_key, sig, addresses = row
        doc: Message = {
            "ID": node_id,
            "StableID": f"n{node_id}",
            "Name": name,
            "NodeKey": format_node_public(node_key),
            "NLKey": None if lock_key is None else "nlpub:" + bytes(lock_key).hex(),
            "Addresses": [a for a in addresses.split(",") if a],
        }
        if sig:
            doc["KeySignature"] = b64(sig)
        return doc

    # --- registry ------------------------------------------------------------------------------

    def register(self, request: Message) -> Message:
        name = _text(request.get("Name"), "Name")
        if not name or len(name) > 63:
            raise ControlError("Name: must be 1 to 63 characters")
        try:
            node_key = parse_node_public(_text(request.get("NodeKey"), "NodeKey"))
        except DecodeError as err:
            raise ControlError(f"NodeKey: {err}") from None
        lock_key = None
        if request.get("NLKey") is not None:
            text = _text(request["NLKey"], "NLKey")
            try:
                lock_key = parse_nl_public(text)
            except DecodeError as err:
                raise ControlError(f"NLKey: {err}") from None
        sig = None
        if request.get("NodeKeySignature") is not None:
            sig = unb64(request["NodeKeySignature"], "NodeKeySignature")
        existing = self.conn.execute("SELECT 1 FROM nodes WHERE name = ?", (name,)).fetchone()
        if existing is not None:
            raise ControlError(f"a node named {name!r} is already registered")
        if self.conn.execute("SELECT 1 FROM nodes WHERE node_key = ?", (node_key,)).fetchone():
            raise ControlError("this node key is already registered")
        cursor = self.conn.execute(
            "INSERT INTO nodes(name, node_key, lock_key, key_signature) VALUES (?, ?, ?, ?)",
            (name, node_key, lock_key, sig),
        )
        node_id = int(cursor.lastrowid or 0)
        self.conn.execute(
            "UPDATE nodes SET addresses = ? WHERE node_id = ?",
            (f"100.64.{node_id // 256}.{node_id % 256}", node_id),
        )
        return {"NodeID": node_id, "StableID": f"n{node_id}"}

    def netmap(self, request: Message) -> Message:
        node_id, _ = self._caller(request)
        rows = self.conn.execute(
            "SELECT node_id, name, node_key, lock_key, key_signature, addresses FROM nodes "
            "ORDER BY node_id"
        ).fetchall()
        enabled, disabled_secret, *_ = self._tka_row()
        info: Message | None = None
        if enabled:
            info = {"Head": str(Authority.open(self.storage).head)}
        elif disabled_secret is not None:
            info = {"Disabled": True}
        nodes = [self._node_json(tuple(r)) for r in rows]
        return {
            "TKAInfo": info,
            "Self": next(n for n in nodes if n["ID"] == node_id),
            "Peers": [n for n in nodes if n["ID"] != node_id],
        }

    # --- enabling --------------------------------------------------------------------------------

    def init_begin(self, request: Message) -> Message:
        _, caller = self._caller(request)
        if self._enabled():
            raise ControlError("tailnet lock is already enabled")
        genesis = self._decode_aum(request.get("GenesisAUM"), "GenesisAUM")
        Authority.bootstrap(MemoryStorage(), genesis)  # verifies the checkpoint and its signer
        self.conn.execute(
            "UPDATE tka SET pending_genesis = ?, pending_node_key = ? WHERE id = 1",
            (genesis.to_cbor(), caller),
        )
        rows = self.conn.execute("SELECT node_id, node_key, lock_key FROM nodes ORDER BY node_id")
        return {
            "NeedSignatures": [
                {
                    "NodeID": r[0],
                    "NodePublic": format_node_public(r[1]),
                    "RotationPubkey": b64(r[2]),
                }
                for r in rows
            ]
        }

    def init_finish(self, request: Message) -> Message:
        _, caller = self._caller(request)
        _, _, _, pending, pending_node = self._tka_row()
        if pending is None or bytes(pending_node) != caller:
            raise ControlError("no tailnet-lock initialization in progress for this node")
        signatures = request.get("Signatures") or {}
        if not isinstance(signatures, dict):
            raise ControlError("Signatures: expected an object of NodeID to signature")
        self.storage.remove_all()  # a previously disabled authority
        authority = Authority.bootstrap(self.storage, AUM.from_cbor(bytes(pending)))
        for node_id_text, value in signatures.items():
            row = self.conn.execute(
                "SELECT node_key FROM nodes WHERE node_id = ?", (int(node_id_text),)
            ).fetchone()
            if row is None:
                raise ControlError(f"Signatures: unknown node {node_id_text}")
            nks = unb64(value, f"Signatures[{node_id_text}]")
            authority.node_key_authorized(bytes(row[0]), nks)
            self.conn.execute(
                "UPDATE nodes SET key_signature = ? WHERE node_id = ?", (nks, int(node_id_text))
            )
        support = request.get("SupportDisablement")
        self.conn.execute(
            "UPDATE tka SET enabled = 1, disabled_secret = NULL, support_secret = ?, "
            "pending_genesis = NULL, pending_node_key = NULL WHERE id = 1",
            (None if support is None else unb64(support, "SupportDisablement"),),
        )
        return {}

    def bootstrap(self, request: Message) -> Message:
        self._caller(request)
        enabled, disabled_secret, *_ = self._tka_row()
        head = request.get("Head") or ""
        response: Message = {}
        if enabled and not head:
            response["GenesisAUM"] = b64(Authority.open(self.storage).oldest_ancestor.to_cbor())
        elif not enabled and disabled_secret is not None:
            response["DisablementSecret"] = b64(disabled_secret)
        return response

    # --- synchronisation -----------------------------------------------------------------------

    def _decode_aum(self, value: Any, field: str) -> AUM:
        try:
            return AUM.from_cbor(unb64(value, field))
        except DecodeError as err:
            raise ControlError(f"{field}: {err}") from None

    def sync_offer(self, request: Message) -> Message:
        self._caller(request)
        authority = self._authority()
        remote = SyncOffer.from_text(
            _text(request.get("Head"), "Head"), list(request.get("Ancestors") or [])
        )
        head, ancestors = sync_offer(authority).to_text()
        missing = missing_aums(authority, remote)
        return {
            "Head": head,
            "Ancestors": ancestors,
            "MissingAUMs": [b64(a.to_cbor()) for a in missing],
        }

    def sync_send(self, request: Message) -> Message:
        self._caller(request)
        authority = self._authority()
        aums = [
            self._decode_aum(v, f"MissingAUMs[{i}]")
            for i, v in enumerate(request.get("MissingAUMs") or [])
        ]
        if aums and request.get("Interactive") is True and aums[0].parent != authority.head:
            # A change built on a head that has moved since: taking it would start a fork
            # that could displace the update that won, after its writer was told it landed.
            # Answer with the current head; the writer syncs, rebuilds and signs again.
            return {"Head": str(authority.head)}
        if aums:
            authority.inform(aums)
        return {"Head": str(authority.head)}

    # --- signatures ------------------------------------------------------------------------------

    def submit_signature(self, request: Message) -> Message:
        self._caller(request)
        authority = self._authority()
        raw = unb64(request.get("Signature"), "Signature")
        nks = NodeKeySignature.from_cbor(raw)
        try:
            node_key = nks.node_key()
        except DecodeError as err:
            raise ControlError(f"Signature: {err}") from None
        row = self.conn.execute(
            "SELECT node_id FROM nodes WHERE node_key = ?", (node_key,)
        ).fetchone()
        if row is None:
            raise ControlError(f"no node with key {format_node_public(node_key)} is registered")
        authority.node_key_authorized(node_key, raw)
        self.conn.execute(
            "UPDATE nodes SET key_signature = ? WHERE node_id = ?", (raw, int(row[0]))
        )
        return {}

    def affected_signatures(self, request: Message) -> Message:
        self._caller(request)
        self._authority()
        key_id = unb64(request.get("KeyID"), "KeyID")
        out = []
        for (raw,) in self.conn.execute(
            "SELECT key_signature FROM nodes WHERE key_signature IS NOT NULL ORDER BY node_id"
        ):
            try:
                nks = NodeKeySignature.from_cbor(bytes(raw))
                if nks.kind != SigKind.CREDENTIAL and nks.authorizing_key_id() == key_id:
                    out.append(b64(bytes(raw)))
            except TKAError:
                continue  # a malformed stored signature affects no key
        return {"Signatures": out}

    # --- disabling -----------------------------------------------------------------------------

    def disable(self, request: Message) -> Message:
        self._caller(request)
        authority = self._authority()
        secret = unb64(request.get("DisablementSecret"), "DisablementSecret")
        if not authority.valid_disablement(secret):
            raise ControlError("incorrect disablement secret")
        self.conn.execute(
            "UPDATE tka SET enabled = 0, disabled_secret = ? WHERE id = 1", (secret,)
        )
        return {}
