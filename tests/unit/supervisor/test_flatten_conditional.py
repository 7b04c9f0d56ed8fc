"""Conditional (algo/trigger) orders in the kill path's flatten, against the in-process sim.

Since Binance's December 2025 migration STOP/TAKE_PROFIT/trailing orders live on the algo-order
endpoints, which ccxt 4.5.90 reaches only with ``trigger=True``. A resting STOP_MARKET is an
order like any other for "verified flat": the round cancels it, and verify reads it.
"""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from supervisor.flatten import Flattener
from tests.sim_harness import SimHarness
from tests.unit.supervisor.test_flatten_unit import SYMBOLS, ctl, ctl_body, flattener, sim_positions
from trader.exchange import errors as E
from trader.exchange.venues import UnsupportedVenue, venue_for

BTC = SYMBOLS[0]


def setup_mark(h: SimHarness, symbol: str = "BTCUSDT") -> Decimal:
    ctl(h, "freeze")  # only the test moves the mark
    mark = Decimal(h.run(h.control.state())["marks"][symbol])
    ctl(h, "price", symbol=symbol, price=str(mark))
    return mark


def stop_market(h: SimHarness, symbol: str, side: str, qty: str, trigger: Decimal) -> None:
    ctl(h, "algo", symbol=symbol, side=side, type="STOP_MARKET", quantity=qty,
        triggerPrice=str(trigger))


def algo_open(h: SimHarness) -> list[dict]:
    return h.run(h.control.state())["open_algo_orders"]


def received(h: SimHarness) -> dict[str, int]:
    return dict(h.run(h.control.state())["requests"])


def test_a_resting_stop_market_is_not_flat_until_cancelled_and_verified_gone(h) -> None:
    f = flattener(h)
    mark = setup_mark(h)
    stop_market(h, "BTCUSDT", "BUY", "0.5", (mark * Decimal("1.02")).quantize(Decimal("0.1")))
    before = h.run(f.verify())
    assert not before.flat and not before.positions
    assert len(before.open_orders) == 1 and before.open_orders[0].endswith("(conditional)")
    assert "STOP_MARKET" in before.open_orders[0], before.open_orders
    r = h.run(f.round())
    assert r.flat and r.cancelled == 1 and r.cancelled_conditional == 1, r
    assert not algo_open(h)
    assert h.run(f.verify()).flat  # a fresh read of both kinds


def test_a_round_whose_conditional_cancel_fails_is_not_flat(h) -> None:
    f = flattener(h)
    mark = setup_mark(h)
    stop_market(h, "BTCUSDT", "SELL", "0.5", (mark * Decimal("0.98")).quantize(Decimal("0.1")))
    ctl_body(h, "fail", {"path": "/fapi/v1/algoOpenOrders", "method": "DELETE", "count": 5,
                         "status": 503})
    r = h.run(f.round())
    assert not r.flat and r.failure == "transient", r
    assert any(o.endswith("(conditional)") for o in r.open_orders), r.open_orders
    assert "cancel_all_orders" in r.error and "HTTP 503" in r.error
    ctl(h, "clear")
    assert h.run(f.round()).flat and not algo_open(h)


def test_a_stop_never_reopens_a_position_after_flat(h) -> None:
    """A position with a resting stop that would re-open it (a buy stop above the mark). After
    the verified round, the mark crosses the trigger: nothing happens, nothing is open."""
    f = flattener(h)
    mark = setup_mark(h)
    ctl(h, "position", symbol="BTCUSDT", amount="-0.5")
    trigger = (mark * Decimal("1.01")).quantize(Decimal("0.1"))
    stop_market(h, "BTCUSDT", "BUY", "1", trigger)
    r = h.run(f.round())
    assert r.flat and r.closes == 1 and r.cancelled_conditional == 1, r
    ctl(h, "price", symbol="BTCUSDT", price=str(trigger * Decimal("1.005")))
    assert not sim_positions(h) and not algo_open(h)
    assert h.run(f.verify()).flat


def test_conditional_orders_outside_the_configured_symbols_are_cancelled(h) -> None:
    """SOL is not configured: its stop is cancelled, and so are regular orders on SOL (a stop
    that triggers between the read and its cancel leaves a regular order there)."""
    f = flattener(h)
    mark = setup_mark(h, "SOLUSDT")
    stop_market(h, "SOLUSDT", "SELL", "10", (mark * Decimal("0.95")).quantize(Decimal("0.01")))
    before = received(h)
    r = h.run(f.round())
    assert r.flat and r.cancelled_conditional == 1, r
    after = received(h)
    # configured BTC, ETH plus SOL, for each kind
    assert after["DELETE /fapi/v1/algoOpenOrders"] - before.get(
        "DELETE /fapi/v1/algoOpenOrders", 0) == 3
    assert after["DELETE /fapi/v1/allOpenOrders"] - before.get(
        "DELETE /fapi/v1/allOpenOrders", 0) == 3
    assert not algo_open(h)


def test_cancel_only_round_cancels_conditional_orders(h) -> None:
    f = flattener(h)
    mark = setup_mark(h)
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    stop_market(h, "BTCUSDT", "SELL", "0.5", (mark * Decimal("0.97")).quantize(Decimal("0.1")))
    r = h.run(f.round(cancel_only=True))
    assert r.flat and r.cancelled_conditional == 1 and r.closes == 0, r
    assert sim_positions(h)  # cancel only: the position stays
    assert not algo_open(h)


def test_prove_fails_when_the_conditional_endpoint_is_gone(h) -> None:
    """The kill path is proven at start-up: a venue listed with conditional orders whose
    endpoint answers 404 cannot pass (unknown means fatal)."""
    f = flattener(h)
    ctl(h, "retire", path="/fapi/v1/openAlgoOrders")
    with pytest.raises(E.Fatal, match="404"):
        h.run(f.prove())


def test_open_orders_lists_both_kinds(h) -> None:
    f = flattener(h)
    mark = setup_mark(h)
    stop_market(h, "BTCUSDT", "SELL", "0.5", (mark * Decimal("0.97")).quantize(Decimal("0.1")))
    ctl(h, "order", symbol="ETHUSDT", side="BUY", type="LIMIT", quantity="1", price="1000",
        timeInForce="GTC")
    assert sorted(o["symbol"] for o in h.run(f.open_orders())) == sorted(SYMBOLS)


def test_the_capability_is_explicit_per_venue(h) -> None:
    """A venue states its conditional orders' params (binanceusdm: trigger); an exchange
    without a venue module gets no kill path at all (never Binance's); an override wins."""
    assert venue_for("binanceusdm").conditional == {"trigger": True}
    with pytest.raises(UnsupportedVenue, match="'bybit'"):
        Flattener(ccxt.bybit(), SYMBOLS, 60000)
    f = Flattener(h.exchange(pro=False), SYMBOLS, 60000, conditional={})
    h.run(f.prepare())
    before = received(h)
    r = h.run(f.round())
    assert r.flat, r
    after = received(h)
    assert not [k for k in after if "lgo" in k and after[k] != before.get(k, 0)], after
