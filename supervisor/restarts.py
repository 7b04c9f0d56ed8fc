"""The supervisor's restart policy for the connector, notifier and commander.

Beyond ``restart_intensity`` restarts in ``restart_period`` the connector is given up on
(FAILED: the connector-down rule then runs the kill switch, nothing trades without it). The
notifier and commander are never given up on: trading goes on, so the alert and command paths
must come back. They restart forever with backoff (at most ``restart_backoff_max``) and are
reported as flapping where no notifier is needed: stderr, the journal and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING

from supervisor.children import FAILED, RESTARTING, Child
from trader.kernel.protocol import COMMANDER, NOTIFIER

if TYPE_CHECKING:
    from supervisor.app import Supervisor

log = logging.getLogger("flatguard")

HELPERS = (NOTIFIER, COMMANDER)  # restarted forever


def restart_later(sup: Supervisor, ch: Child, why: str) -> None:
    ch.state = RESTARTING  # now, not when the task runs: nobody may see it as given up
    asyncio.get_running_loop().create_task(_restart(sup, ch, why))


async def _restart(sup: Supervisor, ch: Child, why: str) -> None:
    sc = sup.cfg.supervisor
    if not ch.allow_restart(sc.restart_intensity, sc.restart_period):
        if ch.name not in HELPERS:
            ch.state = FAILED
            sup.alert("critical", f"{ch.name} keeps failing",
                      f"{ch.name} {why}; more than {sc.restart_intensity} restarts in "
                      f"{sc.restart_period:g} s: giving up on it")
            return
        _flapping(sup, ch, why)
    elif ch.name in sup.flapping:
        sup.flapping.discard(ch.name)
        sup.metrics.set("flatguard_process_flapping", 0.0, process=ch.name)
        log.warning("process=%s no longer flapping", ch.name)
    ch.state = RESTARTING
    delay = ch.backoff(sc.restart_backoff_max)
    ch.restart_times.append(time.monotonic())
    sup.alert("warning", f"{ch.name} restarting", f"{ch.name} {why}; restart in {delay:g} s")
    await asyncio.sleep(delay)
    if sup.shutting_down:
        return
    ch.restarts += 1
    ch.spawn()


def _flapping(sup: Supervisor, ch: Child, why: str) -> None:
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
    if ch.name != NOTIFIER:
        sup.alert("critical", f"{ch.name} flapping", text, key=f"flapping-{ch.name}")
