"""Registration that was interrupted finishes when run again; what killed runs leave behind is
removed by the next run."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

from tailnet_harness import Tailnet


def _nodes(net: Tailnet, name: str) -> int:
    with sqlite3.connect(net.control) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM nodes WHERE name = ?", (name,)).fetchone()[0])


def test_a_registration_whose_reply_was_lost_finishes_when_run_again(tailnet: Tailnet) -> None:
    net = tailnet
    net.ok("phone", "node", "register", "--name", "phone")
    state = net.root / "phone"
    node_key = net.node_key("phone")
    # As if killed after the service committed but before the node recorded its ID.
    config = json.loads((state / "node.json").read_text())
    config["NodeID"], config["StableID"] = 0, ""
    (state / "node.json").write_text(json.dumps(config))
    assert "did not finish" in net.fails("phone", "status")
    assert "unfinished registration as 'phone'" in net.fails(
        "phone", "node", "register", "--name", "tablet"
    )
    net.ok("phone", "node", "register", "--name", "phone")
    assert net.node_key("phone") == node_key and _nodes(net, "phone") == 1
    assert "already holds a registered node" in net.fails(
        "phone", "node", "register", "--name", "phone"
    )


def test_the_credential_is_private_and_required(tailnet: Tailnet) -> None:
    net = tailnet
    old = os.umask(0o022)
    try:
        net.ok("laptop", "node", "register", "--name", "laptop")
    finally:
        os.umask(old)
    state = net.root / "laptop"
    for name in ("node.key", "node.credential", "lock.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert (state / "node.credential").read_text().startswith("nodecred:")
    # The service keeps only a digest of it.
    secret = (state / "node.credential").read_text().strip().encode()
    for path in Path(net.control).parent.glob(Path(net.control).name + "*"):
        data = path.read_bytes()
        assert secret not in data and secret[len("nodecred:") :] not in data
    # Another node's credential does not let a node act as it.
    net.ok("tablet", "node", "register", "--name", "tablet")
    (net.root / "tablet" / "node.credential").write_text(secret.decode() + "\n")
    assert "not the node this credential belongs to" in net.fails("tablet", "status")


def test_leftovers_of_killed_runs_are_removed(tailnet: Tailnet) -> None:
    net = tailnet
    net.ok("laptop", "node", "register", "--name", "laptop")
    state = net.root / "laptop"
    stale = [
        state / "node.json.tmp0123456789ab",
        state / ".node.credential.tmpba9876543210",
    ]
    for path in stale:
        path.write_text("half")
    (state / "tka.deleting0badf00d").mkdir()
    (state / "tka.deleting0badf00d" / "x").write_text("x")
    keep = state / "notes.tmp"  # not a name our writers use: never touched
    keep.write_text("mine")
    net.ok("laptop", "status")
    assert not any(p.exists() for p in stale)
    assert not (state / "tka.deleting0badf00d").exists()
    assert keep.read_text() == "mine"
