"""Numbers at the boundary: NaN, infinite, empty or non-positive values from the exchange.

Crafted ccxt-shaped rows for the converters and the feed boundary; the real ccxt against the
sim's ``/_sim/garbage`` (in-process for the guard, a real connector process for what leaves it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.connector_harness import ConnectorProc, wait_for
from tests.sim_harness import SimHarness
from trader.connector.boundary import Boundary
from trader.connector.feedsink import FeedSink
from trader.exchange import errors as E
from trader.exchange.calls import Guard, install_recorder
from trader.exchange.clock import ExchangeClock
from trader.exchange.numbers import BadExchangeData
from trader.exchange.ratelimit import RateLimits
from trader.exchange.reconcile import (
    Account,
    balance_of,
    margin_ratio_of,
    order_row,
    position_row,
    rest_state,
)
from trader.exchange.venues.binanceusdm import RULES
from trader.kernel import wire
from trader.kernel.bus import RequestError
from trader.kernel.metrics import METRICS

BTC = "BTC/USDT:USDT"
NAN, INF = float("nan"), float("inf")


def bad_count(field: str) -> float:
    return sum(v for n, lbl, v in METRICS.samples()
               if n == "flatguard_exchange_bad_numbers_total" and ["field", field] in lbl)


def pos(amt: Any = "0.02", **kw: Any) -> dict[str, Any]:
    return {"symbol": BTC, "contracts": 0.02, "side": "long", "entryPrice": 60000.0,
            "markPrice": 60100.0, "unrealizedPnl": 2.0,
            "info": {"positionAmt": amt, "entryPrice": "60000", "markPrice": "60100"}, **kw}


def bal(**info: Any) -> dict[str, Any]:
    return {"total": {"USDT": 1000.0}, "info": {"totalWalletBalance": "1000",
                                                "totalMarginBalance": "1002",
                                                "totalMaintMargin": "5", **info}}


def order(**kw: Any) -> dict[str, Any]:
    return {"id": "1", "clientOrderId": "c1", "symbol": BTC, "side": "buy", "type": "limit",
            "price": 50000.0, "amount": 0.01, "filled": 0.0, "status": "open", "average": None,
            "info": {}, **kw}


@pytest.mark.parametrize("row", [
    pos("NaN"), pos("Infinity"), pos(""), pos(contracts=NAN), pos(entryPrice=INF),
    pos(markPrice=-5.0), pos(unrealizedPnl=NAN),
])
def test_position_rows_refuse_what_cannot_be_true(row: dict[str, Any]) -> None:
    with pytest.raises(BadExchangeData):
        position_row(row)


def test_nan_contracts_are_never_flat() -> None:
    n = bad_count("contracts")
    with pytest.raises(BadExchangeData) as ei:
        rest_state([pos("NaN")], [], bal())  # NaN > EPS is False: once it was dropped as flat
    assert ei.value.kind == "bad_data" and bad_count("contracts") == n + 1
    flat = position_row(pos("0", contracts=0.0, entryPrice=0.0, markPrice=None,
                            info={"positionAmt": "0", "entryPrice": "0", "markPrice": "0"}))
    assert flat["side"] == "flat" and flat["entry_price"] == 0.0


def test_orders_and_balances() -> None:
    assert order_row(order(type="market", price=0.0))["price"] is None  # a market order's 0
    for o in (order(price=INF), order(amount=NAN), order(filled=-1.0), order(average=NAN)):
        with pytest.raises(BadExchangeData):
            order_row(o)
    assert balance_of(bal()) == (1000.0, 1002.0)
    for b in (bal(totalMarginBalance="NaN"), bal(totalWalletBalance="Infinity"),
              bal(totalWalletBalance=""), {"total": {"USDT": NAN}, "info": {}}):
        with pytest.raises(BadExchangeData):
            balance_of(b)
    with pytest.raises(BadExchangeData):
        margin_ratio_of(bal(totalMaintMargin="NaN"))


def test_a_refused_read_changes_nothing_and_confirms_nothing() -> None:
    acct = Account()
    acct.replace(rest_state([pos()], [order()], bal(), read_at=100.0))
    before = acct.snapshot("rest")
    with pytest.raises(BadExchangeData):
        rest_state([pos()], [], bal(totalMarginBalance="NaN"))  # so replace() never runs
    with pytest.raises(BadExchangeData):
        acct.apply_balance(bal(totalMaintMargin="NaN"))  # checked before anything changes
    with pytest.raises(BadExchangeData):
        acct.apply_position(pos("NaN"))
    assert acct.snapshot("rest") == before and acct.confirmed == 100.0


class _Pub:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, data: dict[str, Any]) -> bool:
        self.sent.append((topic, dict(data)))
        return True


def _boundary(feed: str = "ws") -> tuple[Boundary, Any, list[BadExchangeData]]:
    c = SimpleNamespace(account=Account(), pub=_Pub(), child=SimpleNamespace(last_md=0.0))

    def md_fresh() -> None:
        c.child.last_md = time.time()

    sink = FeedSink(c.account, c.pub, None, "sim", md_fresh=md_fresh,  # type: ignore[arg-type]
                    is_poll=lambda: feed == "poll")
    bad: list[BadExchangeData] = []
    return Boundary(sink, bad.append), c, bad


def test_feed_marks_nan_zero_and_missing_never_published_nor_fresh() -> None:
    b, c, _ = _boundary()
    n = bad_count("mark")
    b.on_md(BTC, NAN, None, None, 1000)
    b.on_md(BTC, 0.0, None, None, 1000)
    b.on_md(BTC, None, 100.0, 101.0, 1000)  # quotes, but no mark yet on a ws feed
    assert c.pub.sent == [] and c.child.last_md == 0.0 and bad_count("mark") == n + 2
    b.on_md(BTC, 100.5, None, None, 5000)
    assert c.pub.sent[-1][1]["mark"] == 100.5 and c.pub.sent[-1][1]["ts"] == 5.0
    fresh = c.child.last_md
    assert fresh > 0
    b.on_md(BTC, INF, 100.0, NAN, 9000)  # a quote update with a bad mark and ask
    q = c.pub.sent[-1][1]
    assert q["mark"] == 100.5 and q["ts"] == 5.0 and q["bid"] == 100.0 and q["ask"] == 101.0
    assert c.child.last_md == fresh  # quotes flowing over a silent mark stream are not fresh
    assert all(math.isfinite(d["mark"]) for _, d in c.pub.sent)


def test_poll_feed_mid_is_its_mark() -> None:
    b, c, _ = _boundary("poll")
    b.on_md(BTC, None, 100.0, 102.0, None)
    assert c.pub.sent[-1][1]["mark"] == 101.0 and c.child.last_md > 0


def test_bad_feed_events_are_dropped_and_taint_the_feed() -> None:
    b, c, bad = _boundary()
    b.on_position(pos("NaN"))
    b.on_balance(bal(totalMarginBalance="Infinity"))
    b.on_order(order(amount=NAN))
    b.on_trade({"id": "t1", "symbol": BTC, "price": NAN, "amount": 0.01, "order": "1"})
    assert len(bad) == 4 and b.tainted_at > 0
    assert c.account.positions == {} and c.account.orders == {} and c.pub.sent == []


def test_guard_turns_an_unparseable_answer_into_bad_data_not_fatal(h: SimHarness) -> None:
    ex = h.exchange(pro=False)
    limits = RateLimits()
    install_recorder(ex, limits)
    fatal: list[E.Classification] = []
    g = Guard(limits, ExchangeClock(ex), rules=RULES, retry_budget=3, retry_window=30,
              on_fatal=fatal.append)

    async def main() -> None:
        await ex.load_markets()
        await h.control.call("position", symbol="BTCUSDT", amount="0.02", entry_price="60000")
        await h.control.call("garbage", field="position", value="NaN")
        n = bad_count("unparseable")
        with pytest.raises(BadExchangeData):  # ccxt's Precise chokes on "NaN"
            await g.call("fetch_positions", ex.fetch_positions, None)
        assert bad_count("unparseable") == n + 1 and not fatal
        await h.control.call("garbage", field="equity", value="NaN")
        b = await g.call("fetch_balance", ex.fetch_balance)  # ccxt lets this NaN through...
        with pytest.raises(BadExchangeData):
            balance_of(b)  # ...the boundary does not
        await h.control.call("clear")
        assert await g.call("fetch_positions", ex.fetch_positions, None)

    h.run(main(), timeout=30)


# --- the connector process ---------------------------------------------------------------


@pytest.fixture(scope="module")
def conn() -> Iterator[ConnectorProc]:
    c = ConnectorProc()
    try:
        yield c
    finally:
        c.close()


@pytest.mark.integration
def test_nan_from_the_exchange_never_leaves_the_connector(conn: ConnectorProc) -> None:
    sub = conn.plumbing.subscriber(["md.", "account"])
    try:
        conn.sim.control("garbage", {"field": "equity", "value": "NaN"})
        with pytest.raises(RequestError) as ei:
            conn.request("sync")
        assert ei.value.kind == "bad_data" and "balance" in ei.value.message
        # A periodic poll answered before the garbage was set may still have confirmed the
        # account; from here on every answer is NaN, so nothing may confirm it again.
        confirmed = conn.request("account")["confirmed"]
        wait_for(lambda: conn.plumbing.notes_matching("bad exchange data"), 20, "the warning")
        with pytest.raises(RequestError):
            conn.request("sync")
        assert conn.request("account")["confirmed"] == confirmed  # not confirmed by NaN
        conn.sim.control("garbage", {"field": "mark", "value": "NaN", "count": 20})
        conn.sim.control("garbage", {"field": "position", "value": "NaN", "count": 3})
        conn.sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})  # stream events
        seen: list[wire.Message] = []

        def collect() -> bool:
            while sub.poll(50):
                seen.append(wire.decode(sub.recv_multipart()))
            return "mark" not in conn.sim.state()["garbage"] and len(seen) >= 3
        wait_for(collect, 30, "20 NaN marks sent by the exchange", interval=0)
        for m in seen:
            d = m.data
            nums = [d.get("mark"), d.get("bid"), d.get("ask"), d.get("equity"), d.get("balance")]
            nums += [p[k] for p in d.get("positions") or [] for k in ("contracts", "mark")]
            assert all(v is None or math.isfinite(v) for v in nums), d
        st = conn.request("status")
        assert st["state"] == "RUNNING"

        def counted() -> set[str]:
            hb = [m for m in conn.plumbing.sup("hb") if "metrics" in m][-1]  # once a second
            return {dict(lbl).get("field") for n, lbl, _ in hb["metrics"]
                    if n == "flatguard_exchange_bad_numbers_total"}
        wait_for(lambda: {"balance", "mark"} <= counted(), 20, "the bad-number counters")
    finally:
        sub.close(0)
        conn.sim.control("clear", {})
    wait_for(lambda: conn.request("sync")["differences"] is not None, 20, "sync after clear")
    assert conn.request("account")["confirmed"] > confirmed


@pytest.mark.integration
def test_bad_numbers_that_persist_are_fatal_after_max_unconfirmed() -> None:
    c = ConnectorProc(reconcile_interval=0.5, max_unconfirmed=3.0)
    try:
        t0 = time.time()
        c.sim.control("garbage", {"field": "equity", "value": "Infinity"})
        halt = wait_for(lambda: c.plumbing.sup("halt"), 30, "a halt request")[0]
        assert "unconfirmed" in halt["reason"] and time.time() - t0 >= 2.0
        assert c.request("status")["state"] == "FATAL"
    finally:
        c.close()
