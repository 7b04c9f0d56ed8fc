"""Fixtures the supervisor's in-process tests share."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import short_dir
from trader.kernel.journal import Journal


@pytest.fixture
def journal() -> Iterator[Journal]:
    """A real journal in its own directory, removed afterwards."""
    d = short_dir()
    j = Journal(d / "journal.db")
    try:
        yield j
    finally:
        try:
            j.close()
        except Exception:  # noqa: BLE001 - a test may have closed it on purpose
            pass
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def no_order_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector's fence answer when none of the trader's orders is in flight."""
    async def fence_orders(sup: Any, reason: str) -> float:
        return 0.0

    monkeypatch.setattr("supervisor.fencing.fence_orders", fence_orders)
