"""Signing deeplinks (docs/format.md §9): `tailscale://sign-device/v1/?…` links a device shows so
that a signing device can check, with a MAC keyed by the authority's StateID1, what it is asked to
sign."""

from __future__ import annotations

import hashlib
import hmac
import struct
import urllib.parse
from dataclasses import dataclass

from verifier.errors import DecodeError

SCHEME = "tailscale"
HOST = "sign-device"
VERSION = "v1"
_SAFE = "-_.~"  # plus ASCII letters and digits: Go's query escaping


def _mac(state_id1: int, nk: str, tp: str, dn: str, os_name: str, em: str) -> bytes:
    key = struct.pack("<Q", state_id1)
    return hmac.new(key, (nk + tp + dn + os_name + em).encode(), hashlib.sha256).digest()


def _escape(value: str) -> str:
    return urllib.parse.quote_plus(value, safe=_SAFE)


def new_deeplink(
    state_id1: int, node_key: str, tlpub: str, device_name: str, os_name: str, login: str
) -> str:
    if not node_key.startswith("nodekey:"):
        raise DecodeError("node key must start with nodekey:")
    if not tlpub.startswith("tlpub:"):
        raise DecodeError("tailnet-lock key must start with tlpub:")
    if not device_name or not os_name or not login:
        raise DecodeError("device name, OS name and login name must not be empty")
    mac = _mac(state_id1, node_key, tlpub, device_name, os_name, login).hex()
    params = {"dn": device_name, "em": login, "hm": mac, "nk": node_key, "os": os_name,
              "tp": tlpub}
    query = "&".join(f"{k}={_escape(v)}" for k, v in sorted(params.items()))
    return f"{SCHEME}://{HOST}/{VERSION}/?{query}"


@dataclass(frozen=True)
class DeeplinkResult:
    valid: bool
    error: str = ""
    node_key: str = ""
    tlpub: str = ""
    device_name: str = ""
    os_name: str = ""
    email: str = ""


def validate_deeplink(url: str, state_id1: int) -> DeeplinkResult:
    """The checks of the reference, in its order; never raises for a bad link."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as err:
        return DeeplinkResult(False, f"parse error: {err}")
    if parsed.scheme != SCHEME:
        return DeeplinkResult(False, "unhandled scheme " + repr(parsed.scheme))
    if parsed.netloc != HOST:
        return DeeplinkResult(False, "unhandled host " + repr(parsed.netloc))
    parts = parsed.path.split("/")
    if len(parts) != 3 or parts[1] != VERSION:
        return DeeplinkResult(False, "unhandled path " + repr(parsed.path))
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)

    def first(name: str) -> str:
        return query.get(name, [""])[0]

    nk, tp, dn, os_name, em, hm = (first(n) for n in ("nk", "tp", "dn", "os", "em", "hm"))
    # The reference tests dn twice instead of os (docs/format.md §9 quirk): an empty os is accepted.
    for name, value in (("nk", nk), ("tp", tp), ("dn", dn), ("em", em), ("hm", hm)):
        if not value:
            return DeeplinkResult(False, f"missing {name}")
    try:
        given = bytes.fromhex(hm)
    except ValueError:
        return DeeplinkResult(False, "could not hex-decode hmac")
    if not hmac.compare_digest(given, _mac(state_id1, nk, tp, dn, os_name, em)):
        return DeeplinkResult(False, "hmac authentication failed")
    return DeeplinkResult(True, "", nk, tp, dn, os_name, em)
