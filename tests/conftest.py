"""Shared fixtures: every process a test starts is reaped by pid, whatever the test's outcome."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack import Sim, Stack
from trader.sim.testing import SimHarness


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = Sim()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    """Append Stack objects; each is closed (and its processes reaped) at teardown."""
    made: list[Stack] = []
    try:
        yield made
    finally:
        for st in made:
            st.close()


@pytest.fixture
def h() -> Iterator[SimHarness]:
    """An in-process simulated exchange on its own event loop thread (see trader/sim/testing)."""
    harness = SimHarness()
    try:
        yield harness
    finally:
        harness.close()
