"""The `tailnet` fixture: a fresh tailnet (see tailnet_harness.py) with a SoftHSM token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tailnet_harness import Tailnet


@pytest.fixture
def tailnet(tmp_path: Path, softhsm_token: object) -> Iterator[Tailnet]:
    env = softhsm_token.env()  # type: ignore[attr-defined]
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    yield Tailnet(tmp_path, str(tmp_path / "control.db"), env)
