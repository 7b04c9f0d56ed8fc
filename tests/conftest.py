"""Shared fixtures: every process a test starts is reaped by pid, whatever the test's outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.sim_harness import SimHarness
from tests.stack import Sim, Stack


def _sim_bugs(state: Callable[[], dict]) -> int:
    """The simulator's own bug count (-1000 answers): no test may pass over a sim bug."""
    try:
        return int(state().get("bugs", 0))
    except Exception:  # noqa: BLE001 - a sim the test stopped on purpose has nothing to say
        return 0


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = Sim()
    try:
        yield s
        bugs = _sim_bugs(s.state)
    finally:
        s.close()
    assert bugs == 0, f"the simulator answered -1000 (a sim bug) {bugs} time(s): see its log"


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
    """An in-process simulated exchange on its own event loop thread (see tests/sim_harness.py)."""
    harness = SimHarness()
    try:
        yield harness
        bugs = _sim_bugs(lambda: harness.run(harness.control.state()))
    finally:
        harness.close()
    assert bugs == 0, f"the simulator answered -1000 (a sim bug) {bugs} time(s): see its log"
