"""What we emit is safer than the reference where it costs nothing (docs/format.md §10, item 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from signer.backends.file import FileBackend, write_new_key_file
from signer.nks_signing import sign_direct_nks
from verifier.nks import NodeKeySignature


@pytest.mark.parametrize("rotation", [b"", bytes(32)])
def test_we_never_emit_an_all_zero_wrapping_key(rotation: bytes, tmp_path: Path) -> None:
    path = tmp_path / "lock.key"
    write_new_key_file(path)
    with FileBackend(path) as backend:
        nks = NodeKeySignature.from_cbor(sign_direct_nks(backend, os.urandom(32), rotation))
    assert nks.wrapping_pubkey == b""
    assert nks.key_id == bytes(SigningKey(FileBackend(path).seed()).verify_key)
