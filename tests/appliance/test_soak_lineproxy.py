"""The soak: 1000 requests through bench/lineproxy.py, which corrupts 1 % of the bytes in both
directions and drops the line at random (up to 60 times a minute, up to 0.6 s each, a second
apart at least). No signature may be wrong, no wait may exceed the host's limit, no request may
fail; the counts are printed (pytest -s) and attached to the test report.
`bench/soak_appliance.py` runs the long version (10,000 requests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak_appliance import run

REQUESTS = 1000


def test_soak_through_a_bad_line(stub_built: Path, tmp_path: Path, data_home: Path,
                                 record_property: pytest.RecordProperty) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    result = run(tmp_path, REQUESTS, corrupt=0.01, drops_per_minute=60.0, seed=seed,
                 drop_max=0.6)
    report = result.report()
    print(f"\nsoak seed {seed}\n{report}")
    record_property("soak", report)
    assert result.requests == REQUESTS
    assert result.wrong_signatures == 0, report
    assert result.waits_over_limit == 0, report
    assert result.error_count == 0, report
    assert result.signatures >= REQUESTS // 2
    # The line really was bad, both ways, and the link had to work for it.
    assert result.proxy is not None
    assert result.proxy.to_device.corrupted > 0 and result.proxy.to_host.corrupted > 0
    assert result.retransmissions > 0 and result.bad_frames > 0
    assert result.proxy.outages > 0
