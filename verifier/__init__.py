"""The Tailnet Key Authority's rules: wire types, canonical CBOR, hashes, validation, the state
machine, the authority, storage, sync and node-key authorization. No keys, no network.

Import order matters only in that nothing here imports `signer` or `control`.
"""

from verifier.errors import (
    ControlError,
    DecodeError,
    DeviceError,
    NotTrustedError,
    SignatureError,
    SignerError,
    StorageError,
    TKAError,
    ValidationError,
)

__all__ = [
    "ControlError",
    "DecodeError",
    "DeviceError",
    "NotTrustedError",
    "SignatureError",
    "SignerError",
    "StorageError",
    "TKAError",
    "ValidationError",
]
