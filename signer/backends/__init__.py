"""Key backends: one Ed25519 key behind `KeyBackend`, chosen by URI scheme.

- `pkcs11:token=…;object=…` (RFC 7512) → `Pkcs11Backend` (SoftHSM, YubiKey, YubiHSM, …)
- `file:/path` → `FileBackend` (software key in a 0600 `nlpriv:` file)
- `appliance:device=/dev/ttyACM0;key=NAME` → `ApplianceBackend` (the signer appliance, which
  shows what it signs and asks a person; docs/appliance.md)

`open_backend` returns the backend wrapped in `VerifiedBackend`, so every signature it hands out
has been verified under both tailnet-lock rules.
"""

from __future__ import annotations

from signer.backends.base import KeyBackend, SigningContext
from signer.pin import PinCallback
from signer.uri import parse_file_uri, parse_pkcs11_uri, uri_scheme
from verifier.errors import SignerError

__all__ = ["KeyBackend", "SigningContext", "open_backend"]


def open_backend(
    uri: str, *, pin_source: PinCallback | None = None, verify: bool = True
) -> KeyBackend:
    """Open the key `uri` names.

    `pin_source` replaces the interactive PIN prompt (it is asked only when neither the URI's
    `pin-source=` nor the environment (`TKA_PKCS11_PIN`, `TKA_APPLIANCE_PIN`) gives the PIN).
    `verify=False` returns the bare backend (benchmarks only).
    """
    scheme = uri_scheme(uri)
    backend: KeyBackend
    if scheme == "pkcs11":
        from signer.backends.pkcs11 import Pkcs11Backend  # loads python-pkcs11 only when needed

        backend = Pkcs11Backend(parse_pkcs11_uri(uri), pin_callback=pin_source)
    elif scheme == "file":
        from signer.backends.file import FileBackend

        backend = FileBackend(parse_file_uri(uri))
    elif scheme == "appliance":
        from signer.backends.appliance import parse_appliance_uri
        from signer.backends.appliance.backend import ApplianceBackend  # loads pyserial lazily

        backend = ApplianceBackend(parse_appliance_uri(uri), pin_callback=pin_source)
    else:
        raise SignerError(
            f"unknown key URI scheme {scheme!r}; use pkcs11:token=…;object=…, "
            "appliance:device=…;key=… or file:/path"
        )
    if not verify:
        return backend
    from signer.verified import VerifiedBackend

    return VerifiedBackend(backend)
