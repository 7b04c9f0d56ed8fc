"""ccxt.pro binanceusdm streams against the simulator's WebSocket side."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness, wait_until

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def watching(ex: Any, *message_hashes: str) -> Callable[[], Awaitable[bool]]:
    """A condition: some ccxt.pro client has a pending future for each message hash."""

    async def check() -> bool:
        pending = {h for client in ex.clients.values() for h in client.futures}
        return set(message_hashes) <= pending

    return check


def test_market_streams(h: SimHarness) -> None:
    ex = h.exchange()

    async def body() -> None:
        first = await ex.watch_mark_price(BTC)
        second = await ex.watch_mark_price(BTC)
        assert second["timestamp"] > first["timestamp"] and second["markPrice"] > 0
        ticker = await ex.watch_ticker(ETH)
        assert ticker["symbol"] == ETH and ticker["last"] > 0
        quotes = await ex.watch_bids_asks([BTC])
        assert quotes[BTC]["bid"] < quotes[BTC]["ask"]
        # A price set through the control API is published at once (the walk is frozen).
        await h.control.call("freeze")
        await h.control.price("BTCUSDT", 61234.5)

        async def published() -> bool:  # ccxt's ticker cache follows every message received
            return ex.tickers[BTC]["markPrice"] == 61234.5

        await wait_until(published)

    h.run(body())


def test_user_stream_orders_trades_positions_balance(h: SimHarness) -> None:
    ex = h.exchange()

    async def body() -> None:
        assert await ex.watch_positions() == []  # first call: the REST snapshot
        orders = asyncio.ensure_future(ex.watch_orders(ETH))
        trades = asyncio.ensure_future(ex.watch_my_trades(ETH))
        positions = asyncio.ensure_future(ex.watch_positions())
        balance = asyncio.ensure_future(ex.watch_balance())

        await wait_until(watching(ex, "orders:" + ETH, "myTrades:" + ETH, "linear:positions",
                                  "linear:balance"))
        placed = await ex.create_order(ETH, "market", "buy", 0.1,
                                       params={"clientOrderId": "ws-1"})
        got = await asyncio.wait_for(orders, 5)
        assert got[-1]["clientOrderId"] == "ws-1" and got[-1]["id"] == placed["id"]
        [trade] = await asyncio.wait_for(trades, 5)
        assert (trade["order"], trade["amount"]) == (placed["id"], 0.1)
        [pos] = await asyncio.wait_for(positions, 5)
        assert (pos["symbol"], pos["contracts"], pos["side"]) == (ETH, 0.1, "long")
        assert (await asyncio.wait_for(balance, 5))["USDT"]["total"] < 10000
        # a later update reaches watch_orders too: fill of a resting order
        await h.control.call("freeze")
        limit = await ex.create_order(ETH, "limit", "sell", 0.1, 3100,
                                      params={"reduceOnly": True})
        await h.control.price("ETHUSDT", 3120)

        async def filled_seen() -> bool:  # ccxt's order cache follows the user stream
            return any(o["id"] == limit["id"] and o["status"] == "closed" for o in ex.orders)

        await wait_until(filled_seen)

    h.run(body())


def test_dropping_websockets_fails_pending_watch_then_reconnects(h: SimHarness) -> None:
    ex = h.exchange()

    async def body() -> None:
        await ex.watch_mark_price(BTC)
        await ex.watch_positions()
        await h.control.call("freeze")
        market = asyncio.ensure_future(ex.watch_mark_price(BTC))
        user = asyncio.ensure_future(ex.watch_orders())
        await wait_until(watching(ex, "markPrice:markPrice@" + BTC, "orders"))
        assert (await h.control.call("drop_ws"))["dropped"] == 2
        for pending in (market, user):
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 5)
        await h.control.call("unfreeze")
        assert (await ex.watch_mark_price(BTC))["markPrice"] > 0  # calling again reconnects

    h.run(body())


def test_raw_protocol_subscribe_reply_and_listen_key_expiry(h: SimHarness) -> None:
    async def body() -> None:
        headers = {"X-MBX-APIKEY": h.sim.config.api_key}
        async with aiohttp.ClientSession() as http:
            async with http.post(h.sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
                key = (await resp.json())["listenKey"]
            async with http.ws_connect(f"{h.sim.url}/market/ws/0") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"],
                                    "id": 7})
                assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
                event = await ws.receive_json(timeout=5)
                assert (event["e"], event["s"]) == ("markPriceUpdate", "BTCUSDT")
                await ws.send_json({"method": "SUBSCRIBE", "params": ["nope@x"], "id": 8})
                while (reply := await ws.receive_json(timeout=5)).get("id") != 8:
                    pass
                assert reply["error"]["code"] == 2
            async with http.ws_connect(f"{h.sim.url}/private/ws?listenKey={key}") as ws:
                await h.control.call("expire_listen_keys")
                msg = json.loads((await ws.receive(timeout=5)).data)
                assert msg == {"e": "listenKeyExpired", "E": msg["E"], "listenKey": key}
            async with http.put(h.sim.url + "/fapi/v1/listenKey", headers=headers,
                                data={"listenKey": key}) as resp:
                assert (resp.status, (await resp.json())["code"]) == (400, -1125)
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"{h.sim.url}/private/ws?listenKey={key}")

    h.run(body())
