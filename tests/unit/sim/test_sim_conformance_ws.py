"""More of Binance's clients as judges: the official SDK's WebSocket stream client (the
``/market``, ``/public`` and ``/private`` combined streams, messages validated by its models),
python-binance and a hand-signed client for parameters in the request body, and ccxt's
``newOrderRespType``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
import requests

from tests import sdk_sim
from tests.sdk_sim import sdk_client, signed
from tests.sim_harness import SimHarness, ThreadedSim

t = sdk_sim.t  # the fixtures the conformance modules share


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def test_sdk_streams_market_public_private(t: ThreadedSim,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK pads every SUBSCRIBE with a 0.5 s sleep (Binance takes 10 messages/s per
    # connection): 2 s of this test for five subscriptions. 0.1 s keeps within that limit.
    monkeypatch.setattr("binance_common.websocket.SUBSCRIBE_MESSAGE_DELAY_SECONDS", 0.1)
    t.call("unfreeze")  # the market ticks: depth, kline and mark streams publish
    client = sdk_client(t)
    got: dict[str, list[Any]] = {}

    def sink(name: str) -> Callable[[Any], None]:
        return lambda message: got.setdefault(name, []).append(message)

    async def body() -> None:
        conn = await client.websocket_streams.create_connection()
        try:
            (await conn.aggregate_trade_streams(symbol="btcusdt")).on("message", sink("agg"))
            (await conn.partial_book_depth_streams(symbol="btcusdt", levels=5,
                                                   update_speed="100ms")).on(
                "message", sink("depth"))
            (await conn.kline_candlestick_streams(symbol="btcusdt", interval="1m")).on(
                "message", sink("kline"))
            (await conn.mark_price_stream(symbol="ethusdt")).on("message", sink("mark"))
            key = client.rest_api.start_user_data_stream().data().listen_key
            (await conn.user_data(key)).on("message", sink("user"))
            await _until(lambda: {"depth", "kline", "mark"} <= set(got))
            client.rest_api.new_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                      quantity=0.01)
            await _until(lambda: "agg" in got and len(got.get("user", [])) >= 3)
        finally:
            await conn.close_connection(close_session=True)

    asyncio.run(asyncio.wait_for(body(), 30))
    depth = got["depth"][-1]
    assert (depth.e, depth.s, len(depth.b), len(depth.a)) == ("depthUpdate", "BTCUSDT", 5, 5)
    kline = got["kline"][-1].k
    assert (kline.i, kline.s, kline.x) == ("1m", "BTCUSDT", False)
    assert got["mark"][-1].s == "ETHUSDT"
    agg = got["agg"][0]
    assert (agg.e, agg.q, agg.m) == ("aggTrade", "0.010", False)
    events = {type(u.actual_instance).__name__ for u in got["user"]}
    assert {"OrderTradeUpdate", "AccountUpdate"} <= events
    paths = {c for c in t.state()["requests"]}
    assert "POST /fapi/v1/listenKey" in paths


def test_stream_names_are_checked(t: ThreadedSim) -> None:
    async def body() -> None:
        base = t.url.replace("http://", "ws://")
        async with aiohttp.ClientSession() as session:
            for bad in ("btcusdt@depth7", "btcusdt@kline_7m", "nopeusdt@aggTrade"):
                async with session.get(f"{base}/public/stream?streams={bad}") as resp:
                    assert resp.status == 400 and (await resp.json())["code"] == -1121
            async with session.ws_connect(f"{base}/market/ws") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1M"],
                                    "id": 1})
                assert (await ws.receive_json(timeout=5)) == {"result": None, "id": 1}

    asyncio.run(asyncio.wait_for(body(), 20))


def test_percent_encoding_in_the_body(t: ThreadedSim) -> None:
    t.call("price", symbol="BTCUSDT", price="60000")
    # A client that signs what it sends: parameters split between the query and the body,
    # a percent-encoded client id in the body.
    ok = signed(t, "POST", "/fapi/v1/order", "symbol=BTCUSDT&side=BUY",
                "type=LIMIT&quantity=0.01&price=59000&timeInForce=GTC"
                "&newClientOrderId=y%3A1%2F2")
    assert ok.status_code == 200, ok.text
    assert ok.json()["clientOrderId"] == "y:1/2" and ok.json()["status"] == "NEW"
    cancelled = signed(t, "DELETE", "/fapi/v1/order", "symbol=BTCUSDT",
                       "origClientOrderId=y%3A1%2F2")
    assert cancelled.json()["status"] == "CANCELED"
    # The same id signed in its decoded form: Binance checks the bytes sent, -1022.
    stamp = int(time.time() * 1000)
    decoded = f"symbol=BTCUSDT&origClientOrderId=y:1/2&timestamp={stamp}"
    sig = hmac.new(b"sim-secret", decoded.encode(), hashlib.sha256).hexdigest()
    reply = requests.get(f"{t.url}/fapi/v1/order?symbol=BTCUSDT&origClientOrderId=y%3A1%2F2"
                         f"&timestamp={stamp}&signature={sig}",
                         headers={"X-MBX-APIKEY": "sim-key"}, timeout=10)
    assert (reply.status_code, reply.json()["code"]) == (400, -1022)


def test_python_binance_body_params(t: ThreadedSim) -> None:
    from binance.client import Client  # ~0.5 s to import: only where it is used
    from binance.exceptions import BinanceAPIException

    t.call("price", symbol="BTCUSDT", price="60000")
    client = Client(t.sim.config.api_key, t.sim.config.api_secret, ping=False)
    client.FUTURES_URL = f"{t.url}/fapi"  # loopback only
    try:
        placed = client.futures_create_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                             quantity="0.01", price="59000",
                                             timeInForce="GTC", newClientOrderId="pb-1")
        assert placed["status"] == "NEW"  # POST parameters travel in the body
        assert client.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"])[
            "clientOrderId"] == "pb-1"
        assert client.futures_cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])[
            "status"] == "CANCELED"
        # python-binance signs body values before percent-encoding them (symbol excepted):
        # Binance verifies the bytes sent and refuses it, as the sim does.
        with pytest.raises(BinanceAPIException) as refused:
            client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                        quantity="0.01", newClientOrderId="pb:1/2")
        assert refused.value.code == -1022
        assert client.futures_position_information(symbol="BTCUSDT") == []  # v3: flat
    finally:
        client.close_connection()


def test_ccxt_asks_for_result(h: SimHarness) -> None:
    """ccxt 4.5.90 sends newOrderRespType=RESULT for swap orders, single and batched, so the
    ACK default leaves the integration tests' view of fills unchanged."""
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await h.control.price("BTCUSDT", 60000)
        order = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        assert order["status"] == "closed" and order["filled"] == 0.01
        batch = await ex.create_orders([
            {"symbol": "BTC/USDT:USDT", "type": "limit", "side": "buy", "amount": 0.01,
             "price": 59000},
            {"symbol": "BTC/USDT:USDT", "type": "market", "side": "sell", "amount": 0.01,
             "params": {"reduceOnly": True}},
        ])
        assert [o["status"] for o in batch] == ["open", "closed"]
        log = await h.control.orders()
        assert log[0]["newOrderRespType"] == "RESULT"
        with pytest.raises(ccxt.BadRequest, match="-1100"):
            await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01,
                                  params={"clientOrderId": "c" * 40})
        state = await h.control.state()
        assert state["bugs"] == 0

    h.run(body())
