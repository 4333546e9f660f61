"""Session fixture: one Go oracle process (tailscale.com/tka) for the whole interop suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tka_oracle import Oracle, build


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    build()
    o = Oracle()
    try:
        yield o
    finally:
        o.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything in this directory talks to the Go reference.
    for item in items:
        if "tests/interop/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.interop)
