"""Simulator faults the kill path is tested against: orders in flight, IP bans, ids across runs,
non-finite numbers, live filter changes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.stack import Sim, http_json, wait_for
from trader.sim.testing import SimHarness, wait_until

BTC = "BTC/USDT:USDT"


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


def test_standalone_sim_process_ban_and_order_latency(sim: Sim) -> None:
    sim.control("ban", {"seconds": 60, "status": 418, "retry_after": True})
    with pytest.raises(Exception, match="418"):
        http_json(sim.url + "/fapi/v1/time")
    assert sim.state()["ban"]["requests_during_ban"] == 1
    sim.control("clear")
    assert http_json(sim.url + "/fapi/v1/time")["serverTime"] > 0
    sim.control("latency", {"ms": 3000, "path": "/fapi/v1/order", "method": "POST"})
    assert wait_for(lambda: sim.state()["faults"]["path_latency"], 10, "latency rule")
