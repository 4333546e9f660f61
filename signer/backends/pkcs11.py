"""Ed25519 keys in a PKCS#11 token (SoftHSM2, YubiKey PIV via ykcs11, YubiHSM 2, Luna, NetHSM).

Facts this module is built on (see `docs/hsm.md` and the project's PKCS#11 notes):

- Mechanisms: keygen `CKM_EC_EDWARDS_KEY_PAIR_GEN`, sign `CKM_EDDSA` with *no* parameter (pure
  Ed25519), key type `CKK_EC_EDWARDS`. Keygen sends EC_PARAMS as the PrintableString
  "edwards25519", the only form the Yubico modules accept; on reading we accept that, the RFC 8410
  OID and the GnuPG OID.
- CKA_EC_POINT is a DER OCTET STRING (`04 20 ‖ key`) from keygen, but raw 32 bytes after
  `softhsm2-util --import`: both are accepted.
- The public key comes from the public-key object with the private key's CKA_ID (SoftHSM's private
  objects carry no EC_POINT). `signer.verified` checks every signature against it, so a token whose
  public object does not match its private key is caught before a signature is used.
- python-pkcs11 calls `C_Initialize(NULL)` and releases the GIL, so SoftHSM runs without locks:
  concurrent sessions crash it. Every PKCS#11 call here runs under one process-wide lock, and each
  token has one shared logged-in session per process (login state is per process anyway).
- SoftHSM reads `SOFTHSM2_CONF` at `C_Initialize`. When that variable has changed since the module
  was initialized and no session is open, the module is re-initialized, so that tests (and tools)
  that switch token directories within one process see the right tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag

from signer.backends.base import KeyBackend, SigningContext
from signer.pin import PinCallback, resolve_pin
from signer.uri import Pkcs11Uri
from verifier.errors import DeviceError, SignerError

ED25519_PARAMS_PRINTABLE = b"\x13\x0cedwards25519"  # PrintableString "edwards25519" (portable)
ED25519_PARAMS_OID = bytes.fromhex("06032b6570")  # OID 1.3.101.112 (RFC 8410)
ED25519_PARAMS_GNUPG = bytes.fromhex("06092b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
ED25519_PARAMS_ACCEPTED = frozenset(
    {ED25519_PARAMS_PRINTABLE, ED25519_PARAMS_OID, ED25519_PARAMS_GNUPG}
)

# The environment variables a module reads at C_Initialize (SoftHSM's config location).
_INIT_ENV_VARS = ("SOFTHSM2_CONF",)

# Errors that mean the token or its storage went away under us.
_GONE = (
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.SlotIDInvalid,
    p11e.DeviceError,
    p11e.DeviceMemory,
    p11e.GeneralError,
    p11e.FunctionFailed,
)

# One lock for every call into any PKCS#11 module in this process (see module docstring).
P11_LOCK = threading.RLock()


def ec_point_to_public_key(ec_point: bytes) -> bytes:
    """CKA_EC_POINT → 32-byte Ed25519 public key (DER OCTET STRING or raw)."""
    if len(ec_point) == 34 and ec_point[:2] == b"\x04\x20":
        return bytes(ec_point[2:])
    if len(ec_point) == 32:
        return bytes(ec_point)
    raise SignerError(
        f"token returned a {len(ec_point)}-byte CKA_EC_POINT, which is not an Ed25519 public key"
    )


def _exc_name(exc: BaseException) -> str:
    return type(exc).__name__


# --------------------------------------------------------------------------------------------
# Module loading


@dataclass
class _LoadedModule:
    lib: Any
    env: tuple[str | None, ...]


_MODULES: dict[str, _LoadedModule] = {}


def _init_env() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _INIT_ENV_VARS)


def load_module(path: str) -> Any:
    """Load (once per process) and initialize the PKCS#11 module at `path`."""
    with P11_LOCK:
        loaded = _MODULES.get(path)
        if loaded is not None:
            if loaded.env != _init_env() and not _open_sessions_for(path):
                try:
                    loaded.lib.reinitialize()
                except p11e.PKCS11Error as exc:
                    raise DeviceError(
                        f"PKCS#11 module {path} failed to re-initialize ({_exc_name(exc)}); "
                        "for SoftHSM check that SOFTHSM2_CONF names a readable config file "
                        "whose tokendir exists"
                    ) from None
                loaded.env = _init_env()
            return loaded.lib
        if not os.path.exists(path):
            raise DeviceError(
                f"PKCS#11 module {path} does not exist; set module-path=… in the key URI or "
                "TKA_PKCS11_MODULE (SoftHSM: apt install softhsm2)"
            )
        try:
            lib = pkcs11.lib(path)
        except p11e.PKCS11Error as exc:
            detail = str(exc).splitlines()[0] if str(exc) else _exc_name(exc)
            if "OS exception" in detail or "undefined symbol" in detail:
                raise DeviceError(
                    f"cannot load PKCS#11 module {path}: it is not a PKCS#11 library "
                    f"({detail.rsplit(': ', 1)[-1]}); check module-path / TKA_PKCS11_MODULE"
                ) from None
            raise DeviceError(
                f"PKCS#11 module {path} failed to initialize ({_exc_name(exc)}); for SoftHSM "
                "check that SOFTHSM2_CONF names a readable config file whose tokendir exists"
            ) from None
        _MODULES[path] = _LoadedModule(lib=lib, env=_init_env())
        return lib


# --------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class TokenInfo:
    """What `tka key list` and error messages say about a token (flags read fresh)."""

    label: str
    serial: str
    manufacturer: str
    model: str
    slot_id: int
    flags: int
    has_eddsa: bool
    has_keygen: bool

    @property
    def login_required(self) -> bool:
        return bool(self.flags & TokenFlag.LOGIN_REQUIRED)

    @property
    def pin_count_low(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_COUNT_LOW)

    @property
    def pin_final_try(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_FINAL_TRY)

    @property
    def pin_locked(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_LOCKED)

    @property
    def pin_to_be_changed(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_TO_BE_CHANGED)

    @property
    def protected_auth_path(self) -> bool:
        return bool(self.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH)

    def pin_state(self) -> str:
        """One phrase for messages: what the token says about its PIN retry counter."""
        if self.pin_locked:
            return "PIN locked"
        if self.pin_final_try:
            return "1 try may remain before the PIN locks"
        if self.pin_count_low:
            return "few tries may remain"
        return "the token reports no low retry count"


def _token_info(token: Any) -> TokenInfo:
    slot = token.slot
    try:
        mechanisms = slot.get_mechanisms()
    except p11e.PKCS11Error:
        mechanisms = set()
    return TokenInfo(
        label=token.label,
        serial=_serial_text(token.serial),
        manufacturer=token.manufacturer_id,
        model=token.model,
        slot_id=slot.slot_id,
        flags=int(token.flags),
        has_eddsa=Mechanism.EDDSA in mechanisms,
        has_keygen=Mechanism.EC_EDWARDS_KEY_PAIR_GEN in mechanisms,
    )


def _serial_text(serial: bytes | str) -> str:
    if isinstance(serial, bytes):
        return serial.decode("ascii", "replace").strip()
    return serial.strip()


def _fresh_token(token: Any) -> Any:
    """Re-read CK_TOKEN_INFO (flags such as PIN-count-low change after a failed login)."""
    return token.slot.get_token()


def initialized_tokens(lib: Any) -> list[Any]:
    """Every token that has been initialized (SoftHSM always shows one spare empty token)."""
    tokens = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except p11e.PKCS11Error:
            continue
        if token.flags & TokenFlag.TOKEN_INITIALIZED:
            tokens.append(token)
    return tokens


def _matches(token: Any, uri: Pkcs11Uri) -> bool:
    if uri.token is not None and token.label != uri.token:
        return False
    if uri.serial is not None and _serial_text(token.serial) != uri.serial:
        return False
    if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
        return False
    if uri.model is not None and token.model != uri.model:
        return False
    return uri.slot_id is None or token.slot.slot_id == uri.slot_id


def select_token(lib: Any, uri: Pkcs11Uri) -> Any:
    """The one initialized token that `uri` names; a clear error for none or several."""
    tokens = initialized_tokens(lib)
    found = [t for t in tokens if _matches(t, uri)]
    if len(found) == 1:
        return found[0]
    labels = ", ".join(repr(t.label) for t in tokens) or "none"
    if not found:
        raise DeviceError(
            f"no initialized token matching {uri.token_selector()} in module {uri.module_path} "
            f"(tokens present: {labels}); check the token= of the URI or plug the device in"
        )
    raise SignerError(
        f"{len(found)} tokens match {uri.token_selector()} ({labels}); "
        "add token= or serial= to the URI to pick one"
    )


# --------------------------------------------------------------------------------------------
# Sessions: one logged-in session per (module, token) per process, shared and ref-counted.


@dataclass
class _SharedSession:
    session: Any
    refs: int = 0
    logged_in: bool = False
    # Sessions opened only to log in (python-pkcs11 logs in at C_OpenSession time); the login
    # they made is process-wide, so they stay open until the last handle is released.
    extra: list[Any] = field(default_factory=list)


_SESSIONS: dict[tuple[str, str], _SharedSession] = {}


def _open_sessions_for(module_path: str) -> bool:
    return any(key[0] == module_path for key in _SESSIONS)


@dataclass
class TokenSession:
    """A handle on a token's shared session. `close()` releases it (the last one logs out)."""

    module_path: str
    token: Any
    info: TokenInfo
    session: Any
    logged_in: bool
    _key: tuple[str, str]
    _pin: str | None = field(default=None, repr=False)
    _closed: bool = False

    @property
    def label(self) -> str:
        return self.info.label

    def describe(self) -> str:
        return f"token {self.label!r}"

    def pin_for_context_login(self) -> str | None:
        return self._pin

    def close(self) -> None:
        with P11_LOCK:
            if self._closed:
                return
            self._closed = True
            self._pin = None
            shared = _SESSIONS.get(self._key)
            if shared is None:
                return
            shared.refs -= 1
            if shared.refs <= 0:
                del _SESSIONS[self._key]
                for session in [*shared.extra, shared.session]:
                    try:
                        session.close()
                    except p11e.PKCS11Error:
                        pass  # token already gone: nothing left to release


def open_token(
    uri: Pkcs11Uri,
    *,
    login: bool = True,
    pin_callback: PinCallback | None = None,
    keep_pin: bool = False,
) -> TokenSession:
    """Open (or share) a session on the token `uri` names, logging in if `login`.

    Sessions are read-write so that the same logged-in session serves signing and key
    management; the PIN is resolved only when the token needs a login that has not happened yet.
    """
    with P11_LOCK:
        lib = load_module(uri.module_path)
        token = select_token(lib, uri)
        info = _token_info(token)
        if not info.has_eddsa:
            raise DeviceError(
                f"token {info.label!r} (module {uri.module_path}) does not offer CKM_EDDSA: this "
                "device, firmware or PKCS#11 module cannot sign with Ed25519 (see docs/hsm.md)"
            )
        key = (uri.module_path, f"{info.serial}|{info.label}|{info.slot_id}")
        shared = _SESSIONS.get(key)
        pin: str | None = None
        needs_login = login and info.login_required and not (shared and shared.logged_in)
        session: Any = None
        if needs_login:
            session, pin = _login(token, info, uri, pin_callback)
        elif shared is None:
            try:
                session = token.open(rw=True)
            except p11e.PKCS11Error as exc:
                raise _gone_error(exc, info.label, "opening a session") from None
        if shared is None:
            shared = _SharedSession(session=session)
            _SESSIONS[key] = shared
        elif session is not None:
            shared.extra.append(session)
        shared.logged_in = shared.logged_in or needs_login
        shared.refs += 1
        return TokenSession(
            module_path=uri.module_path, token=token, info=info, session=shared.session,
            logged_in=shared.logged_in or not info.login_required, _key=key,
            _pin=pin if keep_pin else None,
        )


def _login(
    token: Any, info: TokenInfo, uri: Pkcs11Uri, pin_callback: PinCallback | None
) -> tuple[Any, str | None]:
    """Open a session that logs the process in; returns it and the PIN used (if any)."""
    if info.pin_locked:
        raise DeviceError(
            f"the user PIN of token {info.label!r} is locked after too many wrong PINs; "
            "unlock it with the SO PIN / PUK (YubiKey: ykman piv access unblock-pin) and retry"
        )
    pin: str | None = None
    login_pin: Any
    if info.protected_auth_path:
        login_pin = pkcs11.PROTECTED_AUTH  # PIN pad on the device
    else:
        pin = resolve_pin(
            f"token {info.label!r}", uri_pin_source=uri.pin_source, callback=pin_callback
        )
        login_pin = pin
    try:
        return token.open(rw=True, user_pin=login_pin), pin
    except p11e.UserAlreadyLoggedIn:
        # Logged in by someone else in this process (login state is per process, not session).
        try:
            return token.open(rw=True), pin
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, info.label, "opening a session") from None
    except p11e.PinIncorrect:
        state = _token_info(_fresh_token(token)).pin_state()
        raise DeviceError(
            f"PIN incorrect for token {info.label!r} ({state}); check the PIN in pin-source / "
            "TKA_PKCS11_PIN before trying again: repeated failures lock the PIN"
        ) from None
    except p11e.PinLocked:
        raise DeviceError(
            f"the user PIN of token {info.label!r} is locked; unlock it with the SO PIN / PUK"
        ) from None
    except p11e.PinExpired:
        raise DeviceError(
            f"the user PIN of token {info.label!r} has expired; change it with the token's tool"
        ) from None
    except (p11e.PinLenRange, p11e.PinInvalid):
        raise DeviceError(
            f"the PIN given for token {info.label!r} has a length or characters the token "
            "does not accept; check pin-source / TKA_PKCS11_PIN"
        ) from None
    except p11e.PKCS11Error as exc:
        raise _gone_error(exc, info.label, "logging in") from None


def _gone_error(exc: BaseException, label: str, doing: str) -> SignerError:
    if isinstance(exc, _GONE):
        return DeviceError(
            f"token {label!r} failed while {doing} ({_exc_name(exc)}): the device was removed, "
            "or its storage (SoftHSM tokendir) disappeared; reconnect it and run the command again"
        )
    if isinstance(exc, p11e.UserNotLoggedIn):
        return DeviceError(
            f"token {label!r} is not logged in while {doing}; run the command again to log in"
        )
    if isinstance(exc, p11e.FunctionCancelled):
        return DeviceError(f"token {label!r}: {doing} was cancelled (touch or PIN not given?)")
    return DeviceError(f"token {label!r} refused {doing} ({_exc_name(exc)})")


# --------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class TokenKey:
    """An Ed25519 public-key object on a token."""

    label: str
    id: bytes
    public_key: bytes


def _attr(obj: Any, attribute: Attribute, default: Any = None) -> Any:
    try:
        return obj[attribute]
    except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, NotImplementedError):
        return default


_ED_PUBLIC = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS}


def _is_ed25519_object(obj: Any) -> bool:
    params = _attr(obj, Attribute.EC_PARAMS)
    return params is None or bytes(params) in ED25519_PARAMS_ACCEPTED


def list_public_keys(ts: TokenSession) -> list[TokenKey]:
    """Every Ed25519 public-key object visible in the session (no login needed for these)."""
    keys = []
    with P11_LOCK:
        try:
            objects = list(ts.session.get_objects(_ED_PUBLIC))
            for obj in objects:
                if not _is_ed25519_object(obj):
                    continue  # Ed448 shares CKK_EC_EDWARDS
                point = _attr(obj, Attribute.EC_POINT)
                if point is None:
                    continue
                try:
                    public = ec_point_to_public_key(bytes(point))
                except SignerError:
                    continue
                keys.append(
                    TokenKey(
                        label=_attr(obj, Attribute.LABEL, "") or "",
                        id=bytes(_attr(obj, Attribute.ID, b"") or b""),
                        public_key=public,
                    )
                )
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, ts.label, "listing keys") from None
    return keys


def _find_one(ts: TokenSession, attrs: dict[Attribute, Any], what: str) -> Any | None:
    objects = list(ts.session.get_objects(attrs))
    if len(objects) > 1:
        raise SignerError(
            f"{len(objects)} {what} objects match on token {ts.label!r}; "
            "add id=… (or a unique object=…) to the URI"
        )
    return objects[0] if objects else None


def _selector_attrs(uri: Pkcs11Uri) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {}
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    return attrs


def _require_selector(uri: Pkcs11Uri) -> None:
    if uri.object is None and uri.id is None:
        raise SignerError(
            "the PKCS#11 URI names no key: add object=<label> and/or id=<%xx bytes> "
            "(`tka key list` prints ready-made URIs)"
        )


def find_public_key(ts: TokenSession, uri: Pkcs11Uri) -> bytes | None:
    """The public key named by `uri` (by id when given, else by label), or None."""
    _require_selector(uri)
    with P11_LOCK:
        try:
            base = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS}
            # ykcs11 labels public and private objects differently: the id is what pairs them.
            attrs = {**base, Attribute.ID: uri.id} if uri.id is not None else {
                **base, **_selector_attrs(uri)
            }
            obj = _find_one(ts, attrs, "public-key")
            if obj is None:
                return None
            return ec_point_to_public_key(bytes(obj[Attribute.EC_POINT]))
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, ts.label, "reading the public key") from None


def _private_key(ts: TokenSession, uri: Pkcs11Uri) -> Any:
    attrs = {
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
        **_selector_attrs(uri),
    }
    obj = _find_one(ts, attrs, "private-key")
    if obj is None:
        raise SignerError(
            f"no Ed25519 private key {uri.key_selector()} on token {ts.label!r}"
            + ("" if ts.logged_in else " (not logged in: private keys are hidden)")
            + "; `tka key list` shows the keys the token holds"
        )
    return obj


def _public_for_private(ts: TokenSession, private: Any, uri: Pkcs11Uri) -> bytes:
    key_id = bytes(_attr(private, Attribute.ID, b"") or b"")
    if key_id:
        attrs: dict[Attribute, Any] = {Attribute.ID: key_id}
    else:
        attrs = {Attribute.LABEL: _attr(private, Attribute.LABEL, "")}
    obj = _find_one(
        ts,
        {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC_EDWARDS, **attrs},
        "public-key",
    )
    if obj is None:
        raise SignerError(
            f"token {ts.label!r} has the private key {uri.key_selector()} but no public-key object "
            "with the same CKA_ID; the public key cannot be read from the token"
        )
    return ec_point_to_public_key(bytes(obj[Attribute.EC_POINT]))


def _refuse_existing(ts: TokenSession, label: str, key_id: bytes) -> None:
    for name, attrs in (("label", {Attribute.LABEL: label}), ("id", {Attribute.ID: key_id})):
        if list(ts.session.get_objects(attrs)):
            shown = repr(label) if name == "label" else key_id.hex()
            raise SignerError(
                f"token {ts.label!r} already has an object with {name} {shown}; refusing to "
                "overwrite it — choose another object=/id= (or delete the old key yourself)"
            )


def free_key_id(ts: TokenSession) -> bytes:
    """The smallest one-byte CKA_ID not used by any object (one byte suits ykcs11 too)."""
    with P11_LOCK:
        used = {bytes(_attr(o, Attribute.ID, b"") or b"") for o in ts.session.get_objects({})}
    for value in range(1, 256):
        if bytes([value]) not in used:
            return bytes([value])
    raise SignerError(f"token {ts.label!r} has no free one-byte CKA_ID; give id= in the URI")


def _check_protected(private: Any, label: str) -> None:
    sensitive = _attr(private, Attribute.SENSITIVE, False)
    extractable = _attr(private, Attribute.EXTRACTABLE, True)
    if sensitive is not True or extractable is not False:
        raise SignerError(
            f"token {label!r} did not store the key as sensitive and non-extractable "
            f"(CKA_SENSITIVE={sensitive}, CKA_EXTRACTABLE={extractable}); the key was removed"
        )


def generate_key(ts: TokenSession, label: str, key_id: bytes) -> bytes:
    """Generate an Ed25519 pair inside the token: private key token-resident, private,
    sensitive, non-extractable, sign-only. Returns the 32-byte public key."""
    if not ts.info.has_keygen:
        raise DeviceError(
            f"token {ts.label!r} does not offer CKM_EC_EDWARDS_KEY_PAIR_GEN; generate the key "
            "with the vendor's tool (see docs/hsm.md) and use `tka key show`"
        )
    with P11_LOCK:
        try:
            _refuse_existing(ts, label, key_id)
            public, private = ts.session.generate_keypair(
                KeyType.EC_EDWARDS,
                id=key_id,
                label=label,
                store=True,
                public_template={
                    Attribute.EC_PARAMS: ED25519_PARAMS_PRINTABLE,
                    Attribute.VERIFY: True,
                },
                private_template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.DECRYPT: False,
                    Attribute.UNWRAP: False,
                    Attribute.DERIVE: False,
                },
            )
            try:
                _check_protected(private, ts.label)
                return ec_point_to_public_key(bytes(public[Attribute.EC_POINT]))
            except SignerError:
                private.destroy()
                public.destroy()
                raise
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, ts.label, "generating a key") from None


def import_seed(ts: TokenSession, label: str, key_id: bytes, seed: bytes, public: bytes) -> None:
    """Store a software Ed25519 key (32-byte seed) in the token as sensitive, non-extractable.

    The token may refuse those attributes for imported keys; then nothing is kept.
    """
    if len(seed) != 32 or len(public) != 32:
        raise SignerError("an Ed25519 key to import is a 32-byte seed and a 32-byte public key")
    with P11_LOCK:
        try:
            _refuse_existing(ts, label, key_id)
            try:
                private = ts.session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                        Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.SIGN: True,
                        Attribute.LABEL: label,
                        Attribute.ID: key_id,
                        Attribute.EC_PARAMS: ED25519_PARAMS_PRINTABLE,
                        Attribute.VALUE: seed,
                    }
                )
            except (
                p11e.AttributeValueInvalid,
                p11e.AttributeTypeInvalid,
                p11e.TemplateInconsistent,
                p11e.TemplateIncomplete,
                p11e.AttributeReadOnly,
            ) as exc:
                raise SignerError(
                    f"token {ts.label!r} refused to store an imported Ed25519 key as sensitive and "
                    f"non-extractable ({_exc_name(exc)}); nothing was imported"
                ) from None
            try:
                _check_protected(private, ts.label)
                public_obj = ts.session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                        Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: False,
                        Attribute.VERIFY: True,
                        Attribute.LABEL: label,
                        Attribute.ID: key_id,
                        Attribute.EC_PARAMS: ED25519_PARAMS_PRINTABLE,
                        # Always DER-wrapped: a raw point makes SoftHSM's verify silently fail.
                        Attribute.EC_POINT: b"\x04\x20" + public,
                    }
                )
            except BaseException:
                private.destroy()
                raise
            del public_obj
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, ts.label, "importing a key") from None


def destroy_key(ts: TokenSession, uri: Pkcs11Uri) -> None:
    """Remove the private and public objects `uri` names (used to undo a failed import)."""
    with P11_LOCK:
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in list(ts.session.get_objects({Attribute.CLASS: cls, **_selector_attrs(uri)})):
                obj.destroy()


# --------------------------------------------------------------------------------------------
# The backend


# ykcs11's vendor attribute for a PIV key's touch policy (CKA_VENDOR_DEFINED + 0x59554200 + 1),
# and the values that make the YubiKey wait for a touch before it signs.
CKA_YUBICO_TOUCH_POLICY = 0x80000000 + 0x59554200 + 1
_TOUCH_ALWAYS, _TOUCH_CACHED = 2, 3


def _vendor_attr(obj: Any, code: int) -> Any:
    """A vendor-defined attribute, or None where the module does not know it (SoftHSM answers
    CKR_ATTRIBUTE_TYPE_INVALID; python-pkcs11 may not know how to decode it)."""
    try:
        value = obj[code]
    except (p11e.PKCS11Error, KeyError, ValueError, TypeError, NotImplementedError):
        return None
    if isinstance(value, bytes | bytearray):  # a CK_ULONG, in the platform's byte order
        return int.from_bytes(value, "little") if len(value) in (4, 8) else None
    return value


def touch_prompt(policy: object, label: str) -> str | None:
    """What to tell the person before a signature, given a key's touch-policy attribute (None
    when the module does not report one, or the key needs no touch)."""
    if policy == _TOUCH_ALWAYS:
        return f"touch the key on token {label!r} now to sign (its touch policy is 'always')"
    if policy == _TOUCH_CACHED:
        return f"touch the key on token {label!r} if it flashes (touch policy 'cached')"
    return None


class Pkcs11Backend(KeyBackend):
    """Signs with an Ed25519 private key held in a PKCS#11 token.

    Logs in only to sign: opening the backend reads the public key, which tokens show without a
    login, so commands that only need it (`tka key show`, `tka node register`) never ask for the
    PIN, and signing commands ask for it after they have shown what they will sign. A token that
    hides its public keys too is logged in at once. One login per process and token; the session
    stays open until `close()` so that signing many digests costs one `C_Sign` each.
    """

    def __init__(self, uri: Pkcs11Uri, pin_callback: PinCallback | None = None) -> None:
        _require_selector(uri)
        self._uri = uri
        self._pin_callback = pin_callback
        self._private: Any = None
        self._context_pin: str | None = None
        self._touch: str | None = None
        self._signing_ts: TokenSession | None = None
        self._ts: TokenSession | None = open_token(uri, login=False)
        try:
            public = find_public_key(self._ts, uri) if uri.id is not None or uri.object else None
            if public is None:  # the public object is private too, or named differently
                self._log_in()
                assert self._private is not None
                with P11_LOCK:
                    public = self._public_of_private()
            self._public = public
        except BaseException:
            self.close()
            raise
        self._label = self._ts.label

    def _log_in(self) -> None:
        """Log in (asking for the PIN if needed) and find the private key."""
        self._signing_ts = open_token(self._uri, pin_callback=self._pin_callback, keep_pin=True)
        with P11_LOCK:
            try:
                self._private = _private_key(self._signing_ts, self._uri)
                # YubiKey PIV slot 9c and similar: the PIN again for every signature.
                self._context_pin = (
                    self._signing_ts.pin_for_context_login()
                    if _attr(self._private, Attribute.ALWAYS_AUTHENTICATE, False) is True
                    else None
                )
                self._touch = touch_prompt(
                    _vendor_attr(self._private, CKA_YUBICO_TOUCH_POLICY), self._signing_ts.label
                )
            except p11e.PKCS11Error as exc:
                raise _gone_error(exc, self._signing_ts.label, "finding the key") from None

    def _public_of_private(self) -> bytes:
        assert self._signing_ts is not None
        try:
            return _public_for_private(self._signing_ts, self._private, self._uri)
        except p11e.PKCS11Error as exc:
            raise _gone_error(exc, self._signing_ts.label, "finding the key") from None

    @property
    def uri(self) -> Pkcs11Uri:
        return self._uri

    def public_key(self) -> bytes:
        return self._public

    def _sign_digest(self, digest: bytes, context: SigningContext | None) -> bytes:
        if self._ts is None:
            raise SignerError(f"{self.describe()} is closed")
        with P11_LOCK:  # threads signing at once log in once
            if self._private is None:
                self._log_in()
                if self._public_of_private() != self._public:
                    raise SignerError(
                        f"{self.describe()}: the private key found after login does not belong "
                        "to the public key read before it; give the key's id= in the URI"
                    )
        if self._touch is not None:
            import sys

            print(f"tka: {self._touch}", file=sys.stderr, flush=True)
        with P11_LOCK:
            try:
                if self._context_pin is not None:
                    signature = self._private.sign(
                        digest, mechanism=Mechanism.EDDSA, pin=self._context_pin
                    )
                else:
                    signature = self._private.sign(digest, mechanism=Mechanism.EDDSA)
            except p11e.PKCS11Error as exc:
                raise _gone_error(exc, self._label, "signing") from None
        return bytes(signature)

    def describe(self) -> str:
        label = self._ts.label if self._ts is not None else self._uri.token
        return f"PKCS#11 token {label!r} key {self._uri.key_selector()}"

    def close(self) -> None:
        self._context_pin = None
        self._private = None
        for ts in (self._signing_ts, self._ts):
            if ts is not None:
                ts.close()
        self._signing_ts = self._ts = None


def iter_token_infos(module_path: str) -> Iterator[tuple[TokenInfo, Any]]:
    """(info, token) for each initialized token of the module, flags read fresh."""
    with P11_LOCK:
        lib = load_module(module_path)
        for token in initialized_tokens(lib):
            yield _token_info(token), token
