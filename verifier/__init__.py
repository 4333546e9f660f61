"""The Tailnet Key Authority's rules: wire types, canonical CBOR, hashes, validation, the state
machine, the authority, storage, sync and node-key authorization. No keys, no network.

Nothing here imports `signer` or `control`.
"""

from verifier.aum import AUM, MessageKind
from verifier.authority import Authority
from verifier.disablement import disablement_kdf
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
from verifier.hashes import AUMHash
from verifier.key import Key, Signature
from verifier.nks import NodeKeySignature, SigKind
from verifier.peers import PeerVerdict, verify_peers
from verifier.signing import AUMSigner
from verifier.state import State

__all__ = [
    "AUM",
    "AUMHash",
    "AUMSigner",
    "Authority",
    "ControlError",
    "DecodeError",
    "DeviceError",
    "Key",
    "MessageKind",
    "NodeKeySignature",
    "NotTrustedError",
    "PeerVerdict",
    "SigKind",
    "Signature",
    "SignatureError",
    "SignerError",
    "State",
    "StorageError",
    "TKAError",
    "ValidationError",
    "disablement_kdf",
    "verify_peers",
]
