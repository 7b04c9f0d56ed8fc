"""The ccxt session factory: URL override, error table, limiter, testnet."""

from __future__ import annotations

import json

import ccxt.async_support as ccxt
import pytest

from tests.sim_harness import SimHarness
from trader.exchange.session import build_exchange, default_ws_url

LOCAL = "http://127.0.0.1:8123"
REAL_FAPI = "https://fapi.binance.com/fapi/v1/order"
# Codes whose ccxt class matters to the error taxonomy (design: "code-first, per call").
CODES = [-1003, -1021, -1022, -1111, -2011, -2013, -2015, -2019, -2022, -4003, -4005, -4046,
         -4059, -4131, -4164, -1013, -1102, -1106]


def _urls(value: object) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    return [value] if isinstance(value, str) else []


def _raised(ex: ccxt.Exchange, url: str, code: int) -> type[Exception]:
    body = json.dumps({"code": code, "msg": "x"})
    try:
        ex.handle_errors(400, "Bad Request", url, "POST", {}, body, json.loads(body), {}, "")
    except Exception as exc:  # noqa: BLE001 - the class is what is under test
        return type(exc)
    raise AssertionError(f"{code} raised nothing")


def test_every_url_is_replaced_and_ws_derived() -> None:
    ex = build_exchange("binanceusdm", url=LOCAL, pro=True)
    urls = _urls(ex.urls["api"]) + _urls(ex.urls["test"]) + _urls(ex.urls["demo"])
    assert urls and all(u.startswith(("http://127.0.0.1:8123/", "ws://127.0.0.1:8123/"))
                        for u in urls)
    assert ex.urls["api"]["fapiPrivateV3"] == LOCAL + "/fapi/v3"
    assert ex.urls["api"]["ws"]["linear"] == default_ws_url(LOCAL) == "ws://127.0.0.1:8123/ws"
    custom = build_exchange("binanceusdm", url=LOCAL, ws_url="ws://127.0.0.1:9/x/ws", pro=True)
    assert custom.urls["api"]["ws"]["linear"] == "ws://127.0.0.1:9/x/ws"
    assert ex.options["fetchCurrencies"] is False
    assert ex.options["fetchOpenOrders"]["warnWithoutSymbol"] is False
    assert (ex.options["defaultType"], ex.options["defaultSubType"]) == ("swap", "linear")


def test_local_url_gets_the_real_usdm_error_classes() -> None:
    real = ccxt.binanceusdm()
    local = build_exchange("binanceusdm", url=LOCAL)
    for code in CODES:
        assert _raised(local, LOCAL + "/fapi/v1/order", code) is _raised(real, REAL_FAPI, code)
    assert _raised(local, LOCAL + "/fapi/v1/order", -2019) is ccxt.InsufficientFunds
    assert _raised(local, LOCAL + "/fapi/v1/order", -2022) is ccxt.InvalidOrder
    # Without the fix ccxt 4.5.90 degrades them: the reason the factory patches the lookup.
    plain = ccxt.binanceusdm()
    plain.urls["api"] = {k: LOCAL + "/fapi/v1" for k in plain.urls["api"]}
    assert _raised(plain, LOCAL + "/fapi/v1/order", -2019) is ccxt.ExchangeError


def test_rate_limiter_and_validation() -> None:
    assert build_exchange("binanceusdm", url=LOCAL).enableRateLimit is False
    assert build_exchange("binanceusdm").enableRateLimit is True
    assert build_exchange("binanceusdm", url=LOCAL, rate_limit=True).enableRateLimit is True
    assert build_exchange("binanceusdm", recv_window_ms=60000).options["recvWindow"] == 60000
    with pytest.raises(ValueError, match="-1131"):
        build_exchange("binanceusdm", recv_window_ms=60001)
    with pytest.raises(ValueError, match="unknown ccxt exchange"):
        build_exchange("nosuchexchange")


def test_testnet_and_other_exchanges() -> None:
    demo = build_exchange("binanceusdm", testnet=True)
    assert demo.urls["api"]["fapiPrivate"].startswith("https://demo-fapi.binance.com/")
    assert demo.options["enableDemoTrading"] is True
    demo_ws = build_exchange("binanceusdm", testnet=True, pro=True)
    assert demo_ws.urls["api"]["ws"]["linear"].startswith("wss://fstream.binancefuture.com")
    bybit = build_exchange("bybit", testnet=True)
    assert all("testnet" in u for u in _urls(bybit.urls["api"]))
    local = build_exchange("okx", url=LOCAL)
    assert _urls(local.urls["api"]) == [LOCAL]
    assert local.enableRateLimit is False


def test_against_the_sim_margin_and_reduce_only_classes(h: SimHarness) -> None:
    ex = h.exchange(pro=False)

    async def body() -> None:
        await ex.set_leverage(1, "BTC/USDT:USDT")
        with pytest.raises(ccxt.InsufficientFunds):  # 0.5 BTC at 1x: ~30,000 USDT > 10,000
            await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.5)
        with pytest.raises(ccxt.InvalidOrder):
            await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01,
                                  params={"reduceOnly": True})

    h.run(body())
