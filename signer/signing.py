"""Signing builders: AUMs and node-key signatures made with any key backend, checked before use.

The whole API (everything returns only after verifying what it built, with the verifier's own
rules, so a faulty token or a wrong key never produces a signature we publish):

- `aum_signer(backend) -> AUMSigner` — the backend as the verifier's AUM signer: each AUM goes
  to the backend whole, with the signatures it already carries (`SigningContext.payload`), so a
  device that shows what it signs can parse it and check the co-signatures itself.
- `sign_aum(backend, aum) -> AUM` — signs `aum.sig_hash()` (docs/format.md §4) and appends
  `Signature(key_id=<backend public key>, signature)` (the KeyID of an Ed25519 key is its public
  key, docs/format.md §1). Existing signatures are kept, so co-signing is calling it again with
  another key.
- `sign_direct(backend, node_key, rotation_public=None) -> NodeKeySignature` — a direct NKS
  (docs/format.md §3) by the backend's lock key; `rotation_public` is the node's wrapping key for
  later rotations. An all-zero rotation key is never emitted (docs/format.md §10 item 1): it is
  dropped.
- `make_credential(backend, wrapping_public) -> NodeKeySignature` — a credential NKS: the
  backend's key authorizes whoever holds the wrapping key's private half to sign node keys.
- `wrap_auth_key(backend, auth_key) -> str` — a fresh random wrapping key W, a credential for W
  signed by the backend, and the `<authkey>--TL<b64 NKS>-<b64 W private>` text of docs/format.md §9.
- `revocable_auth_key(auth_key, wrapper_stableid) -> (Key, str)` — Tailscale's own (revocable)
  mode: a fresh credential key C signs the credential for a fresh wrapping key W and is then
  discarded; returns the `Key` to trust for C (1 vote, the metadata Tailscale writes), which an
  AddKey signed by a trusted key must add, and the wrapped key text (a secret).
- `sign_rotation(wrapping_private, node_key, previous, rotation_public=None) -> NodeKeySignature`
  — a rotation NKS (docs/format.md §7) over `previous` (a credential, or an earlier direct/rotation
  NKS), signed by the 64-byte wrapping private key (seed ‖ public) the previous level names.

The backend's key must be trusted for the result to authorize anything; that is the
authority's business (docs/format.md §7), not checked here. Each builder checks the signature itself
(docs/format.md §7 against the backend's public key as the trusted key).
"""

from __future__ import annotations

import time

import nacl.signing

from signer.backends.base import KeyBackend, SigningContext
from signer.nks_signing import sign_direct_nks
from verifier import authkey, ed25519
from verifier.aum import AUM, message_kind_name
from verifier.errors import SignatureError, SignerError
from verifier.key import Key, Signature, ed25519_key
from verifier.nks import NodeKeySignature, SigKind, verify_nks
from verifier.signing import AUMSigner
from verifier.textforms import format_node_public, node_key_binary

_ZERO_KEY = bytes(32)


def aum_signer(backend: KeyBackend) -> AUMSigner:
    """`backend` as an `AUMSigner` (see the module docstring)."""

    def sign(aum: AUM) -> bytes:
        return backend.sign(
            aum.sig_hash(),
            SigningContext(
                purpose="aum",
                summary=f"sign a tailnet-lock {message_kind_name(aum.kind)} update",
                payload=aum.to_cbor(),
            ),
        )

    return AUMSigner(backend.public_key(), sign)


def sign_aum(backend: KeyBackend, aum: AUM) -> AUM:
    """`aum` with one more signature, by `backend`'s key, over its SigHash."""
    signer = aum_signer(backend)
    signature = signer.sign_aum(aum)
    # AUM signatures are checked with ZIP-215 by nodes (docs/format.md §4); require the stricter
    # rule here so what we publish is accepted by verifiers using either.
    if not ed25519.verify(signer.public_key, aum.sig_hash(), signature, rule="cofactorless"):
        raise SignerError(
            f"{backend.describe()} produced an AUM signature that does not verify; do not use "
            "this key"
        )
    return aum.add_signature(Signature(key_id=signer.public_key, signature=signature))


def _checked(nks: NodeKeySignature, node_key: bytes, trusted_public: bytes, what: str) -> None:
    try:
        verify_nks(nks, node_key, ed25519_key(trusted_public))
    except SignatureError as err:
        raise SignerError(
            f"the {what} we built does not verify ({err}); nothing was emitted"
        ) from None


def sign_direct(
    backend: KeyBackend, node_key: bytes, rotation_public: bytes | None = None
) -> NodeKeySignature:
    """A direct NKS for the 32-byte `node_key`, signed by `backend`."""
    if rotation_public is not None and len(rotation_public) != 32:
        raise SignerError(f"rotation key is {len(rotation_public)} bytes; want 32 (Ed25519)")
    nks = NodeKeySignature.from_cbor(sign_direct_nks(backend, node_key, rotation_public or b""))
    _checked(nks, node_key, backend.public_key(), "node-key signature")
    return nks


def make_credential(backend: KeyBackend, wrapping_public: bytes) -> NodeKeySignature:
    """A credential NKS: `backend`'s key delegates node-key signing to `wrapping_public`."""
    if len(wrapping_public) != 32:
        raise SignerError(f"wrapping key is {len(wrapping_public)} bytes; want 32 (Ed25519)")
    if wrapping_public == _ZERO_KEY:
        # docs/format.md §10 item 1: anyone can "sign" for the all-zero point; never delegate to it.
        raise SignerError("refusing an all-zero wrapping key: anyone could sign with it")
    unsigned = NodeKeySignature(
        kind=SigKind.CREDENTIAL, key_id=backend.public_key(), wrapping_pubkey=wrapping_public
    )
    signature = backend.sign(
        unsigned.sig_hash(),
        SigningContext(
            purpose="node-key-signature",
            summary="create a credential that lets its holder authorize new node keys",
            payload=unsigned.to_cbor(),
        ),
    )
    nks = unsigned.replace(signature=signature)
    _checked(nks, _ZERO_KEY, backend.public_key(), "credential")
    return nks


def wrap_auth_key(backend: KeyBackend, auth_key: str) -> str:
    """A pre-signed auth key (docs/format.md §9): nodes that enroll with it sign their own rotation
    NKS."""
    if authkey.SEPARATOR in auth_key:
        raise SignerError("the auth key is already wrapped; pass the plain tskey-auth-… key")
    wrapping = nacl.signing.SigningKey.generate()
    credential = make_credential(backend, bytes(wrapping.verify_key))
    return authkey.wrap(auth_key, credential, bytes(wrapping) + bytes(wrapping.verify_key))


def revocable_auth_key(
    auth_key: str, wrapper_stableid: str, created: int | None = None
) -> tuple[Key, str]:
    """A pre-signed auth key in revocable mode (docs/format.md §9): removing the credential key
    it returns revokes it without touching the hardware key or the nodes it signed."""
    if authkey.SEPARATOR in auth_key:
        raise SignerError("the auth key is already wrapped; pass the plain tskey-auth-… key")
    credential_key = nacl.signing.SigningKey.generate()
    c_public = bytes(credential_key.verify_key)
    wrapping = nacl.signing.SigningKey.generate()
    wrapping_public = bytes(wrapping.verify_key)
    unsigned = NodeKeySignature(
        kind=SigKind.CREDENTIAL, key_id=c_public, wrapping_pubkey=wrapping_public
    )
    credential = unsigned.replace(signature=credential_key.sign(unsigned.sig_hash()).signature)
    del credential_key  # never stored: only the AddKey's removal can revoke it
    _checked(credential, _ZERO_KEY, c_public, "credential")
    meta = {
        "purpose": "pre-auth key",
        "wrapper_stableid": wrapper_stableid,
        "wrapper_createtime": str(int(time.time()) if created is None else created),
    }
    stable = authkey.authkey_stable_id(auth_key)
    if stable:
        meta["authkey_stableid"] = stable
    text = authkey.wrap(auth_key, credential, bytes(wrapping) + wrapping_public)
    return ed25519_key(c_public, votes=1, meta=meta), text


def sign_rotation(
    wrapping_private: bytes,
    node_key: bytes,
    previous: NodeKeySignature,
    rotation_public: bytes | None = None,
) -> NodeKeySignature:
    """A rotation NKS for `node_key` nesting `previous`, signed by the wrapping key `previous`
    names. `rotation_public` (optional, never all-zero) is the wrapping key for the next
    rotation."""
    if len(wrapping_private) != 64:
        raise SignerError("the wrapping private key is 64 bytes (seed and public key)")
    signing = nacl.signing.SigningKey(wrapping_private[:32])
    public = bytes(signing.verify_key)
    if public != wrapping_private[32:]:
        raise SignerError("wrapping private key: the seed does not match the public half")
    if previous.wrapping_public() != public:
        raise SignerError(
            "the previous signature does not name this wrapping key; it cannot be rotated with it"
        )
    if rotation_public is not None and len(rotation_public) != 32:
        raise SignerError(f"rotation key is {len(rotation_public)} bytes; want 32 (Ed25519)")
    unsigned = NodeKeySignature(
        kind=SigKind.ROTATION,
        pubkey=node_key_binary(node_key),
        nested=previous,
        wrapping_pubkey=b"" if rotation_public in (None, _ZERO_KEY) else rotation_public,
    )
    nks = unsigned.replace(signature=signing.sign(unsigned.sig_hash()).signature)
    # The whole chain is checked against the key the initial signature names (docs/format.md §7).
    trusted = previous.initial_signature().key_id
    if len(trusted) != 32:
        raise SignerError("the previous signature names no Ed25519 signing key (KeyID)")
    _checked(nks, node_key, trusted, f"rotation for {format_node_public(node_key)}")
    return nks
