"""The orderly stop's modes (supervisor/lifecycle.py's ``orderly_stop``), in-process: the real
Supervisor, KillSwitch, Flattener and journal against the in-process simulated exchange; no child
processes (the connector's fence answers "nothing in flight"). That a real stack's SIGTERM, SIGHUP
and ``leave`` stop reach this path is tests/integration/test_supervisor_lifecycle.py's."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.app import Supervisor
from supervisor.killswitch import KillSwitch
from supervisor.lifecycle import orderly_stop
from tests.sim_harness import SimHarness
from tests.unit.supervisor.test_flatten_unit import ctl, flattener, sim_positions
from trader.kernel import config
from trader.kernel.journal import Journal

pytestmark = pytest.mark.usefixtures("no_order_in_flight")






def exposure(h: SimHarness) -> None:
    ctl(h, "position", symbol="BTCUSDT", amount="0.01")
    ctl(h, "order", symbol="ETHUSDT", side="BUY", type="LIMIT", quantity="0.05", price="1000",
        timeInForce="GTC")


def open_orders(h: SimHarness) -> list[Any]:
    return h.run(h.control.state())["open_orders"]


def stop(h: SimHarness, journal: Journal, mode: str) -> Supervisor:
    sup = Supervisor(config.from_mapping({"supervisor": {"shutdown": mode,
                                                         "shutdown_timeout": 10}}),
                     None)  # type: ignore[arg-type]
    f = flattener(h)

    async def fence() -> None:
        return None

    sup.journal, sup.flattener = journal, f
    sup.killswitch = KillSwitch(journal, f, 0.1, sup.alert, sup.metrics, fence)
    try:
        sup.request_stop()
        sup.ending = None
        code = h.run(orderly_stop(sup))
        assert sup.ending is not None and sup.ending.code == code
    finally:
        sup.ctx.destroy(0)
        h.run(f.close())
    return sup


def test_flatten_takes_the_account_flat_and_exits_0(h: SimHarness, journal: Journal) -> None:
    exposure(h)
    sup = stop(h, journal, "flatten")
    assert sup.ending is not None and sup.ending.code == 0
    assert sup.ending.text == "account verified flat on the exchange"
    assert not sim_positions(h) and not open_orders(h)
    assert not journal.halt_state().halted


def test_cancel_cancels_orders_and_keeps_positions(h: SimHarness, journal: Journal) -> None:
    exposure(h)
    sup = stop(h, journal, "cancel")
    assert sup.ending is not None and sup.ending.code == 0
    # (the cancel-only round reads no positions, so the ending says "positions left: none seen")
    assert sup.ending.text.startswith("no open orders, verified on the exchange")
    assert sim_positions(h) and not open_orders(h)
    assert not journal.halt_state().halted


def test_leave_touches_nothing(h: SimHarness, journal: Journal) -> None:
    exposure(h)
    before = h.run(h.control.state())["orders_received"]
    sup = stop(h, journal, "leave")
    assert sup.ending is not None and (sup.ending.code, sup.ending.kind) == (0, "left")
    assert sim_positions(h) and open_orders(h)
    assert h.run(h.control.state())["orders_received"] == before
