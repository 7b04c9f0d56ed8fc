"""Taxonomy rows and guard policy added for the user-data stream and the event feed (pure)."""

from __future__ import annotations

import asyncio
import json

import ccxt
import pytest

from trader.exchange import errors as E
from trader.exchange.calls import Guard
from trader.exchange.clock import ExchangeClock
from trader.exchange.errors import Kind, classify
from trader.exchange.ratelimit import RateLimits
from trader.exchange.venues.binanceusdm import RULES

EX = ccxt.binanceusdm({"apiKey": "k", "secret": "s"})
URL = "http://127.0.0.1:9/fapi/v1/listenKey?timestamp=1&signature=abc"


def code_1125() -> BaseException:
    body = json.dumps({"code": -1125, "msg": "This listenKey does not exist."})
    try:
        EX.handle_errors(400, "Bad Request", URL, "PUT", {}, body, json.loads(body), {}, None)
    except Exception as e:  # noqa: BLE001
        return e
    raise AssertionError("ccxt raised nothing")


@pytest.mark.parametrize("call", sorted(E.USER_STREAM_CALLS))
def test_1125_restarts_the_user_stream(call: str) -> None:
    c = classify(call, code_1125(), RULES)
    assert (c.kind, c.outcome) == (Kind.TRANSIENT, "relisten")


@pytest.mark.parametrize("call", ["fetch_balance", "create_order", "fetch_positions"])
def test_1125_elsewhere_is_fatal(call: str) -> None:
    assert classify(call, code_1125(), RULES).kind is Kind.FATAL


def _guard(fatal: list[E.Classification], budget: int = 2) -> Guard:
    return Guard(RateLimits(), ExchangeClock(None), rules=RULES, retry_budget=budget,
                 retry_window=3600, on_fatal=fatal.append)


async def _fail() -> None:
    raise ccxt.NetworkError("socket closed")


def test_uncounted_transient_never_spends_the_budget() -> None:
    fatal: list[E.Classification] = []
    g = _guard(fatal)

    async def go() -> None:
        for _ in range(10):
            with pytest.raises(E.Transient):
                await g.attempt("watch_orders", _fail, counted=False)
        with pytest.raises(E.Transient):
            await g.attempt("watch_orders", _fail)
        with pytest.raises(E.Fatal):  # counted: the second in a row spends a budget of 2
            await g.attempt("watch_orders", _fail)

    asyncio.run(go())
    assert len(fatal) == 1 and fatal[0].matched == "budget"


def test_abandoned_guard_stops_retrying() -> None:
    fatal: list[E.Classification] = []
    g = _guard(fatal, budget=1000)
    g.abandon()

    async def go() -> None:
        with pytest.raises(E.Transient):
            await asyncio.wait_for(g.call("fetch_balance", _fail), 10)

    asyncio.run(go())
    assert not fatal
