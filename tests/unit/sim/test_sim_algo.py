"""Conditional orders on the algo endpoints, driven through ccxt 4.5.90 the way it routes them."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness, wait_until

BTC = "BTC/USDT:USDT"


async def _setup(h: SimHarness, price: float = 60000) -> None:
    await h.control.call("freeze")  # no random walk: only the test moves the mark
    await h.control.price("BTCUSDT", price)


def test_stop_market_routes_to_algo_endpoints_and_is_cancelled_only_with_trigger(
        h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await _setup(h)
        stop = await ex.create_order(BTC, "STOP_MARKET", "buy", 0.01,
                                     params={"triggerPrice": 61000, "clientOrderId": "stop-1"})
        assert (stop["status"], stop["type"], stop["triggerPrice"]) == ("open", "market", 61000)
        assert stop["clientOrderId"] == "stop-1" and stop["info"]["algoType"] == "CONDITIONAL"
        legacy = await ex.create_order(BTC, "market", "sell", 0.01,
                                       params={"stopPrice": 59000, "reduceOnly": True})
        assert legacy["info"]["orderType"] == "STOP_MARKET"
        requests = (await h.control.state())["requests"]
        assert requests["POST /fapi/v1/algoOrder"] == 2 and "POST /fapi/v1/order" not in requests

        # Invisible to the regular endpoints, untouched by the regular cancel-all.
        assert await ex.fetch_open_orders(BTC) == []
        await ex.cancel_all_orders(BTC)
        listed = await ex.fetch_open_orders(BTC, params={"trigger": True})
        assert sorted(o["id"] for o in listed) == sorted([stop["id"], legacy["id"]])
        state = await h.control.state()
        assert {a["algoId"] for a in state["open_algo_orders"]} == {
            int(stop["id"]), int(legacy["id"])}
        assert state["flat_since_ns"] is None  # a resting algo order is not flat

        cancelled = await ex.cancel_order(stop["id"], BTC, params={"trigger": True})
        assert cancelled["id"] == stop["id"]
        await ex.cancel_all_orders(BTC, params={"trigger": True})
        assert await ex.fetch_open_orders(BTC, params={"trigger": True}) == []
        fetched = await ex.fetch_order(legacy["id"], BTC, params={"trigger": True})
        assert fetched["status"] == "canceled"
        requests = (await h.control.state())["requests"]
        assert requests["DELETE /fapi/v1/algoOrder"] == 1
        assert requests["DELETE /fapi/v1/algoOpenOrders"] == 1
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order("1", BTC, params={"trigger": True})

    h.run(body())


def test_resting_stop_market_reopens_a_position_after_a_flatten(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await _setup(h)
        await h.control.call("position", symbol="BTCUSDT", amount="0.01")
        stop = await ex.create_order(BTC, "STOP_MARKET", "sell", 0.01, params={
            "triggerPrice": 59000, "workingType": "MARK_PRICE"})  # not reduce-only
        await ex.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
        assert await ex.fetch_positions() == []  # "flat"...
        await h.control.price("BTCUSDT", 58900)  # ...until the mark crosses the trigger
        [pos] = await ex.fetch_positions()
        assert (pos["side"], pos["contracts"]) == ("short", 0.01)
        done = await ex.fetch_order(stop["id"], BTC, params={"trigger": True})
        assert done["status"] == "closed" and done["info"]["algoStatus"] == "FINISHED"
        child_id = done["info"]["actualOrderId"]
        child = await ex.fetch_order(child_id, BTC)
        assert (child["type"], child["status"], child["info"]["origType"]) == (
            "market", "closed", "STOP_MARKET")
        assert (await h.control.state())["open_algo_orders"] == []

    h.run(body())


def test_take_profit_close_position_and_immediate_trigger_refused(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await _setup(h)
        with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):
            await ex.create_order(BTC, "STOP_MARKET", "buy", 0.01, params={"triggerPrice": 59000})
        await h.control.call("position", symbol="BTCUSDT", amount="0.02")
        tp = await h.control.call("algo", symbol="BTCUSDT", side="SELL",
                                  type="TAKE_PROFIT_MARKET", triggerPrice="61000",
                                  closePosition=True, workingType="MARK_PRICE")
        assert tp["algoStatus"] == "NEW" and tp["closePosition"] is True
        await h.control.price("BTCUSDT", 60900)
        assert len(await ex.fetch_positions()) == 1
        await h.control.price("BTCUSDT", 61100)
        assert await ex.fetch_positions() == []
        [row] = (await h.control.state())["algo_orders"]
        assert row["algoStatus"] == "FINISHED" and row["actualOrderId"]

    h.run(body())


def test_triggered_order_refused_by_the_engine_is_rejected(h: SimHarness) -> None:
    async def body() -> None:
        await _setup(h)
        algo = await h.control.call("algo", symbol="BTCUSDT", side="SELL", type="STOP_MARKET",
                                    quantity="0.01", triggerPrice="59000", reduceOnly=True)
        await h.control.price("BTCUSDT", 58000)  # nothing to reduce: -2022 at trigger time
        [row] = (await h.control.state())["algo_orders"]
        assert row["algoId"] == algo["algoId"] and row["algoStatus"] == "REJECTED"
        assert (await h.control.state())["positions"] == []

    h.run(body())


def test_stop_limit_and_trailing_stop(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await _setup(h)
        stop = await ex.create_order(BTC, "limit", "buy", 0.01, 61100,
                                     params={"triggerPrice": 61000})
        assert stop["info"]["orderType"] == "STOP" and stop["price"] == 61100
        trail = await ex.create_order(BTC, "market", "sell", 0.01, params={
            "trailingPercent": 1, "trailingTriggerPrice": 60500})
        assert trail["info"]["orderType"] == "TRAILING_STOP_MARKET"
        await h.control.price("BTCUSDT", 61050)  # the stop triggers: a buy limit at 61100
        assert (await ex.fetch_positions())[0]["contracts"] == 0.01
        await h.control.price("BTCUSDT", 62000)  # trailing activated at >= 60500; high 62000
        await h.control.price("BTCUSDT", 61500)  # -0.8 %: not yet
        assert len(await ex.fetch_open_orders(BTC, params={"trigger": True})) == 1
        await h.control.price("BTCUSDT", 61300)  # -1.1 %: triggers, closes the long
        assert await ex.fetch_positions() == []
        assert await ex.fetch_open_orders(BTC, params={"trigger": True}) == []

    h.run(body())


def test_conditional_type_on_the_order_endpoint_and_bad_algo_params(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await _setup(h)
        await ex.load_markets()
        with pytest.raises(ccxt.ExchangeError, match="-4120"):
            await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY",
                                           "type": "STOP_MARKET", "quantity": "0.01",
                                           "stopPrice": "61000"})
        with pytest.raises(ccxt.ExchangeError, match="-1102"):
            await ex.fapiPrivatePostAlgoOrder({"algoType": "CONDITIONAL", "symbol": "BTCUSDT",
                                               "side": "BUY", "type": "STOP_MARKET",
                                               "quantity": "0.01"})
        with pytest.raises(ccxt.ExchangeError, match="-1111"):
            await ex.fapiPrivatePostAlgoOrder({"algoType": "CONDITIONAL", "symbol": "BTCUSDT",
                                               "side": "BUY", "type": "STOP_MARKET",
                                               "quantity": "0.0101", "triggerPrice": "61000"})

    h.run(body())


def test_algo_update_on_the_user_stream(h: SimHarness) -> None:
    ex = h.exchange()

    async def body() -> None:
        await _setup(h)
        orders = asyncio.ensure_future(ex.watch_orders(BTC))

        async def subscribed() -> bool:
            return (await h.control.state())["ws_connections"] >= 1

        await wait_until(subscribed, timeout=10)  # the listenKey is in the connection's URL
        algo = await h.control.call("algo", symbol="BTCUSDT", side="BUY", type="STOP_MARKET",
                                    quantity="0.01", triggerPrice="61000")
        [update] = await asyncio.wait_for(orders, 10)
        assert (update["id"], update["status"], update["triggerPrice"]) == (
            str(algo["algoId"]), "open", 61000)

    h.run(body())
