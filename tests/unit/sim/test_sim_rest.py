"""The real ccxt binanceusdm client against the simulator's REST API."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness, wait_until

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def test_load_markets_time_balance(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        markets = await ex.load_markets()
        assert {BTC, ETH} <= set(markets)
        btc = markets[BTC]
        assert btc["linear"] and btc["swap"] and btc["settle"] == "USDT"
        assert (btc["precision"]["amount"], btc["precision"]["price"]) == (0.001, 0.1)
        assert btc["limits"]["market"]["max"] == 2.0
        assert btc["limits"]["cost"]["min"] == 100.0
        server = await ex.fetch_time()
        assert abs(server - ex.milliseconds()) < 2000
        balance = await ex.fetch_balance()
        assert balance["USDT"]["total"] == 10000.0
        assert await ex.fetch_positions() == []
        state = await h.control.state()
        assert "GET /fapi/v3/account" in state["requests"]  # what fetch_balance uses in 4.5.90
        assert "GET /fapi/v3/positionRisk" in state["requests"]

    h.run(body())


def test_market_buy_shows_position_with_entry_price(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        quote = await h.control.price("BTCUSDT", 60000)
        order = await ex.create_order(BTC, "market", "buy", 0.01,
                                      params={"clientOrderId": "fg-test-1"})
        assert order["status"] == "closed" and order["filled"] == 0.01
        assert order["clientOrderId"] == "fg-test-1"
        assert order["average"] == float(quote["ask"])
        [pos] = await ex.fetch_positions()
        assert (pos["symbol"], pos["side"], pos["contracts"]) == (BTC, "long", 0.01)
        assert pos["entryPrice"] == float(quote["ask"])
        fee = 0.01 * float(quote["ask"]) * 0.0004
        balance = await ex.fetch_balance()
        assert balance["USDT"]["total"] == pytest.approx(10000 - fee + pos["unrealizedPnl"])
        [trade] = await ex.fetch_my_trades(BTC)
        assert trade["fee"]["cost"] == pytest.approx(fee) and trade["takerOrMaker"] == "taker"
        log = await h.control.orders()
        assert [e["clientOrderId"] for e in log] == ["fg-test-1"] and log[0]["accepted"]

    h.run(body())


def test_limit_rests_then_fills_when_price_crosses(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await h.control.price("BTCUSDT", 60000)
        order = await ex.create_order(BTC, "limit", "buy", 0.01, 59500)
        assert order["status"] == "open"
        assert [o["id"] for o in await ex.fetch_open_orders()] == [order["id"]]
        await h.control.price("BTCUSDT", 59400)  # ask now below the limit: fills as maker
        filled = await ex.fetch_order(order["id"], BTC)
        assert filled["status"] == "closed" and filled["average"] == 59500.0
        [pos] = await ex.fetch_positions()
        assert pos["entryPrice"] == 59500.0
        [trade] = await ex.fetch_my_trades(BTC)
        assert trade["takerOrMaker"] == "maker"
        assert await ex.fetch_open_orders(BTC) == []

    h.run(body())


def test_reduce_only_close_and_rejection(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # nothing to reduce
            await ex.create_order(ETH, "market", "sell", 0.1, params={"reduceOnly": True})
        await ex.create_order(ETH, "market", "buy", 0.1)
        with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # would increase the long
            await ex.create_order(ETH, "market", "buy", 0.1, params={"reduceOnly": True})
        close = await ex.create_order(ETH, "market", "sell", 0.1, params={"reduceOnly": True})
        assert close["status"] == "closed" and close["reduceOnly"] is True
        state = await h.control.state()
        assert state["positions"] == [] and state["open_orders"] == []

    h.run(body())


def test_margin_insufficient_and_order_filters(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await h.control.price("ETHUSDT", 3000)
        # 60 ETH * 3000 / 20x = 9000 USDT of margin: fine; another 20 ETH is not.
        await ex.create_order(ETH, "limit", "buy", 60, 2990)
        with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
            await ex.create_order(ETH, "limit", "buy", 20, 2990)
        with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # below min notional
            await ex.create_order(BTC, "market", "buy", 0.001)
        with pytest.raises(ccxt.BadRequest, match="-4005"):  # above MARKET_LOT_SIZE.maxQty
            await ex.create_order(BTC, "market", "buy", 2.5)
        await h.control.price("BTCUSDT", 60000, spread=0.2)  # a book 10% wide each side
        with pytest.raises(ccxt.OperationRejected, match="-4131"):
            await ex.create_order(BTC, "market", "sell", 0.01)
        orders = await h.control.orders()
        assert [e["accepted"] for e in orders] == [True, False, False, False, False]

    h.run(body())


def test_cancel_fetch_unknown_and_cancel_all(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await h.control.price("BTCUSDT", 60000)
        a = await ex.create_order(BTC, "limit", "buy", 0.01, 59000)
        await ex.create_order(BTC, "limit", "sell", 0.01, 61000)
        assert (await ex.cancel_order(a["id"], BTC))["status"] == "canceled"
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await ex.cancel_order(a["id"], BTC)
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await ex.fetch_order("123", BTC)
        await ex.cancel_all_orders(BTC)
        assert await ex.fetch_open_orders() == []

    h.run(body())


def test_countdown_cancels_open_orders_and_zero_disarms(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await ex.create_order(BTC, "limit", "buy", 0.01, 59000)
        await ex.create_order(ETH, "limit", "buy", 0.1, 2900)
        await ex.fapiPrivatePostCountdownCancelAll({"symbol": "ETHUSDT", "countdownTime": 5000})
        await ex.fapiPrivatePostCountdownCancelAll({"symbol": "ETHUSDT", "countdownTime": 0})
        reply = await ex.fapiPrivatePostCountdownCancelAll(
            {"symbol": "BTCUSDT", "countdownTime": 200})
        assert reply == {"symbol": "BTCUSDT", "countdownTime": "200"}
        assert set((await h.control.state())["countdowns"]) == {"BTCUSDT"}  # ETH disarmed

        async def btc_cancelled() -> bool:
            return await ex.fetch_open_orders(BTC) == []

        await wait_until(btc_cancelled, timeout=5)
        assert [o["symbol"] for o in await ex.fetch_open_orders()] == [ETH]
        assert (await h.control.state())["countdowns_fired"] == {"BTCUSDT": 1}

    h.run(body())


def test_account_settings(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        assert (await ex.set_leverage(3, BTC))["leverage"] == 3
        assert (await ex.fetch_position_mode())["hedged"] is False
        await ex.set_margin_mode("isolated", BTC)
        with pytest.raises(ccxt.MarginModeAlreadySet):  # -4046
            await ex.set_margin_mode("isolated", BTC)
        with pytest.raises(ccxt.OperationRejected, match="-4059"):
            await ex.set_position_mode(False)
        await ex.set_position_mode(True)
        order = await ex.create_order(BTC, "market", "sell", 0.01,
                                      params={"positionSide": "SHORT"})
        assert order["status"] == "closed"
        [pos] = await ex.fetch_positions()
        assert (pos["side"], pos["hedged"]) == ("short", True)
        mark = await ex.fetch_mark_price(BTC)
        assert mark["markPrice"] > 0 and mark["indexPrice"] > 0
        bids_asks = await ex.fetch_bids_asks([BTC])
        assert bids_asks[BTC]["bid"] < bids_asks[BTC]["ask"]
        book = await ex.fetch_order_book(BTC, 5)
        assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
        assert (await ex.fetch_ticker(BTC))["last"] > 0

    h.run(body())


def test_bad_credentials_are_authentication_errors(h: SimHarness) -> None:
    bad_secret = h.exchange(pro=False, api_secret="wrong")
    bad_key = h.exchange(pro=False, api_key="wrong")

    async def body() -> None:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad_secret.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await bad_key.fetch_balance()
        assert (await h.control.orders()) == []

    h.run(body())
