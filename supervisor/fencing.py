"""Fences: nothing may re-open what the kill path is closing.

Two steps, in this order. The trader's process group is SIGKILLed and reaped (it can decide
nothing more). Then the connector, the only process that signs orders for the trader, is told to
``fence``: it drops queued and retried creates, refuses later ones, and confirms with the wall
time it did so. A connector that does not confirm within ``killswitch.fence_timeout`` is SIGKILLed
(and restarted by the normal policy: the kill path does not need it, ``resume`` does).

What comes out is the in-flight bound: an order signed before the fence can still take effect on
the exchange until its timestamp + its ``recvWindow`` (``exchange.recv_window``), and our clock
may be behind the exchange's by the measured offset. A verified flat needs a read after it.

The connector is asked through the port's ``ask_connector`` and the wall clock is the port's, so
the bound is computed in-process in tests (tests/unit/supervisor/test_fencing.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from trader.kernel import bus
from trader.kernel.protocol import CONNECTOR, TRADER

if TYPE_CHECKING:
    from supervisor.ports import FencePort

log = logging.getLogger("flatguard")

TRADER_EXIT_WAIT = 5.0


async def fence_trader(sup: FencePort) -> None:
    trader = sup.children.get(TRADER)
    if trader is None or trader.pid is None:
        return
    trader.expected_exit = True
    trader.kill_group()
    await trader.wait_exit(TRADER_EXIT_WAIT)


def clock_slack(sup: FencePort) -> float:
    """How far the exchange's clock may be ahead of ours, in s (the kill path measures it)."""
    fl = sup.flattener
    if fl is None:
        return 1.0
    try:
        return abs(float(fl.ex.options.get("timeDifference") or 0)) / 1000.0
    except (TypeError, ValueError, AttributeError):
        return 1.0


async def fence_orders(sup: FencePort, reason: str) -> float:
    """Fence the connector's order flow; return the wall time until which an order signed
    before the fence may still land."""
    window = sup.cfg.exchange.recv_window / 1000.0
    slack = clock_slack(sup)
    conn = sup.children.get(CONNECTOR)
    if conn is None or conn.pid is None:
        # Nothing alive signs for the trader; one that died just now may have signed until now.
        return sup.wall() + window + slack
    timeout = sup.cfg.killswitch.fence_timeout
    try:
        r = await sup.ask_connector("fence", {"reason": reason[:200]}, timeout)
        fenced_at = float(r.get("fenced_at") or sup.wall())
        if "inflight_until" in r:
            # The connector knows which of the trader's orders went out without a definite
            # answer; none: nothing signed before the fence can land after it.
            until = float(r["inflight_until"] or 0.0)
            if until <= 0:
                log.warning("fence: connector confirmed; no order of the trader in flight")
                return fenced_at
            log.warning("fence: connector confirmed; an order in flight may land for %.1f s",
                        until + slack - sup.wall())
            return until + slack
        window = max(window, float(r.get("recv_window_ms") or 0) / 1000.0)
        log.warning("fence: connector confirmed at %.3f; orders in flight may land for %.1f s",
                    fenced_at, window + slack)
        return fenced_at + window + slack
    except (bus.RequestError, TypeError, ValueError) as e:
        log.error("fence: the connector did not confirm within %g s (%s): SIGKILL", timeout, e)
        conn.expected_exit = True
        conn.kill_group()
        await conn.wait_exit(TRADER_EXIT_WAIT)
        sup.restart_later(conn, "killed by the fence (it did not confirm)")
        return sup.wall() + window + slack


async def unfence(sup: FencePort) -> None:
    """``resume``: the connector serves a new trader again (a restarted one never was fenced)."""
    conn = sup.children.get(CONNECTOR)
    if conn is None or conn.pid is None:
        return
    try:
        await sup.ask_connector("unfence", {}, 5.0)
    except bus.RequestError as e:
        # An old connector without the op, or one that is gone: restart it rather than hand a
        # new trader a connector that refuses its orders.
        log.warning("unfence failed (%s): restarting the connector", e)
        conn.expected_exit = True
        conn.kill_group()
        await conn.wait_exit(TRADER_EXIT_WAIT)
        sup.restart_later(conn, "restarted to serve the resumed trader")


async def disarm_dms(sup: FencePort) -> bool:
    """Ask the connector to disarm the exchange's dead-man switch (after a verified flat)."""
    conn = sup.children.get(CONNECTOR)
    if conn is None or conn.pid is None:
        return False
    try:
        await sup.ask_connector("dms.disarm", {}, 10.0)
        return True
    except bus.RequestError as e:
        log.warning("dead-man switch disarm failed (%s): it stays armed and fires on the "
                    "exchange after exchange.dms_timeout (harmless: it only cancels orders)", e)
        return False
