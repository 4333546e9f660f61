"""Wrapped (pre-signed) auth keys (docs/format.md §9): `<authkey>--TL<b64raw(NKS)>-<b64raw(W
private)>`."""

from __future__ import annotations

import base64
import binascii

from verifier.errors import DecodeError
from verifier.fields import Frozen
from verifier.nks import NodeKeySignature, SigKind

SEPARATOR = "--TL"
AUTHKEY_PREFIX = "tskey-auth-"


def _b64raw(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64raw(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{what}: not unpadded standard base64") from None


_set = object.__setattr__


class WrappedAuthKey(Frozen):
    __match_args__ = ("auth_key", "credential", "wrapping_private")
    __slots__ = __match_args__
    auth_key: str
    credential: NodeKeySignature
    wrapping_private: bytes  # 64 bytes: seed ‖ public

    def __init__(
        self,
        auth_key: str,
        credential: NodeKeySignature,
        wrapping_private: bytes,
    ) -> None:
        _set(self, "auth_key", auth_key)
        _set(self, "credential", credential)
        _set(self, "wrapping_private", wrapping_private)

    def to_text(self) -> str:
        return (
            f"{self.auth_key}{SEPARATOR}{_b64raw(self.credential.to_cbor())}"
            f"-{_b64raw(self.wrapping_private)}"
        )


def authkey_stable_id(auth_key: str) -> str | None:
    """`tskey-auth-<X>-<rest>` → X (the `authkey_stableid` metadata), else None."""
    if not auth_key.startswith(AUTHKEY_PREFIX):
        return None
    rest = auth_key[len(AUTHKEY_PREFIX) :]
    stable, sep, _ = rest.partition("-")
    return stable if sep and stable else None


def wrap(auth_key: str, credential: NodeKeySignature, wrapping_private: bytes) -> str:
    if SEPARATOR in auth_key:
        raise DecodeError("provided key was already wrapped")
    if credential.kind != SigKind.CREDENTIAL:
        raise DecodeError("a wrapped auth key carries a credential signature")
    if len(wrapping_private) != 64:
        raise DecodeError("the wrapping private key is 64 bytes (seed and public key)")
    return WrappedAuthKey(auth_key, credential, wrapping_private).to_text()


def unwrap(text: str) -> WrappedAuthKey | None:
    """Split a wrapped key; None when `text` is a plain auth key. Malformed wrapping is an error
    here (the reference silently uses the whole string; we say what is wrong instead)."""
    auth_key, sep, rest = text.partition(SEPARATOR)
    if not sep:
        return None
    sig_text, dash, priv_text = rest.partition("-")
    if not dash:
        raise DecodeError("wrapped auth key: missing '-' between signature and private key")
    credential = NodeKeySignature.from_cbor(_unb64raw(sig_text, "wrapped auth key signature"))
    private = _unb64raw(priv_text, "wrapped auth key private key")
    if len(private) != 64:
        raise DecodeError(f"wrapped auth key: private key is {len(private)} bytes, want 64")
    return WrappedAuthKey(auth_key, credential, private)
