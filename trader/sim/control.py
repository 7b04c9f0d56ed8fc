"""The unsigned ``/_sim/`` control API (loopback only): faults, prices, seeding, inspection.

Actions take an optional JSON object body and answer JSON; the HTTP method does not matter
(test helpers send GET when they have no body).

    GET  /_sim/state                 positions, open orders, open_algo_orders (algo_orders: all),
                                     balances, request counts, faults, ban, garbage, filters,
                                     in_flight (requests held by latency)
    GET  /_sim/orders                every order request received (clientOrderId, outcome,
                                     recv_ns); {"since": n} returns entries n.. only
    POST /_sim/retire                {"path", "method"?, "status"? (404) | "code"?}
    POST /_sim/fail                  {"path", "method"?, "count", "status"? | "code"?, "after"?}
    POST /_sim/latency               {"ms", "path"?, "method"?}: hold matching requests in
                                     flight for ms before processing (none: every call; e.g.
                                     {"ms": 3000, "path": "/fapi/v1/order", "method": "POST"}
                                     slows new orders only; ms 0 removes that rule)
    POST /_sim/ban                   {"seconds", "status"? (418) | 429, "retry_after"? (false),
                                     "extend_s"? (0)}: answer every REST call like Binance's
                                     IP ban; state "ban" counts requests_during_ban
    POST /_sim/skew                  {"seconds"}
    POST /_sim/garbage               {"field": "mark"|"equity"|"position", "value": "NaN"|
                                     "Infinity"|"0"|""|null, "count"?}: the exchange sends that
                                     value in place of the field's numbers, REST and WebSocket
                                     (where: garbage.py), for count replies or until cleared
    POST /_sim/filters               {"symbol", "stepSize"?, "minQty"?, "maxQty"?,
                                     "marketMaxQty"?, "minNotional"?}: change LOT_SIZE /
                                     MARKET_LOT_SIZE (and MIN_NOTIONAL) live: exchangeInfo shows
                                     it, orders are checked against it (quantityPrecision
                                     follows stepSize: -1111, -4023, -1013, -4005, -4164)
    POST /_sim/clear                 clear retire/fail/latency rules, the ban, garbage, filter
                                     changes and the skew
    POST /_sim/drop_ws               close every WebSocket connection now
    POST /_sim/freeze | /_sim/unfreeze   stop / restart the mark-price random walk
    POST /_sim/price                 {"symbol", "price", "spread"?}: set, publish, match at once
                                     (the reply's published_ns: time.time_ns() at publish)
    POST /_sim/position              {"symbol", "amount", "entry_price"?, "position_side"?}
    POST /_sim/order                 a resting order placed directly (same fields as the REST
                                     endpoint, JSON, no signature; Binance checks still apply)
    POST /_sim/algo                  an algo (conditional) order placed directly: the fields of
                                     POST /fapi/v1/algoOrder ("algoType" defaults to
                                     CONDITIONAL), e.g. {"symbol", "side", "type":
                                     "STOP_MARKET", "quantity", "triggerPrice",
                                     "workingType"?}; it triggers when /_sim/price (or the
                                     random walk) moves the mark across triggerPrice
    POST /_sim/expire_listen_keys    expire every listen key now (sends listenKeyExpired)
    POST /_sim/liquidity             {"symbol", "qty"}: a thin book, ``qty`` at the touch per
                                     order (bigger MARKET orders: -4131; limits fill partially);
                                     "qty": null restores the run's profile;
                                     {"profile": "deep"|"realistic", "symbol"?}: the ladder of
                                     every (or one) symbol (depth.py); no body: the current one
    POST /_sim/funding               settle funding now at the current estimates (FUNDING_FEE rows,
                                     wallet, ACCOUNT_UPDATE); answers every FUNDING_FEE row
    POST /_sim/dual                  {"dual": bool}: the account's position mode (hedge = true),
                                     set directly (test setup: open positions are allowed)
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from trader.kernel.errors import FlatguardError
from trader.sim import algo_rest, shapes
from trader.sim.errors import BinanceError
from trader.sim.faults import Failure
from trader.sim.market import FILTER_KEYS, instrument
from trader.sim.params import Params, order_request
from trader.sim.state import STATE_KEY, SimState

Body = dict[str, Any]
Action = Callable[[SimState, Body], Awaitable[object]]
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


class BadControlRequest(FlatguardError, ValueError):
    """A malformed request to the sim's control API. Policy: reject it (HTTP 400)."""


def _dec(body: Body, key: str) -> Decimal:
    try:
        return Decimal(str(body[key]))
    except (KeyError, InvalidOperation):
        raise BadControlRequest(f"'{key}' must be a number") from None


def _failure(body: Body, default_status: int) -> Failure:
    if body.get("code") is not None:
        return Failure(code=int(body["code"]), status=body.get("status"))
    return Failure(status=int(body.get("status", default_status)))


def state_view(s: SimState) -> dict[str, object]:
    acct = s.account
    return {
        "server_time": s.clock.now_ms(),
        "skew_ms": s.clock.skew_ms,
        "frozen": s.frozen,
        "dual_side": acct.dual_side,
        "liquidity": liquidity_view(s),
        "positions": [shapes.position_risk(acct, p, v2=True) for p in acct.open_positions()],
        "open_orders": [shapes.order(o) for o in acct.open_orders()],
        "open_algo_orders": [algo_rest.shape(s, a) for a in s.algos.open_orders()],
        "algo_orders": [algo_rest.shape(s, a) for a in s.algos.orders.values()],
        "balances": shapes.balance(acct),
        "wallet": str(acct.wallet),
        "marks": {sym: str(q.mark) for sym, q in s.feed.quotes.items()},
        "last_prices": {sym: str(q.last_price) for sym, q in s.feed.quotes.items()},
        "funding_rates": {sym: str(q.funding_rate) for sym, q in s.feed.quotes.items()},
        "speed": s.config.speed,
        "market_ms": s.market_ms,
        "ticks": s.ticks,
        "liquidations": s.liquidator.liquidations,
        "leverage": dict(acct.leverage),
        "requests": dict(s.requests),
        "orders_received": sum(1 for e in s.order_log
                               if e["method"] == "POST" and e["path"] == "/fapi/v1/order"),
        "algo_orders_received": sum(1 for e in s.order_log if e["method"] == "POST"
                                    and e["path"] == "/fapi/v1/algoOrder"),
        "countdowns": dict(s.countdowns.deadlines),
        "countdowns_fired": dict(s.countdowns.fired),
        "listen_keys": len(s.hub.listen_keys),
        "ws_connections": len(s.hub.conns),
        "faults": s.faults.snapshot(),
        "ban": s.ban.snapshot(s.clock.now_ms()),
        "garbage": s.garbage.snapshot(),
        "filters": {sym: i.info()["filters"] for sym, i in acct.filters.items()},
        "in_flight": list(s.in_flight.values()),
        "flat_since_ns": s.flat_since_ns,
        "bugs": s.bugs,
        "order_counts": {"10s": s.meter.orders_10s, "1m": s.meter.orders},
    }


async def _state(s: SimState, b: Body) -> object:
    return state_view(s)


async def _orders(s: SimState, b: Body) -> object:
    return s.order_log[int(b.get("since", 0)):]


async def _retire(s: SimState, b: Body) -> object:
    s.faults.retire(str(b["path"]), method=b.get("method"), failure=_failure(b, 404))
    return s.faults.snapshot()


async def _fail(s: SimState, b: Body) -> object:
    s.faults.fail(str(b["path"]), int(b.get("count", 1)), _failure(b, 503),
                  method=b.get("method"), after=bool(b.get("after", False)))
    return s.faults.snapshot()


async def _latency(s: SimState, b: Body) -> object:
    s.faults.set_latency(float(b["ms"]), b.get("path"), b.get("method"))
    return s.faults.snapshot()


async def _ban(s: SimState, b: Body) -> object:
    retry_after = b.get("retry_after", False)
    if not isinstance(retry_after, bool):
        raise BadControlRequest("'retry_after' must be true or false")
    s.ban.start(s.clock.now_ms(), float(b["seconds"]), int(b.get("status", 418)),
                retry_after=retry_after, extend_s=float(b.get("extend_s", 0)))
    return s.ban.snapshot(s.clock.now_ms())


async def _garbage(s: SimState, b: Body) -> object:
    count = b.get("count")
    s.garbage.set(str(b["field"]), b["value"], int(count) if count is not None else None)
    return s.garbage.snapshot()


async def _filters(s: SimState, b: Body) -> object:
    inst = s.account.instrument(str(b.get("symbol", "")))
    changes = {k: _dec(b, k) for k in b if k != "symbol"}
    if not changes:
        raise BadControlRequest(f"give at least one of {', '.join(FILTER_KEYS)}")
    s.account.filters[inst.symbol] = inst.with_filters(changes)
    return s.account.instrument(inst.symbol).info()["filters"]


async def _skew(s: SimState, b: Body) -> object:
    s.clock.set_skew(float(b["seconds"]))
    return {"skew_ms": s.clock.skew_ms}


async def _clear(s: SimState, b: Body) -> object:
    s.faults.clear()
    s.ban.clear()
    s.garbage.clear()
    s.account.filters.clear()
    s.clock.set_skew(0)
    return s.faults.snapshot()


async def _drop_ws(s: SimState, b: Body) -> object:
    return {"dropped": s.hub.drop_all()}


async def _freeze(s: SimState, b: Body) -> object:
    s.frozen = True
    return {"frozen": True}


async def _unfreeze(s: SimState, b: Body) -> object:
    s.frozen = False
    return {"frozen": False}


async def _price(s: SimState, b: Body) -> object:
    sym = instrument(str(b.get("symbol", ""))).symbol
    spread = _dec(b, "spread") if "spread" in b else None
    s.feed.set_price(sym, _dec(b, "price"), spread)
    published_ns = time.time_ns()
    s.tick([sym])
    q = s.feed.quotes[sym]
    return {"symbol": sym, "mark": str(q.mark), "bid": str(q.bid), "ask": str(q.ask),
            "published_ns": published_ns}


async def _position(s: SimState, b: Body) -> object:
    entry = _dec(b, "entry_price") if b.get("entry_price") is not None else None
    pos = s.account.seed_position(str(b.get("symbol", "")), _dec(b, "amount"), entry,
                                  str(b.get("position_side", "BOTH")))
    return shapes.position_risk(s.account, pos, v2=True)


async def _order(s: SimState, b: Body) -> object:
    params = Params({k: str(v).lower() if isinstance(v, bool) else str(v)
                     for k, v in b.items()})
    return shapes.order(s.account.place(order_request(params)))


async def _algo(s: SimState, b: Body) -> object:
    params = Params({"algoType": "CONDITIONAL"} | {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in b.items()})
    return algo_rest.shape(s, s.algos.place(algo_rest.parse(s, params)))


def liquidity_view(s: SimState) -> dict[str, object]:
    """The run's profile and, per symbol, the thin override (qty at the touch) if any."""
    return {"profile": s.feed.profile,
            "thin": {sym: str(q.ladder.top) for sym, q in s.feed.quotes.items()
                     if not q.ladder.eaten}}


async def _liquidity(s: SimState, b: Body) -> object:
    if "profile" in b:
        sym = instrument(str(b["symbol"])).symbol if b.get("symbol") else None
        s.feed.set_profile(str(b["profile"]), sym)
    elif "qty" in b:
        qty = _dec(b, "qty") if b.get("qty") is not None else None
        s.account.set_liquidity(str(b.get("symbol", "")), qty)
    elif b:
        raise BadControlRequest("give 'qty' (with 'symbol') or 'profile'")
    return liquidity_view(s)


async def _funding(s: SimState, b: Body) -> object:
    s.funding.settle(s.clock.now_ms())
    s.liquidator.check()
    return [shapes.income(i) for i in s.account.income if i.income_type == "FUNDING_FEE"]


async def _dual(s: SimState, b: Body) -> object:
    if not isinstance(b.get("dual"), bool):
        raise BadControlRequest("'dual' must be true or false")
    s.account.dual_side = b["dual"]
    return {"dual_side": s.account.dual_side}


async def _expire(s: SimState, b: Body) -> object:
    return {"expired": s.hub.expire_due(force=True)}


ACTIONS: dict[str, Action] = {
    "state": _state, "orders": _orders, "retire": _retire, "fail": _fail,
    "latency": _latency, "skew": _skew, "clear": _clear, "drop_ws": _drop_ws,
    "freeze": _freeze, "unfreeze": _unfreeze, "price": _price, "position": _position,
    "order": _order, "expire_listen_keys": _expire, "liquidity": _liquidity, "dual": _dual,
    "ban": _ban, "algo": _algo, "garbage": _garbage, "filters": _filters,
    "funding": _funding,
}


async def handle(request: web.Request) -> web.StreamResponse:
    if request.remote not in _LOOPBACK:
        return web.json_response({"error": "control API is loopback-only"}, status=403)
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        return web.json_response({"error": "unknown control action"}, status=404)
    try:
        body: Body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise BadControlRequest("body must be a JSON object")
        result = await action(request.app[STATE_KEY], body)
        request.app[STATE_KEY].note_flat()
    except BinanceError as err:
        return web.json_response(err.body(), status=err.status)
    except (BadControlRequest, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
    except Exception as exc:  # a simulator bug: a JSON answer, never a traceback
        request.app[STATE_KEY].bug(f"control action {request.match_info['action']}")
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)
    return web.json_response(result)
