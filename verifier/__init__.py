"""The Tailnet Key Authority's rules: wire types, canonical CBOR, hashes, validation, the state
machine, the authority, storage, sync and node-key authorization. No keys, no network.

Nothing here imports `signer` or `control`.
"""

# typing.TYPE_CHECKING without importing `typing` (several milliseconds of `tka --help` in a
# fresh venv, issue 14 item 4): type checkers take any `TYPE_CHECKING` as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
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

# Where each name of the package's API lives. They are imported on first use (PEP 562): a
# program that needs only `verifier.errors` (the `tka` command line before it runs a command)
# does not load the CBOR codec, the native library and Argon2 for nothing.
_EXPORTS: dict[str, str] = {
    "AUM": "verifier.aum",
    "MessageKind": "verifier.aum",
    "Authority": "verifier.authority",
    "disablement_kdf": "verifier.disablement",
    "ControlError": "verifier.errors",
    "DecodeError": "verifier.errors",
    "DeviceError": "verifier.errors",
    "NotTrustedError": "verifier.errors",
    "SignatureError": "verifier.errors",
    "SignerError": "verifier.errors",
    "StorageError": "verifier.errors",
    "TKAError": "verifier.errors",
    "ValidationError": "verifier.errors",
    "AUMHash": "verifier.hashes",
    "Key": "verifier.key",
    "Signature": "verifier.key",
    "NodeKeySignature": "verifier.nks",
    "SigKind": "verifier.nks",
    "PeerVerdict": "verifier.peers",
    "verify_peers": "verifier.peers",
    "AUMSigner": "verifier.signing",
    "State": "verifier.state",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        # Not ours: `from verifier import cbor` then imports the submodule.
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

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
