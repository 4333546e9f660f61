"""`appliance:` key URIs and where the appliance's PIN comes from.

    appliance:device=/dev/ttyACM0;key=admin
    appliance:device=socket://127.0.0.1:7000;key=admin;pin-source=file:/etc/tka/pin;timeout=60
    appliance:/dev/ttyACM0;key=admin          (the device as the first, unnamed attribute)

Attributes are separated by `;`, values percent-encoded where they contain `;` or `%`:

- `device`: anything `serial.serial_for_url` opens; when absent, `$TKA_APPLIANCE_DEVICE`.
- `key`: the name of the key on the device (required).
- `pin-source`: `file:/path` (or a bare path) holding the PIN; the file must be mode 0600 or
  stricter.
- `timeout`: seconds the host waits for the person to confirm (1-3600; default 120); it is also
  passed to the device as the call's confirmation timeout.

`pin-value` is refused (it would put the PIN on argv); unknown attributes are refused (a typo
would otherwise be silently ignored). The PIN comes from `pin-source`, else `$TKA_APPLIANCE_PIN`,
else a prompt on the terminal: never from argv, never logged, never in a message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from signer.pin import prompt_pin as pin_prompt
from signer.pin import read_pin_file
from signer.pin import resolve_pin as pin_resolve
from verifier.errors import SignerError

DEVICE_ENV = "TKA_APPLIANCE_DEVICE"
PIN_ENV = "TKA_APPLIANCE_PIN"
_ATTRS = frozenset({"device", "key", "pin-source", "pin-value", "timeout"})
MAX_TIMEOUT = 3600.0

PinCallback = Callable[[str], str]


@dataclass(frozen=True)
class ApplianceUri:
    device: str
    key: str
    pin_source: str | None = None
    timeout: float | None = None

    def to_string(self) -> str:
        parts = [f"device={quote(self.device, safe='/:@.-_~+,=')}", f"key={quote(self.key)}"]
        if self.pin_source is not None:
            parts.append(f"pin-source={quote(self.pin_source, safe='/:@.-_~+,=')}")
        if self.timeout is not None:
            parts.append(f"timeout={self.timeout:g}")
        return "appliance:" + ";".join(parts)


def parse_appliance_uri(uri: str, *, env: Mapping[str, str] | None = None) -> ApplianceUri:
    if not uri.lower().startswith("appliance:"):
        raise SignerError(f"not an appliance URI (must start with 'appliance:'): {uri[:40]!r}")
    body = uri[len("appliance:"):]
    attrs: dict[str, str] = {}
    for i, part in enumerate(body.split(";")):
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq or (i == 0 and "/" in name):
            if i == 0:  # appliance:/dev/ttyACM0;key=… (the device, unnamed)
                attrs["device"] = unquote(part)
                continue
            raise SignerError(f"appliance URI attribute {name!r} has no '=value'")
        name = name.strip().lower()
        if name not in _ATTRS:
            raise SignerError(
                f"appliance URI has unknown attribute {name!r}; known: device, key, "
                "pin-source, timeout"
            )
        if name in attrs:
            raise SignerError(f"appliance URI repeats the attribute {name!r}")
        attrs[name] = unquote(value)
    if "pin-value" in attrs:
        raise SignerError(
            "appliance URI contains pin-value, which would put the PIN on the command line; "
            f"use pin-source=file:/path/to/pin (mode 0600) or the {PIN_ENV} environment variable"
        )
    environ = os.environ if env is None else env
    device = attrs.get("device") or environ.get(DEVICE_ENV, "")
    if not device:
        raise SignerError(
            "appliance URI names no device; add device=/dev/ttyACM0 (or set "
            f"{DEVICE_ENV})"
        )
    key = attrs.get("key", "")
    if not key:
        raise SignerError(
            "appliance URI names no key; add key=<name> (`tka appliance keys` lists them)"
        )
    timeout: float | None = None
    if "timeout" in attrs:
        try:
            timeout = float(attrs["timeout"])
        except ValueError:
            raise SignerError("appliance URI timeout= must be a number of seconds") from None
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise SignerError(f"appliance URI timeout= must be 1-{MAX_TIMEOUT:g} seconds")
    return ApplianceUri(device=device, key=key, pin_source=attrs.get("pin-source"),
                        timeout=timeout)


# --------------------------------------------------------------------------------------------
# PIN sources


def read_private_pin_file(source: str) -> str:
    """The PIN in `file:/path` or `/path` (mode 0600 or stricter): `signer.pin.read_pin_file`."""
    return read_pin_file(source)


def prompt_pin(what: str) -> str:
    """Ask on the terminal, without echo."""
    return pin_prompt(what, PIN_ENV)


def resolve_pin(
    what: str,
    *,
    pin_source: str | None,
    callback: PinCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """pin-source, else $TKA_APPLIANCE_PIN, else `callback` (default: the terminal prompt)."""
    return pin_resolve(what, uri_pin_source=pin_source, callback=callback, env=env,
                       env_var=PIN_ENV)
