"""No lost update: many `tka add` runs at once, each from its own node with its own trusted key,
each adding a different key. Every run that exits 0 must leave its key trusted, whatever the
order in which their updates reach the service; runs that lose a race rebuild on the new head
and sign again."""

from __future__ import annotations

import os
import subprocess
import sys

import nacl.signing
from tailnet_harness import REPO, Tailnet

WRITERS = int(os.environ.get("TKA_CONCURRENT_WRITERS", "8"))
ROUNDS = int(os.environ.get("TKA_CONCURRENT_ROUNDS", "2"))


def _new_key() -> str:
    return "tlpub:" + bytes(nacl.signing.SigningKey.generate().verify_key).hex()


def test_concurrent_adds_lose_nothing(tailnet: Tailnet) -> None:
    net = tailnet
    writers = [f"w{i}" for i in range(WRITERS)]
    for node in writers:
        net.ok(node, "node", "register", "--name", node)
    keys = [net.lock_public(node) for node in writers]
    net.ok(writers[0], "init", "--gen-disablements", "1", "--confirm", *keys)

    added: list[str] = []
    rebuilt = 0
    for _ in range(ROUNDS):
        wanted = {node: _new_key() for node in writers}
        procs = {
            node: subprocess.Popen(
                [sys.executable, "-m", "signer.cli", "add", "--yes", key,
                 "--state", str(net.root / node), "--control", net.control],
                cwd=REPO, env=net.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
            for node, key in wanted.items()
        }
        for node, proc in procs.items():
            _out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"{node}: {err}"
            rebuilt += err.count("signing the change again")
            added.append(wanted[node])
        trusted = {k["Public"] for k in net.status(writers[0])["TrustedKeys"]}  # type: ignore[index]
        missing = [k for k in added if k not in trusted]
        assert not missing, f"{len(missing)} of {len(added)} added keys are not trusted"
    print(f"\n{WRITERS} writers x {ROUNDS} rounds: {len(added)} keys added, "
          f"{rebuilt} rebuilds after lost races")
