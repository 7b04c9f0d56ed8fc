"""Binance's official USDⓈ-M SDK (binance-sdk-derivatives-trading-usds-futures) as the judge of
the simulator's REST side: every endpoint the sim serves that the SDK exposes, parsed into the
SDK's own response models with no fallback (the ``t`` fixture fails on any "did not match"),
Binance's error codes, ACK/RESULT replies and percent-encoded parameters."""

from __future__ import annotations

import time
from typing import Any

import pytest
from binance_common.errors import BadRequestError, TooManyRequestsError, UnauthorizedError
from pydantic import BaseModel

from tests import sdk_sim
from tests.sdk_sim import sdk_client, signed
from tests.sim_harness import ThreadedSim

t = sdk_sim.t  # the fixtures the conformance modules share
sdk = sdk_sim.sdk


def one(item: Any) -> Any:
    """A model, a oneOf model's matched schema (the SDK wraps "one symbol or all" replies and
    batch items that way), or a list of them; never the raw payload."""
    inner = getattr(item, "actual_instance", item)
    if isinstance(inner, list):
        return [one(i) for i in inner]
    assert isinstance(inner, BaseModel), f"raw payload: {item!r}"
    return inner


def typed(reply: Any) -> Any:
    """The reply's data, asserting the SDK parsed it into its model (not the raw fallback)."""
    return one(reply.data())


def code_of(exc: pytest.ExceptionInfo[Any]) -> int:
    return exc.value.status_code


def test_public_market_data(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    assert sdk.test_connectivity().status == 200
    assert abs(typed(sdk.check_server_time()).server_time - t.state()["server_time"]) < 5000
    info = typed(sdk.exchange_information())
    assert {s.symbol for s in info.symbols} >= {"BTCUSDT", "ETHUSDT"}
    limits = {(r.rate_limit_type, r.interval, r.interval_num): r.limit for r in info.rate_limits}
    assert limits[("ORDERS", "SECOND", 10)] == 300 and limits[("ORDERS", "MINUTE", 1)] == 1200
    assert typed(sdk.mark_price(symbol="BTCUSDT")).mark_price.startswith("60000")
    typed(sdk.mark_price())
    assert typed(sdk.ticker24hr_price_change_statistics(symbol="ETHUSDT")).symbol == "ETHUSDT"
    typed(sdk.ticker24hr_price_change_statistics())
    book = typed(sdk.symbol_order_book_ticker(symbol="BTCUSDT"))
    assert float(book.bid_price) < float(book.ask_price)
    typed(sdk.symbol_order_book_ticker())
    assert typed(sdk.symbol_price_ticker(symbol="BTCUSDT")).price == "60000.00"
    typed(sdk.symbol_price_ticker_v2(symbol="BTCUSDT"))
    depth = typed(sdk.order_book(symbol="BTCUSDT", limit=5))
    assert len(depth.bids) == len(depth.asks) == 5
    bars = sdk.kline_candlestick_data(symbol="BTCUSDT", interval="1m").data()
    assert bars and len(bars[-1]) == 12 and bars[-1][4] == "60000.00"
    assert sdk.kline_candlestick_data(symbol="BTCUSDT", interval="1h", limit=1).data()
    assert typed(sdk.compressed_aggregate_trades_list(symbol="BTCUSDT")) == []


def test_market_data_errors(t: ThreadedSim, sdk: Any) -> None:
    with pytest.raises(BadRequestError) as bad:
        sdk.kline_candlestick_data(symbol="BTCUSDT", interval="7m")
    assert (code_of(bad), bad.value.error_message) == (-1120, "Invalid interval.")
    with pytest.raises(BadRequestError) as bad:
        sdk.order_book(symbol="NOPEUSDT")
    assert code_of(bad) == -1121
    with pytest.raises(BadRequestError) as bad:
        sdk.order_book(symbol="BTCUSDT", limit=7)
    assert code_of(bad) == -1102


def test_order_replies_ack_by_default_result_on_request(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    ack = sdk.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert ack.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert ack.headers["X-MBX-ORDER-COUNT-1M"] == "1"
    order = typed(ack)
    # Binance's default (ACK): the order as accepted, nothing executed, even for MARKET.
    assert (order.status, order.executed_qty, order.cum_qty) == ("NEW", "0.000", "0.000")
    assert order.additional_properties["avgPrice"] == "0.00"
    later = typed(sdk.query_order(symbol="BTCUSDT", order_id=order.order_id))
    assert (later.status, later.executed_qty) == ("FILLED", "0.010")

    result = typed(sdk.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01,
                                 reduce_only="true", new_order_resp_type="RESULT"))
    assert (result.status, result.executed_qty) == ("FILLED", "0.010")
    assert float(result.additional_properties["avgPrice"]) > 0
    ioc = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01, price=50000,
               time_in_force="IOC")
    assert typed(sdk.new_order(**ioc)).status == "NEW"  # ACK: the expiry comes later
    assert typed(sdk.new_order(**ioc, new_order_resp_type="RESULT")).status == "EXPIRED"
    # (The SDK's enum has no FULL; Binance USDⓈ-M has none either.)
    full = signed(t, "POST", "/fapi/v1/order",
                  "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01&newOrderRespType=FULL")
    assert (full.status_code, full.json()) == (400, {"code": -1136,
                                                     "msg": "Invalid newOrderRespType"})


def test_percent_encoded_client_order_id_and_its_rule(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    # The SDK signs the percent-encoded query it sends (x%3A1%2F2): Binance verifies exactly
    # those bytes, and so does the sim.
    placed = typed(sdk.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01,
                                 price=59000, time_in_force="GTC",
                                 new_client_order_id="x:1/2"))
    assert placed.client_order_id == "x:1/2"
    found = typed(sdk.query_order(symbol="BTCUSDT", orig_client_order_id="x:1/2"))
    assert found.order_id == placed.order_id
    assert typed(sdk.query_current_open_order(symbol="BTCUSDT",
                                              orig_client_order_id="x:1/2")).status == "NEW"
    assert typed(sdk.cancel_order(symbol="BTCUSDT",
                                  orig_client_order_id="x:1/2")).status == "CANCELED"
    with pytest.raises(BadRequestError) as bad:
        sdk.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01,
                      new_client_order_id="a" * 37)
    assert code_of(bad) == -1100
    assert "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'" in bad.value.error_message
    with pytest.raises(BadRequestError) as bad:
        sdk.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01,
                      new_client_order_id="has space")
    assert code_of(bad) == -1100
    with pytest.raises(BadRequestError) as bad:
        sdk.query_current_open_order(symbol="BTCUSDT", order_id=placed.order_id)
    assert code_of(bad) == -2013  # no longer open


def test_auth_errors(t: ThreadedSim) -> None:
    wrong_secret = sdk_client(t, api_secret="not-the-secret").rest_api
    with pytest.raises(BadRequestError) as bad:
        wrong_secret.account_information_v3()
    assert code_of(bad) == -1022
    wrong_key = sdk_client(t, api_key="not-the-key").rest_api
    with pytest.raises(UnauthorizedError) as unauthorized:
        wrong_key.account_information_v3()
    assert unauthorized.value.status_code == -2015


def test_account_reads(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    t.call("position", symbol="BTCUSDT", amount="0.01", entry_price="60000")
    t.call("order", symbol="ETHUSDT", side="BUY", type="LIMIT", quantity="0.1", price="2900",
           timeInForce="GTC")
    v2 = typed(sdk.account_information_v2())
    rows = {p.symbol: p for p in v2.positions}
    assert set(rows) == set(t.state()["marks"])  # v2 lists every symbol
    assert (rows["BTCUSDT"].position_amt, rows["BTCUSDT"].leverage) == ("0.010", "20")
    assert rows["BTCUSDT"].isolated is False and rows["SOLUSDT"].position_amt == "0"
    assert rows["BTCUSDT"].entry_price.startswith("60000") and rows["BTCUSDT"].max_notional
    assert float(rows["ETHUSDT"].open_order_initial_margin) > 0
    v3 = typed(sdk.account_information_v3())
    assert [p.symbol for p in v3.positions] == ["BTCUSDT"]
    for reply in (sdk.futures_account_balance_v2(), sdk.futures_account_balance_v3()):
        assert typed(reply)[0].asset == "USDT"
    assert len(typed(sdk.position_information_v2())) == len(rows)
    # v3: positions held *or* symbols with open orders
    assert {p.symbol for p in typed(sdk.position_information_v3())} == {"BTCUSDT", "ETHUSDT"}
    typed(sdk.notional_and_leverage_brackets(symbol="BTCUSDT"))
    assert typed(sdk.get_current_position_mode()).dual_side_position is False
    typed(sdk.futures_trading_quantitative_rules_indicators())


def test_account_settings(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    assert typed(sdk.change_initial_leverage(symbol="BTCUSDT", leverage=5)).leverage == 5
    with pytest.raises(BadRequestError) as bad:
        sdk.change_initial_leverage(symbol="BTCUSDT", leverage=500)
    assert code_of(bad) == -4028
    typed(sdk.change_margin_type(symbol="BTCUSDT", margin_type="ISOLATED"))
    with pytest.raises(BadRequestError) as bad:
        sdk.change_margin_type(symbol="BTCUSDT", margin_type="ISOLATED")
    assert code_of(bad) == -4046
    t.call("order", symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01",
           price="59000", timeInForce="GTC")
    with pytest.raises(BadRequestError) as bad:
        sdk.change_margin_type(symbol="BTCUSDT", margin_type="CROSSED")
    assert (code_of(bad), bad.value.error_message) == (
        -4047, "Margin type cannot be changed if there exists open orders.")
    sdk.cancel_all_open_orders(symbol="BTCUSDT")
    t.call("position", symbol="BTCUSDT", amount="0.01")
    with pytest.raises(BadRequestError) as bad:
        sdk.change_margin_type(symbol="BTCUSDT", margin_type="CROSSED")
    assert (code_of(bad), bad.value.error_message) == (
        -4048, "Margin type cannot be changed if there exists position.")
    typed(sdk.change_margin_type(symbol="ETHUSDT", margin_type="ISOLATED"))  # other symbol
    with pytest.raises(BadRequestError) as bad:
        sdk.change_position_mode(dual_side_position="true")
    assert code_of(bad) == -4068
    typed(sdk.auto_cancel_all_open_orders(symbol="BTCUSDT", countdown_time=0))


def test_orders_trades_and_income(t: ThreadedSim, sdk: Any) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    sdk.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    t.call("price", symbol="BTCUSDT", price="61000")
    sdk.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01,
                  reduce_only="true")
    orders = typed(sdk.all_orders(symbol="BTCUSDT"))
    assert [o.status for o in orders] == ["FILLED", "FILLED"]
    trades = typed(sdk.account_trade_list(symbol="BTCUSDT"))
    assert len(trades) == 2 and float(trades[1].realized_pnl) > 0
    income = typed(sdk.get_income_history(symbol="BTCUSDT"))
    kinds = [(i.income_type, i.trade_id) for i in income]
    assert kinds == [("COMMISSION", str(trades[0].id)), ("REALIZED_PNL", str(trades[1].id)),
                     ("COMMISSION", str(trades[1].id))]
    pnl = next(i for i in income if i.income_type == "REALIZED_PNL")
    assert pnl.income == trades[1].realized_pnl and pnl.asset == "USDT"
    fees = typed(sdk.get_income_history(income_type="COMMISSION"))
    assert sum(float(i.income) for i in fees) == pytest.approx(
        -sum(float(tr.commission) for tr in trades))
    agg = typed(sdk.compressed_aggregate_trades_list(symbol="BTCUSDT"))
    assert [(a.a, a.m) for a in agg] == [(trades[0].id, False), (trades[1].id, True)]
    bars = sdk.kline_candlestick_data(symbol="BTCUSDT", interval="1m").data()
    assert sum(int(b[8]) for b in bars) == 2  # the fills' count in the bars
    assert typed(sdk.current_all_open_orders()) == []
    with pytest.raises(BadRequestError) as bad:
        sdk.get_income_history(income_type="NOT_A_TYPE")
    assert code_of(bad) == -1102


def test_batch_orders_answer_per_item(t: ThreadedSim, sdk: Any) -> None:
    from binance_sdk_derivatives_trading_usds_futures.rest_api import models as m

    t.call("price", symbol="BTCUSDT", price="60000")
    item = m.PlaceMultipleOrdersBatchOrdersParameterInner
    placed = typed(sdk.place_multiple_orders(batch_orders=[
        item(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01, price=59000,
             time_in_force="GTC", new_client_order_id="b:1/1"),
        item(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduce_only="true"),
        item(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01,
             new_order_resp_type="RESULT"),
    ]))
    first, refused, filled = placed
    assert first.status == "NEW" and first.client_order_id == "b:1/1"
    assert (refused.code, refused.msg) == (-2022, "ReduceOnly Order is rejected.")
    assert filled.status == "FILLED"
    with pytest.raises(BadRequestError) as bad:
        sdk.place_multiple_orders(batch_orders=[item(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)] * 6)
    assert code_of(bad) == -1130
    modify = m.ModifyMultipleOrdersBatchOrdersParameterInner
    modified = typed(sdk.modify_multiple_orders(batch_orders=[
        modify(symbol="BTCUSDT", side="BUY", quantity=0.02, price=59100,
               order_id=first.order_id),
        modify(symbol="BTCUSDT", side="BUY", quantity=0.02, price=59100, order_id=1),
    ]))
    ok, missing = modified
    assert (ok.price, ok.orig_qty) == ("59100.00", "0.020")
    assert missing.code == -2013
    single = typed(sdk.modify_order(symbol="BTCUSDT", side="BUY", quantity=0.02, price=59200,
                                    orig_client_order_id="b:1/1"))
    assert single.price == "59200.00"
    cancelled = typed(sdk.cancel_multiple_orders(symbol="BTCUSDT",
                                                 order_id_list=[first.order_id, 1]))
    done, unknown = cancelled
    assert done.status == "CANCELED" and (unknown.code, unknown.msg) == (
        -2011, "Unknown order sent.")
    with pytest.raises(BadRequestError) as bad:
        sdk.cancel_multiple_orders(symbol="BTCUSDT")
    assert code_of(bad) == -1102


def test_order_count_limit(t: ThreadedSim) -> None:
    small = ThreadedSim(order_limit_10s=3)
    try:
        small.call("freeze")
        small.call("price", symbol="BTCUSDT", price="60000")
        client = sdk_client(small).rest_api
        # Binance's windows are fixed (10 s): start well inside one so all four share it.
        while small.state()["server_time"] % 10_000 > 7_000:
            time.sleep(0.1)
        order = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01, price=50000,
                     time_in_force="GTC")
        counts = [client.new_order(**order).headers["X-MBX-ORDER-COUNT-10S"]
                  for _ in range(3)]
        assert counts == ["1", "2", "3"]
        with pytest.raises(TooManyRequestsError) as many:
            client.new_order(**order)
        assert (many.value.status_code, many.value.error_message) == (
            -1015, "Too many new orders; current limit is 3 orders per 10 SECOND.")
        assert small.state()["bugs"] == 0
    finally:
        small.close()


_GARBAGE = {
    "symbol": "BTCUSDT", "limit": "abc", "orderId": "x", "origClientOrderId": "a b",
    "startTime": "x", "endTime": "-", "fromId": "x", "batchOrders": "[{", "orderIdList": "x",
    "origClientOrderIdList": "[1]", "interval": "", "quantity": "NaN", "price": "-1",
    "side": "UP", "type": "X", "timeInForce": "NOW", "leverage": "x", "marginType": "x",
    "countdownTime": "x", "dualSidePosition": "maybe", "incomeType": "x",
    "newClientOrderId": "a b", "newOrderRespType": "X", "algoType": "x", "algoId": "x",
    "triggerPrice": "x", "reduceOnly": "perhaps", "listenKey": "nope",
}


@pytest.mark.parametrize("variant", ["garbage", "empty", "json-shapes"])
def test_every_route_answers_bad_input_with_a_binance_error(t: ThreadedSim,
                                                            variant: str) -> None:
    """Malformed parameters on every route the sim serves: Binance's error JSON (4xx),
    never -1000 or a traceback (the fixture also asserts the sim counted no bug)."""
    from urllib.parse import urlencode

    from trader.sim.pipeline import ROUTES

    params = {"garbage": _GARBAGE, "empty": {},
              "json-shapes": {"symbol": "BTCUSDT", "batchOrders": '[1, "x", null]',
                              "orderIdList": "[true]", "origClientOrderIdList": '[{"a": 1}]',
                              "limit": "0"}}[variant]
    for method, path in sorted(ROUTES):
        reply = signed(t, method, path, urlencode(params))
        assert reply.status_code < 500, (method, path, reply.text)
        if reply.status_code >= 400:
            body = reply.json()
            assert isinstance(body["code"], int) and isinstance(body["msg"], str), body
