"""`make demo` (the README's first command) runs its whole story; each step it prints checks
the exit code of the real `tka` it ran, so a broken step fails here."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_runs_to_the_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signer.demo"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "demo complete" in out
    # The appliance shows what it signs, and the person declines once.
    appliance = out.split("=== The signer appliance")[1].split("\n=== ")[0]
    assert "│ Node key: nodekey:" in appliance and "short form: [" in appliance
    assert "the person presses n (decline)" in appliance
    assert "tka: declined on the device; nothing was signed or changed" in appliance
    assert "chain intact" in appliance
    # The audit step finds exactly the forged entry, and lock ends disabled everywhere.
    assert "8 peers: 7 authorized, 1 not authorized" in out
    assert "signature does not authorize nodeKey" in out
    last_step = out.split("=== Disable tailnet lock")[1]
    assert "[phone] $ tka status\n    Tailnet Lock is NOT enabled." in last_step
