"""Unit tests of the trader's inventory and order manager (pure logic; no processes).

The order manager's connection to the connector is replaced by a recording stub: these are
unit tests of the manager's bookkeeping, the real request path is covered by the stack tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from trader.engine.inventory import FILL_GRACE, Inventory
from trader.engine.orders import PENDING_EXPIRY, OrderManager
from trader.engine.risk import CHECKS, RiskEngine
from trader.engine.risk.view import OpenOrder
from trader.engine.strategy import MarketData
from trader.kernel import bus
from trader.kernel.config import RiskConfig
from trader.kernel.metrics import METRICS
from trader.kernel.protocol import RUNNING

BTC = "BTC/USDT:USDT"
T = 1_700_000_000.0


def snap(pos: float = 0.0, entry: float = 100.0, **kw: Any) -> dict[str, Any]:
    rows = [{"symbol": BTC, "contracts": pos, "entry_price": entry}] if pos else []
    return {"equity": 10_000.0, "balance": 10_000.0, "positions": rows, "open_orders": [],
            "fresh": T, **kw}


# --- inventory ----------------------------------------------------------------------------------


def test_fill_before_the_snapshot_that_holds_it_counts_once() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T)
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1", now=T)
    assert inv.contracts(BTC) == 1.0
    inv.apply_account(snap(0.0), now=T + 0.1)  # published before the position update
    assert inv.contracts(BTC) == 1.0
    inv.apply_account(snap(1.0), now=T + 0.2)  # holds the fill
    assert inv.contracts(BTC) == 1.0
    inv.apply_account(snap(1.0), now=T + 1.2)
    assert inv.contracts(BTC) == 1.0


def test_snapshot_before_the_fill_event_counts_once() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T)
    inv.apply_account(snap(1.0), now=T + 0.1)  # position update first
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1", now=T + 0.2)  # then the fill event
    assert inv.contracts(BTC) == 1.0
    inv.apply_account(snap(1.0), now=T + 1.0)
    assert inv.contracts(BTC) == 1.0
    inv.apply_fill(BTC, "buy", 0.5, 100.0, "t2", now=T + 1.1)  # a new fill moves it again
    assert inv.contracts(BTC) == 1.5


def test_partly_included_fills_reapply_the_rest() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T)
    for i, amt in enumerate((1.0, 2.0, 4.0)):
        inv.apply_fill(BTC, "buy", amt, 100.0, f"t{i}", now=T)
    inv.apply_account(snap(3.0), now=T + 0.1)  # holds the first two
    assert inv.contracts(BTC) == 7.0
    inv.apply_account(snap(7.0), now=T + 0.2)
    assert inv.contracts(BTC) == 7.0


def test_unexplained_snapshot_wins_and_old_fills_expire() -> None:
    inv = Inventory()
    inv.apply_account(snap(0.0), now=T)
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1", now=T)
    inv.apply_account(snap(5.0), now=T + 0.1)  # a REST correction: the exchange says 5
    assert inv.contracts(BTC) == 5.0
    inv2 = Inventory()
    inv2.apply_account(snap(0.0), now=T)
    inv2.apply_fill(BTC, "sell", 1.0, 100.0, "t1", now=T)
    inv2.apply_account(snap(0.0), now=T + FILL_GRACE + 1)  # never shown: the exchange wins
    assert inv2.contracts(BTC) == 0.0


def test_duplicate_fill_events_are_ignored() -> None:
    inv = Inventory()
    assert inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1")
    assert not inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1")
    assert inv.contracts(BTC) == 1.0


def test_entry_price_adds_reduces_and_flips() -> None:
    inv = Inventory()
    inv.apply_fill(BTC, "buy", 1.0, 100.0, "a")
    inv.apply_fill(BTC, "buy", 1.0, 110.0, "b")
    assert inv.contracts(BTC) == 2.0 and inv.entry_price(BTC) == pytest.approx(105.0)
    inv.apply_fill(BTC, "sell", 0.5, 120.0, "c")  # reducing keeps the entry
    assert inv.contracts(BTC) == 1.5 and inv.entry_price(BTC) == pytest.approx(105.0)
    inv.apply_fill(BTC, "sell", 2.5, 90.0, "d")  # through zero: the rest opens at 90
    assert inv.contracts(BTC) == pytest.approx(-1.0) and inv.entry_price(BTC) == 90.0
    inv.apply_fill(BTC, "sell", 1.0, 80.0, "e")  # adding to a short
    assert inv.contracts(BTC) == pytest.approx(-2.0) and inv.entry_price(BTC) == pytest.approx(85.0)
    inv.apply_fill(BTC, "buy", 2.0, 70.0, "f")  # exactly flat: no position left
    assert inv.contracts(BTC) == 0.0 and BTC not in inv.positions
    assert inv.position_rows() == []


def test_snapshot_fields_reach_the_view() -> None:
    inv = Inventory()
    own = ("fgX-1",)
    inv.apply_account(snap(2.0, equity=9_000.0, margin_ratio=0.3, fresh=T + 5, open_orders=[
        {"client_id": "fgX-1", "id": "1", "symbol": BTC, "side": "buy", "amount": 1.0,
         "filled": 0.0, "price": 99.0, "reduce_only": False},
        {"client_id": "", "id": "2", "symbol": BTC, "side": "sell", "amount": 3.0,
         "filled": 1.0, "price": 101.0, "reduce_only": True}]), now=T)
    inv.apply_md(MarketData(BTC, 100.0, 99.9, 100.1, T - 30.0), now=T + 6)  # exchange clock late
    v = inv.view((OpenOrder(own[0], BTC, "buy", 1.0, 99.0),))
    assert v.equity == 9_000.0 and v.margin_ratio == 0.3 and v.confirmed == T + 5
    assert v.marks[BTC].ts == T + 6  # staleness by our receive time, not the exchange's clock
    adopted = [o for o in v.open_orders if o.client_id == "2"]
    assert len(v.open_orders) == 2 and adopted[0].remaining == 2.0 and adopted[0].reduce_only
    assert inv.adopted_ids() == {"fgX-1", "2"}


# --- order manager ------------------------------------------------------------------------------


class StubConn:
    """Records requests; answers ``order.create`` with ``reply`` (or raises it)."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.reply = reply
        self.block = asyncio.Event()

    async def request(self, op: str, args: dict[str, Any], timeout: float = 0.0) -> Any:
        self.calls.append((op, args))
        if self.reply is None:
            await self.block.wait()  # no answer yet: the order stays pending
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def manager(conn: StubConn, **risk: Any) -> tuple[OrderManager, Inventory, RiskEngine]:
    cfg = RiskConfig(**{"max_position_notional": 250.0, "max_order_notional": 1000.0,
                        "max_orders_per_second": 100, **risk})
    r = RiskEngine(cfg, (BTC,))
    r.set_trading_state(RUNNING)
    inv = Inventory()
    inv.apply_account(snap(0.0, fresh=9e18))
    inv.apply_md(MarketData(BTC, 100.0, 99.9, 100.1, 0.0))
    om = OrderManager(conn, r, lambda: inv.view(om.open_orders()))  # type: ignore[arg-type]
    return om, inv, r


def rejected(check: str) -> float:
    return dict(((n, tuple(map(tuple, lbl))), v) for n, lbl, v in METRICS.samples()).get(
        ("flatguard_risk_rejections_total", (("check", check),)), 0.0)


def test_client_ids_are_unique_within_and_across_managers() -> None:
    async def go() -> list[str]:
        ids = []
        for _ in range(2):
            om, _, _ = manager(StubConn({"status": "open"}), max_position_notional=1e9,
                               max_gross_exposure=1e9, max_leverage=1e6,
                               max_orders_per_second=10_000, max_orders_per_minute=10_000)
            for i in range(200):
                cid = om.submit(BTC, "buy" if i % 2 else "sell", 0.01, None, False)
                assert cid is not None and len(cid) <= 36
                ids.append(cid)
        await asyncio.sleep(0)
        return ids
    ids = asyncio.run(go())
    assert len(set(ids)) == len(ids) == 400


def test_every_check_label_is_registered_and_rejections_are_counted() -> None:
    async def go() -> None:
        om, _, r = manager(StubConn({"status": "open"}))
        labels = {tuple(map(tuple, lbl)) for n, lbl, _ in METRICS.samples()
                  if n == "flatguard_risk_rejections_total"}
        assert {(("check", c),) for c in CHECKS} <= labels  # on /metrics from the start
        before = {c: rejected(c) for c in CHECKS}
        assert om.submit(BTC, "buy", -1.0, None, False) is None  # malformed
        assert om.submit(BTC, "hold", 1.0, None, False) is None
        om.connector_ok = False
        assert om.submit(BTC, "buy", 1.0, None, False) is None
        om.connector_ok = True
        r.set_trading_state("PAUSED")
        assert om.submit(BTC, "buy", 1.0, None, False) is None
        r.set_trading_state(RUNNING)
        assert om.submit(BTC, "buy", 5.0, None, False) is None  # 500 > 250
        assert om.rejections == 5
        assert dict(om.rejected_by) == {"invalid": 2, "connector_down": 1, "state": 1,
                                        "position_notional": 1}
        for c, n in om.rejected_by.items():
            assert c in CHECKS and rejected(c) - before[c] == n
    asyncio.run(go())


def test_pending_orders_count_as_open_until_done() -> None:
    async def go() -> None:
        conn = StubConn(None)  # the connector has not answered yet
        om, inv, _ = manager(conn)
        a = om.submit(BTC, "buy", 1.5, None, False)
        assert a is not None
        await asyncio.sleep(0)
        (o,) = om.open_orders()
        assert o.client_id == a and o.remaining == 1.5 and om.orders[a].status == "pending"
        # 150 pending + 150 more would be 300 > 250: the pending order counts
        assert om.submit(BTC, "buy", 1.5, None, False) is None
        assert om.rejected_by["position_notional"] == 1
        assert om.submit(BTC, "buy", 1.0, None, False) is not None  # 250: at the cap
        # a fill moves the position and takes the same amount off the order
        inv.apply_fill(BTC, "buy", 1.0, 100.0, "t1")
        assert om.on_fill(a, 1.0)
        assert [x.remaining for x in om.open_orders() if x.client_id == a] == [0.5]
        assert om.submit(BTC, "buy", 0.1, None, False) is None  # still 250 at worst
        om.on_order({"client_id": a, "status": "canceled", "filled": 1.0})
        assert a not in {x.client_id for x in om.open_orders()}
        assert not om.on_fill("not-ours", 1.0)
        conn.reply = {"status": "open"}
        conn.block.set()
    asyncio.run(go())


def test_refused_send_is_done_and_silent_pending_expires() -> None:
    async def go() -> None:
        om, _, _ = manager(StubConn(bus.RequestError("rejected", "-2019 margin insufficient")))
        a = om.submit(BTC, "buy", 1.0, None, False)
        await asyncio.sleep(0.01)
        assert om.orders[a].status == "rejected" and not om.open_orders()

        om2, _, _ = manager(StubConn(bus.RequestError("timeout", "no reply")))
        b = om2.submit(BTC, "buy", 1.0, None, False)
        c = om2.submit(BTC, "buy", 1.0, None, False)
        await asyncio.sleep(0.01)
        assert om2.orders[b].status == "pending"  # a timeout is unknown: it may be placed
        for cid in (b, c):
            om2.orders[cid].news_at -= PENDING_EXPIRY + 1
        om2.prune(known_open={c})  # c is open on the exchange, b was never placed
        assert om2.orders[b].status == "expired" and om2.orders[c].status == "pending"
        assert [o.client_id for o in om2.open_orders()] == [c]
    asyncio.run(go())
