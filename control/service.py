"""The coordination service (docs/control.md): node registry, the tailnet's authority, node-key
signatures and disablement, reached through the JSON messages of docs/control.md.

Every request runs in one SQLite transaction: a rejected request changes nothing.

Authentication (docs/control.md): registration redeems an enrolment key (`tskey-auth-…`, made
by the service's admin with `python3 -m control authkey create`) and registers the node's
credential, a 256-bit random secret the node made and keeps 0600; every later request carries
that credential beside the message (the HTTP `Authorization` header, or the in-process
transport's argument), and the service lets a node act only as itself. Only SHA-256 digests of
enrolment keys and credentials are stored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.db import connect, transaction
from verifier.aum import AUM
from verifier.authkey import AUTHKEY_PREFIX, authkey_stable_id
from verifier.authority import Authority
from verifier.credential import CREDENTIAL_FORM, is_credential
from verifier.errors import ControlError, DecodeError, StorageError, TKAError
from verifier.fields import Frozen
from verifier.nks import NodeKeySignature, SigKind
from verifier.storage import MemoryStorage, SQLiteStorage
from verifier.storage.atomic import atomic_create
from verifier.sync import SyncOffer, missing_aums, sync_offer
from verifier.textforms import (
    decode_base64_field,
    format_node_public,
    parse_nl_public,
    parse_node_public,
)

# PyNaCl serves the support key only: imported where it is used, so that opening the service
# (every `tka` command on the embedded service) does not load it.
if TYPE_CHECKING:
    import nacl.public

Message = dict[str, Any]
CAPABILITY_VERSION = 145

SUPPORT_KEY_PREFIX = "tka-support-key:"
OWNER_KEY_SECONDS = 60  # an enrolment key minted for the embedded owner lives for one request
DEFAULT_KEY_SECONDS = 90 * 86400  # Tailscale's default auth-key expiry
MAX_MESSAGE = 300  # error messages are one line, cut to this length


class AuthError(ControlError):
    """A request without a valid credential or enrolment key (HTTP 401)."""

    status = 401


class ForbiddenError(ControlError):
    """An authenticated node asking for what it may not do (HTTP 403)."""

    status = 403


class NotFoundError(ControlError):
    status = 404


class BusyError(ControlError):
    status = 503


class InternalError(ControlError):
    status = 500


def http_status(err: ControlError) -> int:
    status = getattr(err, "status", 400)
    return status if isinstance(status, int) else 400


def one_line(text: str) -> str:
    """A message as one printable line of bounded length (requests may carry anything)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= MAX_MESSAGE else cleaned[: MAX_MESSAGE - 1] + "…"


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def unb64(value: Any, field: str) -> bytes:
    """A base64 request field; a malformed one is the service's refusal of the request."""
    if not isinstance(value, str):
        raise ControlError(f"{field}: expected a base64 string")
    try:
        return decode_base64_field(value, field)
    except DecodeError as err:
        raise ControlError(str(err)) from None


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{field}: expected a string")
    return value


def _texts(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ControlError(f"{field}: expected a list of strings")
    return list(value)


def _check_json(request: Message) -> None:
    """A request must be plain JSON whose strings are valid Unicode: a lone surrogate (`"\\ud800"`
    is valid JSON) would fail deep inside, as SQLite or a hash encodes it to UTF-8."""
    try:
        json.dumps(request, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except RecursionError:
        raise ControlError("request is nested too deeply") from None
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        raise ControlError("request is not plain JSON with valid Unicode strings") from None


def _node_public(value: Any, field: str) -> bytes:
    try:
        return parse_node_public(_text(value, field))
    except DecodeError as err:
        raise ControlError(f"{field}: {err}") from None


def digest(secret: str) -> bytes:
    """What the service keeps of an enrolment key or a credential: SHA-256 of its text. Both are
    ≥ 192-bit random strings, so a fast hash is enough (nothing to brute-force)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _credential_digest(credential: Any) -> bytes:
    if credential is None or credential == "":
        raise AuthError(
            "missing node credential: every request carries the credential the node registered"
        )
    if not is_credential(credential):
        raise AuthError(f"malformed node credential (expected {CREDENTIAL_FORM})")
    return digest(credential)


_set = object.__setattr__


class Caller(Frozen):
    __match_args__ = ("node_id", "node_key", "tailnet_lock_admin")
    __slots__ = __match_args__
    node_id: int
    node_key: bytes
    tailnet_lock_admin: bool

    def __init__(self, node_id: int, node_key: bytes, tailnet_lock_admin: bool) -> None:
        _set(self, "node_id", node_id)
        _set(self, "node_key", node_key)
        _set(self, "tailnet_lock_admin", tailnet_lock_admin)


class AuthKeyInfo(Frozen):
    __match_args__ = (
        "key_id", "reusable", "tailnet_lock_admin", "created_unix", "expires_unix", "uses",
        "revoked",
    )
    __slots__ = __match_args__
    key_id: str
    reusable: bool
    tailnet_lock_admin: bool
    created_unix: int
    expires_unix: int
    uses: int
    revoked: bool

    def __init__(
        self,
        key_id: str,
        reusable: bool,
        tailnet_lock_admin: bool,
        created_unix: int,
        expires_unix: int,
        uses: int,
        revoked: bool,
    ) -> None:
        _set(self, "key_id", key_id)
        _set(self, "reusable", reusable)
        _set(self, "tailnet_lock_admin", tailnet_lock_admin)
        _set(self, "created_unix", created_unix)
        _set(self, "expires_unix", expires_unix)
        _set(self, "uses", uses)
        _set(self, "revoked", revoked)


def default_support_key_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".support-key")


def read_support_key(path: Path) -> nacl.public.PrivateKey:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not a support key file"
        raise StorageError(f"cannot read the support key {path}: {reason}") from None
    body = text[len(SUPPORT_KEY_PREFIX) :] if text.startswith(SUPPORT_KEY_PREFIX) else ""
    try:
        raw = bytes.fromhex(body)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise StorageError(f"{path} is not a '{SUPPORT_KEY_PREFIX}<64 hex>' file")
    import nacl.public

    return nacl.public.PrivateKey(raw)


def write_support_key(path: Path) -> nacl.public.PrivateKey:
    """A new support key in a new 0600 file (never overwriting one)."""
    import nacl.public

    key = nacl.public.PrivateKey.generate()
    atomic_create(path, f"{SUPPORT_KEY_PREFIX}{bytes(key).hex()}\n".encode("ascii"), 0o600)
    return key


class ControlService:
    def __init__(
        self,
        db_path: str | Path,
        *,
        create: bool = True,
        support_key_path: str | Path | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.support_key_path = (
            Path(support_key_path)
            if support_key_path is not None
            else default_support_key_path(self.db_path)
        )
        self.conn: sqlite3.Connection = connect(self.db_path, create=create)
        self.storage = SQLiteStorage(self.conn)
        self._handlers: dict[str, Callable[[Message, Caller], Message]] = {
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
        try:
            self._seal_legacy_support_secret()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    ENDPOINTS = (
        "register",
        "netmap",
        "tka/init/begin",
        "tka/init/finish",
        "tka/bootstrap",
        "tka/sync/offer",
        "tka/sync/send",
        "tka/disable",
        "tka/sign",
        "tka/affected-sigs",
    )

    # Endpoints that only read: they need no write lock, so they never queue behind writers
    # (nor behind each other) in SQLite's busy handler.
    READ_ONLY = frozenset({"netmap", "tka/bootstrap", "tka/sync/offer", "tka/affected-sigs"})

    def handle(
        self,
        endpoint: str,
        request: Message,
        credential: str | None = None,
        *,
        owner_enrolment: bool = False,
    ) -> Message:
        """Dispatch one message inside one transaction. Errors are ControlError, one line.

        `credential` is the node's credential as the transport carried it; `owner_enrolment`
        (in-process only, never from the network) lets `register` mint and redeem an enrolment
        key itself when the request carries none: the embedded database's owner enrols.
        """
        if endpoint != "register" and endpoint not in self._handlers:
            raise NotFoundError(one_line(f"unknown endpoint {endpoint!r}"))
        if not isinstance(request, dict):
            raise ControlError("request body must be a JSON object")
        _check_json(request)
        try:
            with transaction(self.conn, write=endpoint not in self.READ_ONLY):
                if endpoint == "register":
                    return self.register(request, credential, owner_enrolment)
                caller = self._authenticate(request, credential)
                return self._handlers[endpoint](request, caller)
        except ControlError as err:
            err.args = (one_line(str(err)),)
            raise
        except StorageError as err:  # the service's own state, not the request, is at fault
            raise InternalError(one_line(str(err))) from None
        except TKAError as err:
            raise ControlError(one_line(str(err))) from None
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise BusyError("the coordination database is busy; try again") from None
            raise InternalError(one_line(f"the coordination database failed: {err}")) from None
        except sqlite3.Error as err:
            raise InternalError(one_line(f"the coordination database failed: {err}")) from None
        except RecursionError:
            raise ControlError("request is nested too deeply") from None
        except Exception as err:  # a bug: one line for the caller, never a traceback
            raise InternalError(
                f"internal error in {endpoint} ({type(err).__name__})"
            ) from None

    # --- helpers -------------------------------------------------------------------------------

    def _tka_row(self) -> tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT enabled, disabled_secret, support_sealed, pending_genesis, pending_node_key "
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

    def _authenticate(self, request: Message, credential: str | None) -> Caller:
        """The node the credential belongs to, which must be the node the request names."""
        cred = _credential_digest(credential)
        row = self.conn.execute(
            "SELECT node_id, node_key, tailnet_lock_admin FROM nodes WHERE credential_hash = ?",
            (cred,),
        ).fetchone()
        if row is None:
            raise AuthError("invalid node credential")
        node_key = _node_public(request.get("NodeKey"), "NodeKey")
        if not hmac.compare_digest(node_key, bytes(row[1])):
            raise ForbiddenError(
                f"NodeKey {format_node_public(node_key)} is not the node this credential "
                "belongs to: a node may act only as itself"
            )
        return Caller(int(row[0]), bytes(row[1]), bool(row[2]))

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

    # --- enrolment keys ------------------------------------------------------------------------

    def create_auth_key(
        self,
        *,
        reusable: bool = False,
        expires_in: int = DEFAULT_KEY_SECONDS,
        tailnet_lock_admin: bool = False,
    ) -> tuple[str, AuthKeyInfo]:
        """An admin's new enrolment key: the text (shown once, never stored) and its record."""
        with transaction(self.conn):
            return self._new_auth_key(reusable, expires_in, tailnet_lock_admin, owner=False)

    def _new_auth_key(
        self, reusable: bool, expires_in: int, tailnet_lock_admin: bool, owner: bool
    ) -> tuple[str, AuthKeyInfo]:
        if expires_in <= 0:
            raise ControlError("an enrolment key must expire in the future")
        now = int(time.time())
        # Owner keys are minted and redeemed in one transaction; none is ever left unused, but
        # forget any an older version may have left.
        self.conn.execute("DELETE FROM auth_keys WHERE owner = 1 AND uses = 0 AND "
                          "expires_unix < ?", (now,))
        import secrets  # here, not at start-up: it loads `random`

        key_id = "k" + secrets.token_hex(6)
        # Hex only: a wrapped key is split at "--TL", which hex never contains.
        text = f"{AUTHKEY_PREFIX}{key_id}-{secrets.token_hex(24)}"
        self.conn.execute(
            "INSERT INTO auth_keys(key_id, key_hash, reusable, tailnet_lock_admin, owner, "
            "created_unix, expires_unix) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, digest(text), int(reusable), int(tailnet_lock_admin), int(owner), now,
             now + expires_in),
        )
        info = AuthKeyInfo(key_id, reusable, tailnet_lock_admin, now, now + expires_in, 0, False)
        return text, info

    def auth_keys(self) -> list[AuthKeyInfo]:
        rows = self.conn.execute(
            "SELECT key_id, reusable, tailnet_lock_admin, created_unix, expires_unix, uses, "
            "revoked FROM auth_keys WHERE owner = 0 ORDER BY created_unix, key_id"
        ).fetchall()
        return [AuthKeyInfo(r[0], bool(r[1]), bool(r[2]), r[3], r[4], r[5], bool(r[6]))
                for r in rows]

    def revoke_auth_key(self, key_id: str) -> None:
        with transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE auth_keys SET revoked = 1 WHERE key_id = ? AND owner = 0", (key_id,)
            )
            if cursor.rowcount != 1:
                raise ControlError(one_line(f"no enrolment key {key_id!r}"))

    def _redeem(self, auth_key: str | None, owner: bool) -> tuple[str, bool]:
        """Check and use an enrolment key; returns its ID and whether it grants the
        tailnet-lock capability (the right to enable lock, `init`)."""
        if auth_key is None and owner:
            auth_key, _ = self._new_auth_key(False, OWNER_KEY_SECONDS, True, owner=True)
        if auth_key is None:
            raise AuthError(
                "registration needs an enrolment key: ask the service's admin for one "
                "(python3 -m control authkey create) and pass it with --auth-key"
            )
        key_id = authkey_stable_id(auth_key)
        row = None
        if key_id is not None:
            row = self.conn.execute(
                "SELECT key_hash, reusable, tailnet_lock_admin, expires_unix, uses, revoked "
                "FROM auth_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[0]), digest(auth_key)):
            raise AuthError("invalid enrolment key")
        _, reusable, lock_admin, expires, uses, revoked = row
        if revoked:
            raise AuthError(f"enrolment key {key_id} has been revoked")
        if expires <= time.time():
            raise AuthError(f"enrolment key {key_id} has expired")
        if uses and not reusable:
            raise AuthError(f"enrolment key {key_id} has already been used (it is single-use)")
        self.conn.execute("UPDATE auth_keys SET uses = uses + 1 WHERE key_id = ?", (key_id,))
        assert key_id is not None
        return key_id, bool(lock_admin)

    # --- registry ------------------------------------------------------------------------------

    def register(self, request: Message, credential: str | None, owner: bool = False) -> Message:
        cred = _credential_digest(credential)
        name = _text(request.get("Name"), "Name")
        if not name or len(name) > 63 or not name.isprintable():
            raise ControlError("Name: must be 1 to 63 printable characters")
        node_key = _node_public(request.get("NodeKey"), "NodeKey")
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
        auth = request.get("Auth")
        if auth is not None and not isinstance(auth, dict):
            raise ControlError("Auth: expected an object")
        auth_key = None if auth is None else auth.get("AuthKey")
        if auth_key is not None and not isinstance(auth_key, str):
            raise ControlError("Auth.AuthKey: expected a string")
        auth_key = auth_key or None

        existing = self.conn.execute(
            "SELECT node_id, name, lock_key, credential_hash FROM nodes WHERE node_key = ?",
            (node_key,),
        ).fetchone()
        if existing is not None:
            node_id, old_name, old_lock, old_cred = existing
            if old_cred is not None and not hmac.compare_digest(bytes(old_cred), cred):
                raise ControlError("this node key is already registered")
            if old_name != name or (None if old_lock is None else bytes(old_lock)) != lock_key:
                raise ControlError(
                    f"this node is already registered as {old_name!r} with "
                    + ("no lock key" if old_lock is None else "another lock key")
                    + "; finish its registration with the same --name and lock key"
                )
            if old_cred is None:
                # Registered before credentials existed: it claims one with an enrolment key.
                key_id, lock_admin = self._redeem(auth_key, owner)
                self._check_credential_unused(cred)
                self.conn.execute(
                    "UPDATE nodes SET credential_hash = ?, tailnet_lock_admin = ?, "
                    "enrolled_by = ? WHERE node_id = ?",
                    (cred, int(lock_admin), key_id, node_id),
                )
            # Otherwise: a retry of this very registration (same key, same credential), after
            # the node lost the reply. Nothing to redeem again.
            if sig is not None:
                self._store_signature(int(node_id), node_key, sig)
            return {"NodeID": int(node_id), "StableID": f"n{node_id}"}

        if self.conn.execute("SELECT 1 FROM nodes WHERE name = ?", (name,)).fetchone():
            raise ControlError(one_line(f"a node named {name!r} is already registered"))
        self._check_credential_unused(cred)
        if sig is not None:
            self._verify_signature(node_key, sig)
        key_id, lock_admin = self._redeem(auth_key, owner)
        cursor = self.conn.execute(
            "INSERT INTO nodes(name, node_key, lock_key, key_signature, credential_hash, "
            "tailnet_lock_admin, enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, node_key, lock_key, sig, cred, int(lock_admin), key_id),
        )
        node_id = int(cursor.lastrowid or 0)
        self.conn.execute(
            "UPDATE nodes SET addresses = ? WHERE node_id = ?",
            (f"100.64.{node_id // 256}.{node_id % 256}", node_id),
        )
        return {"NodeID": node_id, "StableID": f"n{node_id}"}

    def _check_credential_unused(self, cred: bytes) -> None:
        if self.conn.execute("SELECT 1 FROM nodes WHERE credential_hash = ?", (cred,)).fetchone():
            raise ControlError("this credential belongs to another node; make a new one")

    def netmap(self, request: Message, caller: Caller) -> Message:
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
            "Self": next(n for n in nodes if n["ID"] == caller.node_id),
            "Peers": [n for n in nodes if n["ID"] != caller.node_id],
        }

    # --- node-key signatures -------------------------------------------------------------------

    def _verify_signature(self, node_key: bytes, raw: bytes) -> None:
        """A signature is stored only if it authorizes the node under the current authority."""
        if not self._enabled():
            raise ControlError(
                "NodeKeySignature: tailnet lock is not enabled, so no signature can be "
                "verified; register without one"
            )
        try:
            self._authority().node_key_authorized(node_key, raw)
        except TKAError as err:
            raise ControlError(one_line(f"NodeKeySignature: {err}")) from None

    def _store_signature(self, node_id: int, node_key: bytes, raw: bytes) -> None:
        """Replace a node's signature by `raw`, which must be valid now. A signature this node
        held before is accepted again only when the one it holds now is no longer valid: an
        older signature never displaces a newer valid one (docs/control.md)."""
        row = self.conn.execute(
            "SELECT key_signature FROM nodes WHERE node_id = ?", (node_id,)
        ).fetchone()
        current = None if row is None or row[0] is None else bytes(row[0])
        if current == raw:
            return
        self._verify_signature(node_key, raw)
        seen = self.conn.execute(
            "SELECT 1 FROM node_signature_history WHERE node_id = ? AND sig_hash = ?",
            (node_id, hashlib.sha256(raw).digest()),
        ).fetchone()
        if seen and current is not None and self._valid_now(node_key, current):
            raise ControlError(
                f"node {format_node_public(node_key)} holds a newer valid signature; an older "
                "one is not accepted over it"
            )
        self._forget_signature(node_id, current)
        self.conn.execute(
            "UPDATE nodes SET key_signature = ? WHERE node_id = ?", (raw, node_id)
        )

    def _forget_signature(self, node_id: int, current: bytes | None) -> None:
        if current is not None:
            self.conn.execute(
                "INSERT OR IGNORE INTO node_signature_history(node_id, sig_hash) VALUES (?, ?)",
                (node_id, hashlib.sha256(current).digest()),
            )

    def _valid_now(self, node_key: bytes, raw: bytes) -> bool:
        try:
            self._authority().node_key_authorized(node_key, raw)
        except TKAError:
            return False
        return True

    # --- enabling --------------------------------------------------------------------------------

    def init_begin(self, request: Message, caller: Caller) -> Message:
        if not caller.tailnet_lock_admin:
            raise ForbiddenError(
                "this node may not enable tailnet lock: its enrolment key did not grant the "
                "tailnet-lock capability (python3 -m control authkey create --tailnet-lock)"
            )
        if self._enabled():
            raise ControlError("tailnet lock is already enabled")
        genesis = self._decode_aum(request.get("GenesisAUM"), "GenesisAUM")
        Authority.bootstrap(MemoryStorage(), genesis)  # verifies the checkpoint and its signer
        self.conn.execute(
            "UPDATE tka SET pending_genesis = ?, pending_node_key = ? WHERE id = 1",
            (genesis.to_cbor(), caller.node_key),
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

    def init_finish(self, request: Message, caller: Caller) -> Message:
        _, _, _, pending, pending_node = self._tka_row()
        if pending is None or bytes(pending_node) != caller.node_key:
            raise ControlError("no tailnet-lock initialization in progress for this node")
        signatures = request.get("Signatures")
        signatures = {} if signatures is None else signatures  # `[]` or `0` is not "none"
        if not isinstance(signatures, dict):
            raise ControlError("Signatures: expected an object of NodeID to signature")
        support = request.get("SupportDisablement")
        support_secret = None if support is None else unb64(support, "SupportDisablement")
        if support_secret is not None and not 1 <= len(support_secret) <= 1024:
            raise ControlError("SupportDisablement: must be 1 to 1024 bytes")
        self.storage.remove_all()  # a previously disabled authority
        authority = Authority.bootstrap(self.storage, AUM.from_cbor(bytes(pending)))
        # Signatures made under an earlier authority mean nothing under this one.
        for node_id, old in self.conn.execute(
            "SELECT node_id, key_signature FROM nodes WHERE key_signature IS NOT NULL"
        ).fetchall():
            self._forget_signature(int(node_id), bytes(old))
        self.conn.execute("UPDATE nodes SET key_signature = NULL")
        for node_id_text, value in signatures.items():
            if not re.fullmatch(r"[0-9]{1,18}", node_id_text):  # within SQLite's int64
                raise ControlError(one_line(f"Signatures: {node_id_text!r} is not a NodeID"))
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
        sealed = None if support_secret is None else self._seal_support(support_secret)
        self.conn.execute(
            "UPDATE tka SET enabled = 1, disabled_secret = NULL, support_secret = NULL, "
            "support_sealed = ?, pending_genesis = NULL, pending_node_key = NULL WHERE id = 1",
            (sealed,),
        )
        return {}

    def bootstrap(self, request: Message, caller: Caller) -> Message:
        enabled, disabled_secret, *_ = self._tka_row()
        head = request.get("Head")
        head = "" if head is None else _text(head, "Head")
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

    def sync_offer(self, request: Message, caller: Caller) -> Message:
        authority = self._authority()
        remote = SyncOffer.from_text(
            _text(request.get("Head"), "Head"), _texts(request.get("Ancestors"), "Ancestors")
        )
        head, ancestors = sync_offer(authority).to_text()
        missing = missing_aums(authority, remote)
        return {
            "Head": head,
            "Ancestors": ancestors,
            "MissingAUMs": [b64(a.to_cbor()) for a in missing],
        }

    def sync_send(self, request: Message, caller: Caller) -> Message:
        authority = self._authority()
        if request.get("Head") is not None:
            _text(request["Head"], "Head")
        if request.get("Interactive") is not None and not isinstance(
            request["Interactive"], bool
        ):
            raise ControlError("Interactive: expected true or false")
        aums = [
            self._decode_aum(v, f"MissingAUMs[{i}]")
            for i, v in enumerate(_texts(request.get("MissingAUMs"), "MissingAUMs"))
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

    def submit_signature(self, request: Message, caller: Caller) -> Message:
        self._authority()
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
        self._store_signature(int(row[0]), node_key, raw)
        return {}

    def affected_signatures(self, request: Message, caller: Caller) -> Message:
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

    def disable(self, request: Message, caller: Caller) -> Message:
        authority = self._authority()
        if request.get("Head") is not None:
            _text(request["Head"], "Head")
        secret = unb64(request.get("DisablementSecret"), "DisablementSecret")
        if not authority.valid_disablement(secret):
            raise ControlError("incorrect disablement secret")
        self._mark_disabled(secret)
        return {}

    def _mark_disabled(self, secret: bytes) -> None:
        # The secret is spent: it is handed to every node that bootstraps so each can verify it
        # and delete its authority. The support secret of this authority is void with it.
        self.conn.execute(
            "UPDATE tka SET enabled = 0, disabled_secret = ?, support_sealed = NULL, "
            "support_secret = NULL WHERE id = 1",
            (secret,),
        )

    # --- the support disablement secret --------------------------------------------------------

    def _support_public(self) -> bytes:
        """The support key's public half, from the database; made on first use (its private
        half in a new 0600 file beside the database, to be moved off this machine)."""
        row = self.conn.execute("SELECT support_public FROM tka WHERE id = 1").fetchone()
        if row is not None and row[0] is not None:
            return bytes(row[0])
        if self.support_key_path.exists():
            key = read_support_key(self.support_key_path)  # made by an interrupted first use
        else:
            key = write_support_key(self.support_key_path)
        public = bytes(key.public_key)
        self.conn.execute("UPDATE tka SET support_public = ? WHERE id = 1", (public,))
        return public

    def set_support_public(self, public: bytes) -> None:
        if len(public) != 32:
            raise ControlError("a support public key is 32 bytes")
        with transaction(self.conn):
            if self.conn.execute("SELECT support_sealed FROM tka WHERE id = 1").fetchone()[0]:
                raise ControlError(
                    "a support disablement secret is sealed to the current support key; "
                    "disable or re-initialize tailnet lock before changing it"
                )
            self.conn.execute("UPDATE tka SET support_public = ? WHERE id = 1", (public,))

    def _seal_support(self, secret: bytes) -> bytes:
        import nacl.public

        return bytes(nacl.public.SealedBox(nacl.public.PublicKey(self._support_public()))
                     .encrypt(secret))

    def _seal_legacy_support_secret(self) -> None:
        """Version 1 kept the support secret in plaintext: seal it and forget the plaintext."""
        query = "SELECT support_secret FROM tka WHERE id = 1"
        row = self.conn.execute(query).fetchone()
        if row is None or row[0] is None:
            return
        with transaction(self.conn):
            row = self.conn.execute(query).fetchone()  # again: another opener may have sealed it
            if row is None or row[0] is None:
                return
            sealed = self._seal_support(bytes(row[0]))
            self.conn.execute(
                "UPDATE tka SET support_sealed = ?, support_secret = NULL WHERE id = 1",
                (sealed,),
            )
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def support_disable(self, support_key: nacl.public.PrivateKey) -> None:
        """Support acts: unseal the support secret with its private key and disable lock."""
        import nacl.exceptions
        import nacl.public

        with transaction(self.conn):
            authority = self._authority()
            sealed = self.conn.execute("SELECT support_sealed FROM tka WHERE id = 1").fetchone()
            if sealed is None or sealed[0] is None:
                raise ControlError("this tailnet has no support disablement secret")
            try:
                secret = nacl.public.SealedBox(support_key).decrypt(bytes(sealed[0]))
            except nacl.exceptions.CryptoError:
                raise ControlError(
                    "the support key does not open the sealed support secret (wrong key?)"
                ) from None
            if not authority.valid_disablement(secret):
                raise ControlError("the sealed support secret does not disable this authority")
            self._mark_disabled(secret)


def private_file_mode_ok(path: Path) -> bool:
    """True when `path` gives no permission to group or others."""
    try:
        return os.stat(path).st_mode & 0o077 == 0
    except OSError:
        return True
