"""Fault injection: what ccxt raises for each failure the simulator can produce."""

from __future__ import annotations

import time
from types import SimpleNamespace

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness
from trader.sim.faults import Failure, parse_fail, parse_retire

BTC = "BTC/USDT:USDT"


def test_skewed_clock_is_invalid_nonce_until_time_difference_loaded(h: SimHarness) -> None:
    ex = h.exchange(pro=False)
    adjusting = h.exchange(pro=False, options={"adjustForTimeDifference": True})

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("skew", seconds=15)
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):  # a NetworkError subclass
            await ex.fetch_balance()
        await ex.load_time_difference()  # fetch_time → options['timeDifference']
        assert abs(ex.options["timeDifference"] + 15000) < 2000
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
        await adjusting.load_markets()  # adjustForTimeDifference: load_markets syncs time
        assert (await adjusting.fetch_balance())["USDT"]["total"] == 10000.0
        await h.control.call("skew", seconds=-15)  # exchange behind us: "ahead" branch
        with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
            await ex.fetch_balance()

    h.run(body())


def test_retired_endpoint_is_exchange_not_available(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("retire", path="/fapi/v3/account")
        with pytest.raises(ccxt.ExchangeNotAvailable, match="404"):  # "retry me", wrongly
            await ex.fetch_balance()
        await h.control.call("retire", path="/fapi/v3/account", status=410)
        with pytest.raises(ccxt.ExchangeNotAvailable, match="410"):
            await ex.fetch_balance()
        # The original story: /fapi/v1/account no longer exists at all.
        with pytest.raises(ccxt.ExchangeNotAvailable, match="404"):
            await ex.fapiPrivateGetAccount()
        await h.control.call("clear")
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0

    h.run(body())


def test_fail_next_calls_then_success(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.load_markets()
        await h.control.call("fail", path="/fapi/v3/account", count=2, status=503)
        for _ in range(2):
            with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
                await ex.fetch_balance()
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
        await h.control.call("fail", path="/fapi/v3/account", count=1, code=-1003)
        with pytest.raises(ccxt.DDoSProtection):  # ccxt checks 429 before the code
            await ex.fetch_balance()
        await h.control.call("fail", path="/fapi/v1/order", method="POST", count=1, code=-1021)
        with pytest.raises(ccxt.InvalidNonce):
            await ex.create_order(BTC, "market", "buy", 0.01)
        assert (await h.control.state())["requests"]["GET /fapi/v3/account"] == 4

    h.run(body())


def test_reply_lost_after_the_order_was_placed(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                             status=503, after=True)
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "lost"})
        [entry] = await h.control.orders()
        assert (entry["clientOrderId"], entry["accepted"], entry["http_status"]) == (
            "lost", True, 503)
        assert [p["symbol"] for p in (await h.control.state())["positions"]] == ["BTCUSDT"]

    h.run(body())


def test_latency_beyond_timeout_is_request_timeout(h: SimHarness) -> None:
    ex = h.exchange(pro=False, timeout_ms=100)

    async def body() -> None:
        await h.control.call("latency", ms=400, path="/fapi/v1/time")
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_time()
        await h.control.call("clear")
        assert await ex.fetch_time() > 0

    h.run(body())


def test_weight_limit_and_recv_window() -> None:
    h = SimHarness(weight_limit=8)  # load_markets 1 + account 5 + time 1 + 1 + 1
    try:
        # The weight counts per fixed minute window, like Binance's: the meter's window clock is
        # pinned inside one minute, so a rollover mid-test cannot reset the count (it did, once).
        pinned = (int(time.time()) // 60) * 60_000 + 30_000
        h.sim.state.meter.clock = SimpleNamespace(now_ms=lambda: pinned)
        ex = h.exchange(pro=False)

        async def body() -> None:
            # Not in ccxt's USDⓈ-M table: a bare ExchangeError against real Binance too.
            with pytest.raises(ccxt.ExchangeError, match="-1131"):
                await ex.fetch_balance(params={"recvWindow": 70000})
            async with aiohttp.ClientSession() as http:
                statuses = []
                for _ in range(3):
                    async with http.get(h.sim.url + "/fapi/v1/time") as resp:
                        statuses.append(resp.status)
                        headers = resp.headers
            assert statuses[-1] == 429 and int(headers["Retry-After"]) >= 1
            assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 8
            with pytest.raises(ccxt.DDoSProtection):
                await ex.fetch_time()

        h.run(body())
    finally:
        h.close()


def test_cli_fault_specs() -> None:
    assert parse_retire("/fapi/v2/account") == (None, "/fapi/v2/account", Failure(status=404))
    assert parse_retire("GET /fapi/v2/account=410") == ("GET", "/fapi/v2/account",
                                                        Failure(status=410))
    assert parse_fail("POST /fapi/v1/order:2:-1021:after") == (
        "POST", "/fapi/v1/order", 2, Failure(code=-1021), True)
    assert parse_fail("/fapi/v1/*:1:503") == (None, "/fapi/v1/*", 1, Failure(status=503), False)
    with pytest.raises(ValueError):
        parse_fail("/fapi/v1/order:2")
