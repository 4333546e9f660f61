"""Smaller runs of the figures in bench/ (control_load.py, hostile_http.py), so CI checks the
properties they measure: under concurrent load nothing is dropped or refused; under the hostile
set every connection gets an HTTP answer and the database does not change."""

from __future__ import annotations

from pathlib import Path

from bench.control_load import run_load
from bench.hostile_http import run_hostile


def test_concurrent_load_drops_nothing(tmp_path: Path) -> None:
    result = run_load(tmp_path, clients=6, requests=25, workers=2)
    assert result.ok, result.report()
    assert len(result.latencies) == 150


def test_the_hostile_set_is_answered_and_changes_nothing(tmp_path: Path) -> None:
    result = run_hostile(tmp_path, rounds=1, read_timeout=0.5, max_connections=16, burst=200)
    assert result.ok, result.report()
    assert result.by_kind["stalled"] == {408: 5}
    burst = [c for kind, c in result.by_kind.items() if kind.endswith("(burst)")]
    assert any(503 in counts for counts in burst)  # the burst met a full server
    assert result.connections > 500
