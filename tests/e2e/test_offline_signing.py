"""Air-gapped signing: a request file out, a response file back, through the real CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tailnet_harness import REPO, Tailnet, enable


def _offline_sign(net: Tailnet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signer.cli", "offline", "sign", *args],
                          cwd=REPO, env=net.env, capture_output=True, text=True, timeout=120)


def test_air_gapped_signing_round_trip(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm_uri)
    net.ok("phone", "node", "register", "--name", "phone")
    phone = net.node_key("phone")
    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    net.ok("laptop", "offline", "request", phone, "--out", str(req))

    # A tampered authority in the request is refused before anything is signed.
    doc = json.loads(req.read_text())
    raw = bytearray(base64.b64decode(doc["Authority"][0]))
    raw[-1] ^= 1
    doc["Authority"][0] = base64.b64encode(bytes(raw)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    proc = _offline_sign(net, "--in", str(bad), "--out", str(resp), "--key", hsm_uri, "--yes")
    assert proc.returncode == 1 and "does not verify" in proc.stderr
    assert not resp.exists()

    # A key the authority does not trust is refused too.
    proc = _offline_sign(net, "--in", str(req), "--out", str(resp), "--key",
                         f"file:{net.root / 'laptop' / 'lock.key'}", "--yes")
    assert proc.returncode == 1 and "is not trusted" in proc.stderr
    assert not resp.exists()

    # Without --yes and without a terminal nothing is signed.
    proc = _offline_sign(net, "--in", str(req), "--out", str(resp), "--key", hsm_uri)
    assert proc.returncode == 2 and not resp.exists()

    proc = _offline_sign(net, "--in", str(req), "--out", str(resp), "--key", hsm_uri, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"will sign node key {phone}" in proc.stderr
    assert net.status("phone")["NodeKeySigned"] is False
    net.ok("laptop", "offline", "submit", "--in", str(resp))
    assert net.status("phone")["NodeKeySigned"] is True
    assert "not a tka-offline-sign-response file" in net.fails(
        "laptop", "offline", "submit", "--in", str(req)
    )
