"""The supervisor's restart policy for the connector, notifier and commander.

Beyond ``restart_intensity`` restarts in ``restart_period`` a child whose spec gives up
(the connector: ``OnExit.RESTART_THEN_GIVE_UP``) is FAILED: the connector-down rule then runs the
kill switch, nothing trades without it. The notifier and commander are never given up on
(``RESTART_FOREVER``): trading goes on, so the alert and command paths must come back. They
restart forever with backoff (at most ``restart_backoff_max``) and are reported as flapping where
no notifier is needed: stderr, the journal and /metrics.

The decision (``plan``) is pure, from the restart times and ``now``; the clock and the sleep are
the port's, so the policy is tested in-process with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor.children import FAILED, RESTARTING, Child
from supervisor.childspec import SPECS, ChildSpec, OnExit

if TYPE_CHECKING:
    from supervisor.ports import RestartPort

log = logging.getLogger("flatguard")


@dataclass(frozen=True)
class Plan:
    give_up: bool  # FAILED: too many restarts, and the spec gives up
    flapping: bool  # too many restarts, restarted anyway (RESTART_FOREVER)
    delay: float  # s before the restart


def plan(spec: ChildSpec, times: deque[float], now: float, intensity: int, period: float,
         backoff_max: float) -> Plan:
    """Restarts older than ``period`` are forgotten (``times`` is pruned in place); the delay
    is 1 s doubling to ``backoff_max`` by the restarts still remembered."""
    while times and now - times[0] > period:
        times.popleft()
    over = len(times) >= intensity
    if over and spec.on_exit is OnExit.RESTART_THEN_GIVE_UP:
        return Plan(True, False, 0.0)
    return Plan(False, over, min(backoff_max, 2.0 ** max(0, len(times) - 1)))


def restart_later(sup: RestartPort, ch: Child, why: str) -> None:
    ch.state = RESTARTING  # now, not when the task runs: nobody may see it as given up
    asyncio.get_running_loop().create_task(restart(sup, ch, why))


async def restart(sup: RestartPort, ch: Child, why: str) -> None:
    """Give up, or restart after the backoff (flapping said once per episode)."""
    sc = sup.cfg.supervisor
    p = plan(SPECS[ch.name], ch.restart_times, sup.clock(), sc.restart_intensity,
             sc.restart_period, sc.restart_backoff_max)
    if p.give_up:
        ch.state = FAILED
        sup.alert("critical", f"{ch.name} keeps failing",
                  f"{ch.name} {why}; more than {sc.restart_intensity} restarts in "
                  f"{sc.restart_period:g} s: giving up on it")
        return
    if p.flapping:
        _flapping(sup, ch, why)
    elif ch.name in sup.flapping:
        sup.flapping.discard(ch.name)
        sup.metrics.set("flatguard_process_flapping", 0.0, process=ch.name)
        log.warning("process=%s no longer flapping", ch.name)
    ch.state = RESTARTING
    ch.restart_times.append(sup.clock())
    sup.alert("warning", f"{ch.name} restarting", f"{ch.name} {why}; restart in {p.delay:g} s")
    await sup.sleep(p.delay)
    if sup.shutting_down:
        return
    ch.restarts += 1
    ch.spawn()


def _flapping(sup: RestartPort, ch: Child, why: str) -> None:
    """A helper (notifier, commander) restarting too often is never given up on: the alert
    path must come back. Said where no notifier is needed: stderr, the journal, /metrics."""
    sc = sup.cfg.supervisor
    sup.metrics.set("flatguard_process_flapping", 1.0, process=ch.name)
    if ch.name in sup.flapping:
        return
    sup.flapping.add(ch.name)
    text = (f"process {ch.name} is flapping: {why}; more than {sc.restart_intensity} "
            f"restarts in {sc.restart_period:g} s. Restarting it forever with backoff "
            f"(max {sc.restart_backoff_max:g} s); alerts may not reach you meanwhile.")
    print(f"flatguard supervisor CRITICAL: {text}", file=sys.stderr, flush=True)
    log.critical("event=process_flapping process=%s why=%r", ch.name, why)
    try:
        assert sup.journal is not None
        sup.journal.audit("supervisor", "supervisor", "flapping", {"process": ch.name},
                          text, False)
    except Exception as e:  # noqa: BLE001
        log.error("journal write failed (flapping): %s", e)
    if not SPECS[ch.name].carries_alerts:  # the notifier cannot carry news of itself
        sup.alert("critical", f"{ch.name} flapping", text, key=f"flapping-{ch.name}")
