"""Simulator faults the kill path is tested against: orders in flight, IP bans, ids across runs,
non-finite numbers, live filter changes."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness, wait_until
from tests.stack import Sim, http_json, wait_for
from trader.sim import pipeline
from trader.sim.ban import parse_ban
from trader.sim.faults import parse_latency

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


async def _in_flight(h: SimHarness, count: int = 1) -> None:
    async def held() -> bool:
        return len((await h.control.state())["in_flight"]) >= count

    await wait_until(held, timeout=10)


# ---- 1. latency for one method and path ---------------------------------------------------


def test_new_order_latency_only_slows_new_orders(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("freeze")
        await h.control.call("latency", ms=1500, path="/fapi/v1/order", method="POST")
        buy = asyncio.ensure_future(ex.create_order(BTC, "market", "buy", 0.01,
                                                    params={"clientOrderId": "slow-1"}))
        await _in_flight(h)
        [held] = (await h.control.state())["in_flight"]
        assert (held["method"], held["path"], held["clientOrderId"]) == (
            "POST", "/fapi/v1/order", "slow-1")
        # Reads and cancels stay quick while the buy is in flight: nothing is on the account.
        assert await ex.fetch_positions() == []
        assert await ex.fetch_open_orders(BTC) == []
        await ex.cancel_all_orders(BTC)
        order = await buy  # then the buy lands
        assert order["status"] == "closed"
        [pos] = await ex.fetch_positions()
        assert pos["contracts"] == 0.01
        [entry] = [e for e in await h.control.orders() if e["path"] == "/fapi/v1/order"]
        assert entry["processed_ms"] - entry["time"] >= 1400
        assert (await h.control.state())["in_flight"] == []

    h.run(body())


def test_order_delayed_past_its_recv_window_is_refused_when_processed(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("latency", ms=1200, path="/fapi/v1/order", method="POST")
        with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
            await ex.create_order(BTC, "market", "buy", 0.01,
                                  params={"recvWindow": 1000, "clientOrderId": "late"})
        assert await ex.fetch_positions() == []
        order = await ex.create_order(BTC, "market", "buy", 0.01,
                                      params={"recvWindow": 5000, "clientOrderId": "in-time"})
        assert order["status"] == "closed"
        late, in_time = await h.control.orders()
        assert (late["clientOrderId"], late["accepted"], late["code"]) == ("late", False, -1021)
        assert (in_time["clientOrderId"], in_time["accepted"]) == ("in-time", True)
        # Only new orders are re-checked on processing: a slow read with the same window is fine.
        await h.control.call("latency", ms=1200, path="/fapi/v3/positionRisk")
        assert len(await ex.fetch_positions(params={"recvWindow": 1000})) == 1

    h.run(body())


def test_order_lands_after_the_client_gave_up(h: SimHarness) -> None:
    ex = h.exchange(pro=False, timeout_ms=300)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("latency", ms=900, path="/fapi/v1/order", method="POST")
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "lost"})

        async def landed() -> bool:
            return len((await h.control.state())["positions"]) == 1

        await wait_until(landed, timeout=10)
        [entry] = await h.control.orders()
        assert (entry["clientOrderId"], entry["accepted"]) == ("lost", True)

    h.run(body())


def test_latency_rules_by_method_are_listed_and_cleared(h: SimHarness) -> None:
    async def body() -> None:
        await h.control.call("latency", ms=3000, path="/fapi/v1/order", method="post")
        faults = (await h.control.state())["faults"]
        assert faults["path_latency"] == [{"method": "POST", "path": "/fapi/v1/order",
                                           "ms": 3000.0}]
        await h.control.call("clear")
        assert (await h.control.state())["faults"]["path_latency"] == []

    h.run(body())


# ---- 2. IP ban ------------------------------------------------------------------------------


async def _raw(h: SimHarness, path: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.get(h.sim.url + path) as resp:
        return resp.status, dict(resp.headers), await resp.json()


def test_ip_ban_418_with_retry_after_counts_every_request(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        ban = await h.control.call("ban", seconds=30, status=418, retry_after=True)
        assert ban["active"] and ban["status"] == 418
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            await ex.fetch_balance()
        status, headers, reply = await _raw(h, "/fapi/v1/time")
        assert status == 418 and reply["code"] == -1003
        assert reply["msg"] == (f"Way too many requests; IP(127.0.0.1) banned until "
                                f"{ban['until_ms']}. Please use the websocket for live updates "
                                f"to avoid bans.")
        assert 1 <= int(headers["Retry-After"]) <= 30
        state = await h.control.state()  # /_sim/* is never banned nor counted
        assert state["ban"]["requests_during_ban"] == 2
        assert state["ban"]["until_ms"] == ban["until_ms"]  # not extended by default
        await h.control.call("clear")
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
        assert (await h.control.state())["ban"]["requests_during_ban"] == 2

    h.run(body())


def test_ip_ban_429_without_retry_after_ends_by_itself(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("ban", seconds=1, status=429)
        status, headers, reply = await _raw(h, "/fapi/v1/ping")
        assert status == 429 and "Retry-After" not in headers
        assert reply == {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1)"
                         " is 2400 requests per minute. Please use the websocket for live "
                         "updates to avoid polling the API."}
        with pytest.raises(ccxt.DDoSProtection):  # binance raises it for 418 and 429 alike
            await ex.fetch_time()

        async def over() -> bool:
            return not (await h.control.state())["ban"]["active"]

        await wait_until(over, timeout=10)
        assert await ex.fetch_time() > 0
        assert (await h.control.state())["ban"]["requests_during_ban"] == 2

    h.run(body())


def test_ban_can_be_extended_by_each_request(h: SimHarness) -> None:
    async def body() -> None:
        ban = await h.control.call("ban", seconds=5, status=418, extend_s=60)
        await _raw(h, "/fapi/v1/time")
        assert (await h.control.state())["ban"]["until_ms"] == ban["until_ms"] + 60_000

    h.run(body())


def test_cli_specs_for_path_latency_and_ban() -> None:
    assert parse_latency("POST /fapi/v1/order=3000") == ("POST", "/fapi/v1/order", 3000.0)
    assert parse_latency("/fapi/v1/*=50") == (None, "/fapi/v1/*", 50.0)
    assert parse_ban("120") == (120.0, 418, False)
    assert parse_ban("8:429:retry-after") == (8.0, 429, True)
    for bad in ("/fapi/v1/order", "POST /fapi/v1/order=-1", "=5"):
        with pytest.raises(ValueError):
            parse_latency(bad)
    for bad in ("0", "5:403", "5:418:yes", "x"):
        with pytest.raises(ValueError):
            parse_ban(bad)


def test_standalone_sim_started_with_fault_flags() -> None:
    proc = Sim("--path-latency", "POST /fapi/v1/order=2500", "--ban", "60:429:retry-after")
    try:
        state = proc.state()
        assert state["faults"]["path_latency"] == [
            {"method": "POST", "path": "/fapi/v1/order", "ms": 2500.0}]
        assert state["ban"]["active"] and state["ban"]["status"] == 429
    finally:
        proc.close()


def test_standalone_sim_process_ban_and_order_latency(sim: Sim) -> None:
    sim.control("ban", {"seconds": 60, "status": 418, "retry_after": True})
    with pytest.raises(Exception, match="418"):
        http_json(sim.url + "/fapi/v1/time")
    assert sim.state()["ban"]["requests_during_ban"] == 1
    sim.control("clear")
    assert http_json(sim.url + "/fapi/v1/time")["serverTime"] > 0
    sim.control("latency", {"ms": 3000, "path": "/fapi/v1/order", "method": "POST"})
    assert wait_for(lambda: sim.state()["faults"]["path_latency"], 10, "latency rule")


# ---- 4. ids never repeat across runs ----------------------------------------------------------


def _one_run() -> tuple[list[int], dict[str, list[int]]]:
    h = SimHarness()
    try:
        ex = h.exchange(pro=False)

        async def body() -> tuple[list[int], dict[str, list[int]]]:
            await h.control.call("freeze")
            orders = []
            for symbol in (BTC, ETH, BTC, ETH):
                order = await ex.create_order(symbol, "market", "buy", 0.01)
                orders.append(int(order["id"]))
            trades = {s: [int(t["id"]) for t in await ex.fetch_my_trades(s)] for s in (BTC, ETH)}
            return orders, trades

        return h.run(body())
    finally:
        h.close()


def test_order_and_trade_ids_never_repeat_across_runs() -> None:
    orders1, trades1 = _one_run()
    orders2, trades2 = _one_run()
    for orders, trades in ((orders1, trades1), (orders2, trades2)):
        assert orders == sorted(set(orders)) and all(i < 2**53 for i in orders)
        for ids in trades.values():
            assert len(ids) == 2 and ids == sorted(set(ids))
        # Like Binance, trade ids count per symbol: two symbols' fills can share an id.
        assert trades[BTC][0] == trades[ETH][0]
    assert min(orders2) > max(orders1)
    for symbol in (BTC, ETH):
        assert min(trades2[symbol]) > max(trades1[symbol])


# ---- 5. non-finite numbers from the exchange -----------------------------------------------


def test_garbage_numbers_on_rest(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        # the mark as frozen: the market may have ticked once before the freeze (under load)
        frozen = float((await h.control.state())["marks"]["BTCUSDT"])
        await h.control.call("position", symbol="BTCUSDT", amount="0.01")
        await h.control.call("garbage", field="mark", value="NaN", count=1)
        assert math.isnan((await ex.fetch_mark_price(BTC))["markPrice"])
        assert (await ex.fetch_mark_price(BTC))["markPrice"] == frozen  # count used up
        await h.control.call("garbage", field="equity", value="Infinity")
        account = await ex.fapiPrivateV3GetAccount()
        assert account["totalWalletBalance"] == account["availableBalance"] == "Infinity"
        assert account["assets"][0]["marginBalance"] == "Infinity"
        assert (await ex.fapiPrivateV3GetBalance())[0]["balance"] == "Infinity"
        await h.control.call("garbage", field="position", value="0")
        assert await ex.fetch_positions() == []  # the position "vanished" for the client...
        state = await h.control.state()
        assert len(state["positions"]) == 1  # ...not on the exchange
        assert set(state["garbage"]) == {"equity", "position"}
        await h.control.call("clear")
        assert (await ex.fetch_positions())[0]["contracts"] == 0.01
        assert (await ex.fetch_balance())["USDT"]["total"] > 0

    h.run(body())


def test_garbage_numbers_on_the_websocket(h: SimHarness) -> None:
    async def body() -> None:
        await h.control.call("garbage", field="mark", value="NaN")
        await h.control.call("garbage", field="equity", value="")
        await h.control.call("garbage", field="position", value="Infinity")
        headers = {"X-MBX-APIKEY": h.sim.config.api_key}
        async with aiohttp.ClientSession() as http:
            async with http.post(h.sim.url + "/fapi/v1/listenKey", headers=headers) as resp:
                key = (await resp.json())["listenKey"]
            async with http.ws_connect(f"{h.sim.ws_url}/btcusdt@markPrice") as ws:
                mark = await ws.receive_json(timeout=10)
                assert (mark["e"], mark["p"]) == ("markPriceUpdate", "NaN")
            async with http.ws_connect(f"{h.sim.ws_url}/{key}") as ws:
                await h.control.call("position", symbol="BTCUSDT", amount="0.01")
                update = await ws.receive_json(timeout=10)
                assert update["e"] == "ACCOUNT_UPDATE"
                assert (update["a"]["B"][0]["wb"], update["a"]["B"][0]["cw"]) == ("", "")
                assert (update["a"]["P"][0]["pa"], update["a"]["P"][0]["ep"]) == (
                    "Infinity", "Infinity")

    h.run(body())


# ---- 6. filter change -------------------------------------------------------------------------


def test_filter_change_is_published_and_enforced(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("freeze")
        await ex.load_markets()
        assert ex.markets[BTC]["precision"]["amount"] == 0.001
        filters = await h.control.call("filters", symbol="BTCUSDT", stepSize="0.01")
        lot = next(f for f in filters if f["filterType"] == "LOT_SIZE")
        assert (lot["stepSize"], lot["minQty"]) == ("0.01", "0.01")
        # A session with the old markets sends 0.015: the exchange refuses the precision.
        with pytest.raises(ccxt.ExchangeError, match="-1111"):
            await ex.create_order(BTC, "market", "buy", 0.015)
        await ex.load_markets(reload=True)  # what the kill path must do
        market = ex.markets[BTC]
        assert market["precision"]["amount"] == 0.01 and market["limits"]["amount"]["min"] == 0.01
        assert (await ex.create_order(BTC, "market", "buy", 0.015))["filled"] == 0.01
        await h.control.call("filters", symbol="BTCUSDT", stepSize="0.01", minQty="0.02")
        with pytest.raises(ccxt.ExchangeError, match="-1013"):
            await ex.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
        with pytest.raises(ccxt.ExchangeError, match="-4003"):
            await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL",
                                           "type": "MARKET", "quantity": "0"})
        assert "BTCUSDT" in (await h.control.state())["filters"]
        await h.control.call("clear")
        await ex.load_markets(reload=True)
        assert ex.markets[BTC]["precision"]["amount"] == 0.001
        assert (await ex.create_order(BTC, "market", "sell", 0.005))["filled"] == 0.005

    h.run(body())


def test_bad_control_requests_answer_json(h: SimHarness) -> None:
    async def body() -> None:
        for action, fields in (("filters", {"symbol": "BTCUSDT", "stepSize": "-1"}),
                               ("filters", {"symbol": "BTCUSDT", "tickSize": "0.5"}),
                               ("garbage", {"field": "wallet", "value": "NaN"}),
                               ("ban", {"seconds": 5, "status": 403})):
            with pytest.raises(RuntimeError, match="-> 400"):
                await h.control.call(action, **fields)

    h.run(body())


def test_a_simulator_bug_answers_minus_1000_json(h: SimHarness,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(s: object, p: object) -> object:
        raise ZeroDivisionError("a bug in the simulator")

    route = pipeline.ROUTES[("GET", "/fapi/v1/time")]
    monkeypatch.setitem(pipeline.ROUTES, ("GET", "/fapi/v1/time"),
                        dataclasses.replace(route, handler=broken))
    ex = h.exchange(pro=False)

    async def body() -> None:
        status, _, reply = await _raw(h, "/fapi/v1/time")
        assert (status, reply) == (500, {
            "code": -1000, "msg": "An unknown error occured while processing the request."})
        with pytest.raises(ccxt.OperationFailed, match="-1000"):
            await ex.fetch_time()

    h.run(body())
    assert h.sim.state.bugs == 2
    h.sim.state.bugs = 0  # the bugs were injected: the fixture's zero-bug check is for others
