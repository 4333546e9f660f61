"""Fixtures for tests against real tailscaled nodes (realnet_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from realnet_harness import AUTH_KEY, RealTailnet


@pytest.fixture
def real_tailnet(tmp_path: Path) -> Iterator[RealTailnet]:
    """A control server that admits nodes presenting AUTH_KEY (the unwrapped part of a
    wrapped key counts), with no node yet. Its processes stop when the test ends; its logs
    and state stay in tmp_path (pytest keeps the last few runs' directories)."""
    with RealTailnet(tmp_path / "realnet", require_auth_key=AUTH_KEY, cleanup=False) as net:
        yield net
