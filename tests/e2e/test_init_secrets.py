"""`tka init` hands the disablement secrets over before the service enables lock, and enables
nothing when it cannot: no lock without its escape hatch."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

from tailnet_harness import REPO, Tailnet


def _register(net: Tailnet, softhsm_token: object) -> str:
    hsm = softhsm_token.uri(object="admin-lock-key")  # type: ignore[attr-defined]
    gen = subprocess.run([sys.executable, "-m", "signer.cli", "key", "generate", hsm],
                         cwd=REPO, env=net.env, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    net.ok("admin", "node", "register", "--name", "admin", "--lock-key", hsm)
    return net.lock_public("admin")


def test_secrets_written_to_a_new_private_file(tailnet: Tailnet, softhsm_token: object) -> None:
    net = tailnet
    key = _register(net, softhsm_token)
    out_file = net.root / "secrets.txt"
    out = net.ok("admin", "init", "--gen-disablements", "2", "--secrets-out", str(out_file),
                 "--confirm", key)
    assert "disablement-secret:" not in out
    assert f"written to {out_file}" in out
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    secrets = re.findall(r"^disablement-secret:[0-9A-F]{64}$", out_file.read_text(), re.M)
    assert len(secrets) == 2
    assert net.status("admin")["Enabled"] is True
    net.ok("admin", "disable", "--yes", stdin=secrets[1] + "\n")
    assert net.status("admin")["Enabled"] is False


def test_an_existing_secrets_file_is_never_overwritten(
    tailnet: Tailnet, softhsm_token: object
) -> None:
    net = tailnet
    key = _register(net, softhsm_token)
    out_file = net.root / "secrets.txt"
    out_file.write_text("keep me\n")
    err = net.fails("admin", "init", "--gen-disablements", "1", "--secrets-out", str(out_file),
                    "--confirm", key)
    assert "already exists; refusing to overwrite it; tailnet lock was not enabled" in err
    assert out_file.read_text() == "keep me\n"
    assert net.status("admin")["Enabled"] is False


def test_stdout_on_a_full_disk_enables_nothing(tailnet: Tailnet, softhsm_token: object) -> None:
    net = tailnet
    key = _register(net, softhsm_token)
    before = net.snapshot()
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "signer.cli", "init", "--gen-disablements", "1", "--confirm",
             key, "--state", str(net.root / "admin"), "--control", net.control],
            cwd=REPO, env=net.env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert net.snapshot() == before  # the service never heard of the genesis
    assert net.status("admin")["Enabled"] is False
