"""The node credential: the secret a node shows its coordination service on every request,
`nodecred:<64 lower-case hex>` (256 random bits). The node makes it (signer/node.py); the
service keeps only its SHA-256 (control/service.py). One definition for both sides."""

from __future__ import annotations

import re

CREDENTIAL_PREFIX = "nodecred:"
CREDENTIAL_FORM = "nodecred:<64 hex>"
_CREDENTIAL = re.compile(r"nodecred:[0-9a-f]{64}")


def new_credential() -> str:
    import secrets  # here, not at start-up: it loads `random`

    return CREDENTIAL_PREFIX + secrets.token_bytes(32).hex()


def is_credential(text: object) -> bool:
    return isinstance(text, str) and _CREDENTIAL.fullmatch(text) is not None
