"""`tka` killed with SIGKILL at random moments of init, node register, add, sign and sync leaves
no corrupt store, no lost secret and no stuck node (bench/kill_sweep.py; a few rounds here, the
figures in docs/design.md from the full run)."""

from __future__ import annotations

from pathlib import Path

from bench.kill_sweep import OPS, sweep


def test_kills_leave_nothing_corrupt_lost_or_stuck(tmp_path: Path) -> None:
    lines: list[str] = []
    tallies = sweep(tmp_path, list(OPS), rounds=6, seed=20261202, report=lines.append)
    for op, tally in tallies.items():
        assert tally.rounds == 6
        assert tally.problems == [], f"{op}: {tally.problems}"
    # The sweep is only worth something if it kills commands mid-way, some after they wrote.
    # (Bounds kept low: run times vary with the machine's load, and the window adapts.)
    assert sum(t.killed for t in tallies.values()) >= 12, lines
    assert sum(t.traces for t in tallies.values()) >= 2, lines
