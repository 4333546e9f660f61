"""Key URIs: RFC 7512 `pkcs11:` URIs and `file:` URIs.

A key is always named by a URI so that the reference to a key (which may be logged, stored in
config and passed on argv) stays separate from the secret that unlocks it (the PIN, which never
appears in a URI we accept: `pin-value` is refused, `pin-source` names a file).

PKCS#11 URI (RFC 7512): `pkcs11:<path attributes separated by ;>?<query attributes separated by &>`,
values percent-encoded. Path attributes understood here: `token`, `manufacturer`, `model`,
`serial`, `slot-id`, `object` (CKA_LABEL), `id` (CKA_ID, raw bytes, e.g. `id=%01`), `type`;
the library-* and slot-description attributes are accepted and ignored. Query attributes:
`module-path`, `module-name` (a module of p11-kit's registry, `signer.p11kit`; `module-path`
wins when both are given), `pin-source`. Unknown attributes are refused (a typo
would otherwise silently widen the match); vendor `x-` attributes are ignored as the RFC asks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

from verifier.errors import SignerError

DEFAULT_PKCS11_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "TKA_PKCS11_MODULE"

_PATH_ATTRS = frozenset(
    {
        "token", "manufacturer", "model", "serial", "slot-id", "object", "id", "type",
        "library-manufacturer", "library-description", "library-version",
        "slot-description", "slot-manufacturer",
    }
)
_QUERY_ATTRS = frozenset({"module-path", "module-name", "pin-source", "pin-value"})
_OBJECT_TYPES = frozenset({"private", "public", "cert", "secret-key", "data"})

# Characters RFC 7512 lets through unescaped in a path value (pk11-pchar minus the separators).
_SAFE_PATH_CHARS = "-._~!$'()*+,=:[]@&"


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed `pkcs11:` URI. `id` is raw CKA_ID bytes; `module_path` is already resolved."""

    module_path: str
    token: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    pin_source: str | None = None

    def key_selector(self) -> str:
        """Short human description of which key this URI picks (for messages)."""
        parts = []
        if self.object is not None:
            parts.append(f"object={self.object!r}")
        if self.id is not None:
            parts.append(f"id={self.id.hex() or '(empty)'}")
        return " ".join(parts) or "(any key)"

    def token_selector(self) -> str:
        parts = []
        if self.token is not None:
            parts.append(f"token={self.token!r}")
        if self.serial is not None:
            parts.append(f"serial={self.serial!r}")
        if self.manufacturer is not None:
            parts.append(f"manufacturer={self.manufacturer!r}")
        if self.model is not None:
            parts.append(f"model={self.model!r}")
        if self.slot_id is not None:
            parts.append(f"slot-id={self.slot_id}")
        return " ".join(parts) or "(any token)"

    def to_string(self, *, with_module: bool = False) -> str:
        """Render back to a URI (percent-encoding every value that needs it)."""
        path: list[str] = []
        for name, value in (
            ("token", self.token),
            ("manufacturer", self.manufacturer),
            ("model", self.model),
            ("serial", self.serial),
        ):
            if value is not None:
                path.append(f"{name}={pct_encode(value.encode())}")
        if self.slot_id is not None:
            path.append(f"slot-id={self.slot_id}")
        if self.object is not None:
            path.append(f"object={pct_encode(self.object.encode())}")
        if self.id is not None:
            path.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        if self.type is not None:
            path.append(f"type={self.type}")
        text = "pkcs11:" + ";".join(path)
        query: list[str] = []
        if with_module:
            query.append(f"module-path={pct_encode(self.module_path.encode())}")
        if self.pin_source is not None:
            query.append(f"pin-source={pct_encode(self.pin_source.encode())}")
        if query:
            text += "?" + "&".join(query)
        return text


def pct_encode(value: bytes) -> str:
    out = []
    for b in value:
        ch = chr(b)
        if ch.isascii() and (ch.isalnum() or ch in _SAFE_PATH_CHARS) and ch not in ";?&=/":
            out.append(ch)
        else:
            out.append(f"%{b:02x}")
    return "".join(out)


def _split_attrs(text: str, sep: str, allowed: frozenset[str], where: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if not text:
        return attrs
    for part in text.split(sep):
        if not part:
            continue  # tolerate a trailing separator
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not eq:
            raise SignerError(f"PKCS#11 URI {where} attribute {name!r} has no '=value'")
        if name.startswith("x-"):
            continue  # vendor extension: RFC 7512 says to ignore what we do not understand
        if name not in allowed:
            raise SignerError(
                f"PKCS#11 URI has unknown {where} attribute {name!r}; "
                f"known: {', '.join(sorted(allowed))}"
            )
        if name in attrs:
            raise SignerError(f"PKCS#11 URI repeats the attribute {name!r}")
        attrs[name] = value
    return attrs


def _decode_text(name: str, raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise SignerError(f"PKCS#11 URI attribute {name!r} is not valid UTF-8") from None


def parse_pkcs11_uri(uri: str, *, env: dict[str, str] | None = None) -> Pkcs11Uri:
    """Parse a `pkcs11:` URI (RFC 7512). The module path comes from `module-path`, then
    `module-name` through p11-kit's registry, then the `TKA_PKCS11_MODULE` environment variable,
    then the SoftHSM default."""
    if not uri.lower().startswith("pkcs11:"):
        raise SignerError(f"not a PKCS#11 URI (must start with 'pkcs11:'): {uri[:40]!r}")
    body = uri[len("pkcs11:"):]
    path_text, _, query_text = body.partition("?")
    path = _split_attrs(path_text, ";", _PATH_ATTRS, "path")
    query = _split_attrs(query_text, "&", _QUERY_ATTRS, "query")

    if "pin-value" in query:
        # Never echo the value: it is the PIN.
        raise SignerError(
            "PKCS#11 URI contains pin-value, which would put the PIN on the command line; "
            "use pin-source=file:/path/to/pin (mode 0600) or the TKA_PKCS11_PIN "
            "environment variable"
        )

    environ = os.environ if env is None else env
    if "module-path" in query:
        module_path = _decode_text("module-path", query["module-path"])
    elif "module-name" in query:
        from signer.p11kit import resolve_module_name

        module_path = resolve_module_name(_decode_text("module-name", query["module-name"]),
                                          environ)
    else:
        module_path = environ.get(MODULE_ENV) or DEFAULT_PKCS11_MODULE

    slot_id: int | None = None
    if "slot-id" in path:
        try:
            slot_id = int(unquote(path["slot-id"]), 10)
        except ValueError:
            raise SignerError("PKCS#11 URI slot-id must be a decimal number") from None

    obj_type = path.get("type")
    if obj_type is not None:
        obj_type = unquote(obj_type)
        if obj_type not in _OBJECT_TYPES:
            raise SignerError(
                f"PKCS#11 URI type={obj_type!r} is not one of {', '.join(sorted(_OBJECT_TYPES))}"
            )

    def text(name: str) -> str | None:
        return _decode_text(name, path[name]) if name in path else None

    return Pkcs11Uri(
        module_path=module_path,
        token=text("token"),
        manufacturer=text("manufacturer"),
        model=text("model"),
        serial=text("serial"),
        slot_id=slot_id,
        object=text("object"),
        id=unquote_to_bytes(path["id"]) if "id" in path else None,
        type=obj_type,
        pin_source=_decode_text("pin-source", query["pin-source"]) if "pin-source" in query
        else None,
    )


def parse_file_uri(uri: str) -> Path:
    """`file:/abs/path`, `file:///abs/path`, `file://localhost/abs/path` or `file:relative`."""
    if not uri.lower().startswith("file:"):
        raise SignerError(f"not a file URI (must start with 'file:'): {uri[:40]!r}")
    rest = uri[len("file:"):]
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise SignerError(f"file URI names a remote host {host!r}; only local files work")
        rest = slash + path
    if not rest:
        raise SignerError("file URI has no path; use file:/path/to/key")
    return Path(unquote(rest))


def uri_scheme(uri: str) -> str:
    scheme, colon, _ = uri.partition(":")
    if not colon:
        raise SignerError(
            f"key {uri[:40]!r} is not a URI; use pkcs11:token=…;object=… or file:/path/to/key"
        )
    return scheme.lower()
