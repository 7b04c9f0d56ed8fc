"""The restart policy (supervisor/restarts.py) with a fake clock and a fake sleep: intensity,
backoff, giving up on the connector, flapping helpers. Moved here from whole-stack tests
(test_supervisor_lifecycle's intensity test took ~20 s of process restarts)."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from supervisor import restarts
from supervisor.children import FAILED, RUNNING
from supervisor.childspec import SPECS
from tests.unit.supervisor.fakesup import FakeSup
from trader.kernel.protocol import COMMANDER, CONNECTOR, NOTIFIER


def sup(intensity: int = 2, period: float = 120.0, backoff_max: float = 30.0) -> FakeSup:
    return FakeSup(supervisor={"restart_intensity": intensity, "restart_period": period,
                               "restart_backoff_max": backoff_max})


def restart(s: FakeSup, name: str, why: str = "exited with signal 9") -> None:
    asyncio.run(restarts.restart(s, s.children[name], why))  # type: ignore[arg-type]


def flapping(s: FakeSup, name: str) -> float | None:
    return next((v for n, lbl, v in s.metrics.samples()
                 if n == "flatguard_process_flapping" and lbl == [["process", name]]), None)


def test_plan_backoff_doubles_to_the_cap_and_forgets_old_restarts() -> None:
    spec = SPECS[NOTIFIER]
    times: deque[float] = deque()
    delays = []
    for t in range(7):
        p = restarts.plan(spec, times, float(t), 100, 60.0, 10.0)
        delays.append(p.delay)
        times.append(float(t))
    assert delays == [1.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    p = restarts.plan(spec, times, 6.0 + 61.0, 100, 60.0, 10.0)  # all past the period
    assert not times and p.delay == 1.0


def test_plan_gives_up_only_where_the_spec_says_so() -> None:
    times = deque([0.0, 1.0])
    assert restarts.plan(SPECS[CONNECTOR], deque(times), 2.0, 2, 120.0, 30.0).give_up
    for name in (NOTIFIER, COMMANDER):
        p = restarts.plan(SPECS[name], deque(times), 2.0, 2, 120.0, 30.0)
        assert not p.give_up and p.flapping and p.delay == 2.0
    # the same two restarts, but one is older than the period: allowed again
    assert not restarts.plan(SPECS[CONNECTOR], deque(times), 120.5, 2, 120.0, 30.0).give_up


def test_connector_beyond_the_intensity_is_given_up_on_and_alerted() -> None:
    """restart_intensity = 2 in 120 s: two restarts (1 s, then 1 s backoff), the third exit is
    FAILED with 'connector keeps failing' (ctl info shows state "failed")."""
    s = sup()
    conn = s.run(CONNECTOR)
    for expect in (1.0, 1.0):
        s.die(CONNECTOR)
        restart(s, CONNECTOR)
        assert conn.state == RUNNING and s.slept[-1] == expect
        s.clock.advance(5.0)  # up again for a while
    s.die(CONNECTOR)
    restart(s, CONNECTOR)
    assert conn.state == FAILED and conn.restarts == 2 and s.spawned == [CONNECTOR] * 2
    assert conn.summary(1.0)["state"] == "failed"
    level, title, text, _ = s.alerts[-1]
    assert (level, title) == ("critical", "connector keeps failing")
    assert "more than 2 restarts in 120 s: giving up on it" in text
    assert s.titles().count("connector restarting") == 2


def test_helpers_restart_forever_and_are_reported_flapping_once() -> None:
    s = sup(backoff_max=4.0)
    for name in (NOTIFIER, COMMANDER):
        ch = s.run(name)
        for _ in range(6):
            s.die(name)
            restart(s, name)
            assert ch.state == RUNNING
        assert ch.restarts == 6 and max(s.slept) == 4.0  # capped backoff
        assert name in s.flapping and flapping(s, name) == 1.0
    titles = s.titles()
    assert "commander flapping" in titles  # said once per episode ...
    assert titles.count("commander flapping") == 1
    assert "notifier flapping" not in titles  # ... never through the notifier itself


def test_flapping_ends_once_restarts_are_rare_again() -> None:
    s = sup(intensity=1, period=10.0)
    s.run(COMMANDER)
    for _ in range(2):
        s.die(COMMANDER)
        restart(s, COMMANDER)
    assert COMMANDER in s.flapping
    s.clock.advance(11.0)
    s.die(COMMANDER)
    restart(s, COMMANDER)
    assert COMMANDER not in s.flapping and flapping(s, COMMANDER) == 0.0


def test_no_restart_once_an_orderly_stop_began_during_the_backoff() -> None:
    s = sup()
    ch = s.run(NOTIFIER)
    s.die(NOTIFIER)

    async def stop_during_sleep(sec: float) -> None:
        s.shutting_down = True

    s.sleep = stop_during_sleep  # type: ignore[method-assign]
    restart(s, NOTIFIER)
    assert s.spawned == [] and ch.restarts == 0


@pytest.mark.parametrize("name", [NOTIFIER, COMMANDER, CONNECTOR])
def test_restart_later_says_restarting_at_once(name: str) -> None:
    s = sup()
    ch = s.run(name)

    async def go() -> str:
        restarts.restart_later(s, ch, "hung")  # type: ignore[arg-type]
        return ch.state

    assert asyncio.run(go()) == "restarting"
