"""The project's one exception hierarchy.

Every error a user can meet derives from `TKAError`. Messages say what happened and, where
there is something to do, what to do next. They never carry secrets (PINs, disablement
secrets, private keys).
"""

from __future__ import annotations


class TKAError(Exception):
    """Root of every error raised by tka-signer."""


class DecodeError(TKAError):
    """Bytes or text that do not decode (CBOR, hex, base32, base64, key text)."""


class ValidationError(TKAError):
    """A well-formed value that breaks a rule of the authority (docs/format.md §5, §6)."""


class SignatureError(TKAError):
    """A signature that does not verify."""


class NotTrustedError(TKAError):
    """A key that the authority does not trust where trust is required."""


class KeyNotFoundError(NotTrustedError):
    """A key lookup in a state found no key with that ID (the reference's ErrNoSuchKey)."""


class UnknownKeyKindError(NotTrustedError):
    """A key lookup reached a trusted key of a kind that has no key ID (not Ed25519): the
    reference stops there with an error instead of looking further."""


class StorageError(TKAError):
    """Authority storage that is missing, corrupt, half-written or locked."""


class SignerError(TKAError):
    """A key backend that cannot sign (bad URI, missing key, wrong PIN, ...)."""


class DeviceError(SignerError):
    """A hardware device (token or appliance) that is absent, unplugged or refuses."""


class ControlError(TKAError):
    """The coordination service refused a request or could not be reached."""


class SyncError(TKAError):
    """Two authorities could not be reconciled (no intersection, broken chain)."""
