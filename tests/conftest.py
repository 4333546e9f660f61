"""Shared pytest fixtures.

`softhsm_token` — a fresh, real SoftHSM2 token for one test
-----------------------------------------------------------
Each test that asks for it gets its own token directory and `softhsm2.conf` under `tmp_path`,
`SOFTHSM2_CONF` set through `monkeypatch` (so it is restored afterwards), and one initialized
token with a random label, a random user PIN and a random SO PIN. The PINs are typed into
`softhsm2-util` through a pseudo-terminal, never passed on its argv.

It yields a `SoftHSMToken` with:
  - `label`, `pin`, `so_pin`, `module_path`, `conf_path`, `token_dir`;
  - `uri(object=…, id=…)` — a `pkcs11:` URI for a key on this token (no PIN inside);
  - `env()` — a copy of `os.environ` with `SOFTHSM2_CONF`, `TKA_PKCS11_MODULE` and
    `TKA_PKCS11_PIN` set, for running `python -m signer.cli …` as a subprocess.

In-process use: `signer.backends.pkcs11` re-initializes the module when `SOFTHSM2_CONF` has
changed and no session is open, so close every backend a test opens (use `with` or `close()`).
Tests that need a token with the PIN in the environment of the test process itself can
`monkeypatch.setenv("TKA_PKCS11_PIN", token.pin)`.

Example:
    def test_sign(softhsm_token):
        subprocess.run([sys.executable, "-m", "signer.cli", "key", "generate",
                        softhsm_token.uri(object="k")], env=softhsm_token.env(), check=True)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from signer.softhsm import SOFTHSM_MODULE, init_softhsm_token, write_softhsm_conf


@dataclass(frozen=True)
class SoftHSMToken:
    label: str
    pin: str
    so_pin: str
    module_path: str
    conf_path: Path
    token_dir: Path

    def uri(self, object: str | None = None, id: bytes | None = None) -> str:
        parts = [f"token={quote(self.label, safe='')}"]
        if object is not None:
            parts.append(f"object={quote(object, safe='')}")
        if id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in id))
        return "pkcs11:" + ";".join(parts)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SOFTHSM2_CONF"] = str(self.conf_path)
        env["TKA_PKCS11_MODULE"] = self.module_path
        env["TKA_PKCS11_PIN"] = self.pin
        return env


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHSMToken]:
    """A fresh SoftHSM2 token in its own directory (see the module docstring)."""
    conf, token_dir = write_softhsm_conf(tmp_path / "softhsm")
    label = f"tka-test-{secrets.token_hex(4)}"
    pin = f"{secrets.randbelow(10**8):08d}{secrets.token_hex(3)}"
    so_pin = f"so-{secrets.token_hex(6)}"
    init_softhsm_token(conf, label, so_pin, pin)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    monkeypatch.setenv("TKA_PKCS11_MODULE", SOFTHSM_MODULE)
    monkeypatch.delenv("TKA_PKCS11_PIN", raising=False)
    yield SoftHSMToken(
        label=label,
        pin=pin,
        so_pin=so_pin,
        module_path=SOFTHSM_MODULE,
        conf_path=conf,
        token_dir=token_dir,
    )
