"""Fixtures shared by the bulk peer tests: a trusted key and a state that trusts it beside
another key."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from verifier.key import ed25519_key
from verifier.state import State


@pytest.fixture(scope="module")
def trusted() -> SigningKey:
    return SigningKey(bytes(range(32)))


@pytest.fixture(scope="module")
def state(trusted: SigningKey) -> State:
    other = SigningKey(bytes(range(1, 33)))
    keys = (ed25519_key(bytes(other.verify_key)), ed25519_key(bytes(trusted.verify_key)))
    return State(keys=keys)
