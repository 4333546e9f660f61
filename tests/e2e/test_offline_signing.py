"""Air-gapped signing: the authority pinned once, a request file out, a response file back,
through the real CLI. The attacks on the pin are in test_offline_pinning.py."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tailnet_harness import REPO, Tailnet, enable


def offline(net: Tailnet, *args: str) -> subprocess.CompletedProcess[str]:
    """`tka offline …` as the air-gapped machine runs it: no state directory, no service."""
    return subprocess.run([sys.executable, "-m", "signer.cli", "offline", *args],
                          cwd=REPO, env=net.env, capture_output=True, text=True, timeout=120)


def tree_digest(root: Path) -> str:
    """Every path under `root` (and root itself) with its mode, and every file's bytes."""
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        h.update(f"{path.relative_to(root)}\0{info.st_mode:o}\0".encode())
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def refused(net: Tailnet, pin: Path, *args: str, code: int = 1) -> str:
    """An offline command that must refuse: one `tka:` line, the exit code, no traceback, the
    pinned directory byte for byte as it was and no response file (when `--out` is given)."""
    before = tree_digest(pin)
    out = Path(args[args.index("--out") + 1]) if "--out" in args else None
    assert out is None or not out.exists()
    proc = offline(net, *args)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tka: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_digest(pin) == before, f"{pin} changed after a refused `{' '.join(args)}`"
    assert out is None or not out.exists()
    return lines[0]


def trusted_head(net: Tailnet, node: str = "admin") -> str:
    """The head as the person reads it on a node they trust."""
    return str(net.status(node)["Head"])


def enroll(net: Tailnet, pin: Path, tmp_path: Path, online: str = "laptop") -> None:
    """Export the authority on `online`, pin it offline with the head admin shows."""
    export = tmp_path / "authority.json"
    net.ok(online, "offline", "export-authority", "--out", str(export))
    proc = offline(net, "enroll", "--authority", str(pin), "--in", str(export),
                   "--head", trusted_head(net))
    assert proc.returncode == 0, proc.stderr
    assert f"at head {trusted_head(net)}" in proc.stdout


def test_air_gapped_signing_round_trip(
    tailnet: Tailnet, softhsm_token: Any, tmp_path: Path
) -> None:
    net = tailnet
    hsm_uri = softhsm_token.uri(object="admin-lock-key")
    enable(net, hsm_uri)
    net.ok("phone", "node", "register", "--name", "phone")
    phone = net.node_key("phone")
    pin = tmp_path / "airgap" / "authority"
    pin.parent.mkdir()
    enroll(net, pin, tmp_path)
    assert stat.S_IMODE(pin.stat().st_mode) == 0o700
    assert not [p for p in pin.parent.iterdir() if p != pin]  # no scratch left behind

    req, resp = tmp_path / "req.json", tmp_path / "resp.json"
    net.ok("laptop", "offline", "request", phone, "--out", str(req))
    sign = ("sign", "--authority", str(pin), "--in", str(req), "--out", str(resp))

    # The pinned directory is required: signing without one is a usage error.
    proc = offline(net, "sign", "--in", str(req), "--out", str(resp), "--key", hsm_uri, "--yes")
    assert proc.returncode == 2 and "--authority" in proc.stderr and not resp.exists()
    assert "no pinned authority" in refused(
        net, pin, "sign", "--authority", str(tmp_path / "nowhere"), "--in", str(req),
        "--out", str(resp), "--key", hsm_uri, "--yes")

    # A tampered authority in the request is refused before anything is signed.
    doc = json.loads(req.read_text())
    raw = bytearray(base64.b64decode(doc["Authority"][0]))
    raw[-1] ^= 1
    doc["Authority"][0] = base64.b64encode(bytes(raw)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    line = refused(net, pin, "sign", "--authority", str(pin), "--in", str(bad),
                   "--out", str(resp), "--key", hsm_uri, "--yes")
    assert "does not verify" in line

    # A key the authority does not trust is refused too.
    line = refused(net, pin, *sign, "--key", f"file:{net.root / 'laptop' / 'lock.key'}", "--yes")
    assert "is not trusted" in line

    # Without --yes and without a terminal nothing is signed.
    refused(net, pin, *sign, "--key", hsm_uri, code=2)

    before = tree_digest(pin)
    proc = offline(net, *sign, "--key", hsm_uri, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert f"at head {trusted_head(net)}" in proc.stderr
    assert "the request is at the pinned head" in proc.stderr
    assert f"will sign node key {phone}" in proc.stderr
    assert tree_digest(pin) == before  # nothing new to pin
    assert net.status("phone")["NodeKeySigned"] is False
    net.ok("laptop", "offline", "submit", "--in", str(resp))
    assert net.status("phone")["NodeKeySigned"] is True
    assert "not a tka-offline-sign-response file" in net.fails(
        "laptop", "offline", "submit", "--in", str(req)
    )
