"""The REST request pipeline: what happens to every request before and after its handler.

Per request, in Binance's order: count it; answer it with the ban while an IP ban lasts
(``ban.py``); answer retired endpoints; find the route (unknown path: HTTP 404, empty body, like
a removed endpoint); meter the request weight (-1003 / 429 beyond the limit); inject "before"
failures; authenticate, timestamp window included (the gateway's check at receipt). Then the
request is *in flight* for any configured latency (``faults.py``); new orders are checked
against their recvWindow again when they are processed (the matching engine's check); the
handler runs; "after" failures are injected (the request took effect, the reply is lost).

A bug in the simulator answers Binance's -1000 JSON (HTTP 500), never a traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from urllib.parse import parse_qsl

from aiohttp import web

from trader.sim import algo_rest, batch, history, rest
from trader.sim.auth import check_api_key, check_signed, check_window
from trader.sim.errors import BinanceError
from trader.sim.params import Params
from trader.sim.state import STATE_KEY, SimState

ROUTES: dict[tuple[str, str], rest.Route] = (rest.ROUTES | algo_rest.ROUTES | batch.ROUTES
                                             | history.ROUTES)
# Order-changing requests kept in /_sim/orders.
ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/allOpenOrders", "/fapi/v1/algoOrder",
                         "/fapi/v1/algoOpenOrders", "/fapi/v1/batchOrders"})
_LOGGED = ("symbol", "side", "type", "quantity", "price", "timeInForce", "reduceOnly",
           "positionSide", "orderId", "algoType", "triggerPrice", "workingType",
           "closePosition", "algoId", "recvWindow", "timestamp", "newOrderRespType")
_ids = itertools.count(1)


def _json(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=headers)


async def dispatch(request: web.Request) -> web.StreamResponse:
    recv_ns = time.time_ns()  # receipt time, for latency benchmarks (same clock as the client)
    s: SimState = request.app[STATE_KEY]
    try:
        response = await _dispatch(request, s, recv_ns)
    except Exception:  # a simulator bug: answer like Binance's backend, log and count it
        s.bug(f"{request.method} {request.path}")
        response = _json(500, BinanceError(-1000).body(), {})
    s.note_flat()
    return response


async def _dispatch(request: web.Request, s: SimState, recv_ns: int) -> web.StreamResponse:
    method, path = request.method, request.path
    s.requests[f"{method} {path}"] += 1
    now = s.clock.now_ms()
    if s.ban.active(now):
        return s.ban.refuse(now, request.remote, s.config.weight_limit)
    retired = s.faults.retired_for(method, path)
    if retired is not None:
        return retired.response()
    route = ROUTES.get((method, path))
    if route is None:
        return web.Response(status=404)

    # The signature covers the bytes as sent: the raw (still percent-encoded) query string,
    # not aiohttp's decoded one, and the raw body.
    raw_query = request.raw_path.partition("?")[2]
    raw_body = (await request.read()).decode("utf-8", "surrogateescape") \
        if request.can_read_body else ""
    # Binance: a parameter sent in both the query string and the body is taken from the query.
    params = Params(dict(parse_qsl(raw_body, keep_blank_values=True))
                    | dict(parse_qsl(raw_query, keep_blank_values=True)))
    try:
        weight = route.weight(params) if callable(route.weight) else route.weight
    except BinanceError:
        weight = 1  # a malformed limit: the handler refuses it with Binance's error
    orders_10s, orders_1m = batch.order_counts(method, path)
    is_order = orders_1m > 0  # new or modified orders: re-checked against recvWindow too
    within = s.meter.add(weight)
    too_many = s.meter.add_orders(orders_10s, orders_1m) if is_order else None
    headers = {"X-MBX-USED-WEIGHT-1M": str(s.meter.used)}
    if is_order:
        headers["X-MBX-ORDER-COUNT-10S"] = str(s.meter.orders_10s)
        headers["X-MBX-ORDER-COUNT-1M"] = str(s.meter.orders)
    entry = _log_entry(s, method, path, params, recv_ns) if path in ORDER_PATHS \
        and method != "GET" else None
    if not within:
        err = BinanceError(-1003)
        return _finish(entry, _json(429, err.body(), headers | {
            "Retry-After": str(s.meter.retry_after_s())}), err.code)
    if too_many is not None:
        err = BinanceError(-1015, too_many)
        return _finish(entry, _json(err.status, err.body(), headers), err.code)
    failure = s.faults.take(method, path, after=False)
    if failure is not None:
        return _finish(entry, failure.response(), failure.code)
    try:
        if route.security == "SIGNED":
            check_signed(request.headers, raw_query, raw_body, params.values, s.creds, s.clock)
        elif route.security == "USER_STREAM":
            check_api_key(request.headers, s.creds)
        delay_ms = s.faults.latency_for(method, path)
        if delay_ms:
            await _in_flight(s, method, path, params, delay_ms)
        if is_order:
            check_window(params.values, s.clock)  # the matching engine's check, on processing
        if entry is not None:
            entry["processed_ms"] = s.clock.now_ms()
        body = await route.handler(s, params)
        s.garbage.rest(path, body)
    except BinanceError as err:
        return _finish(entry, _json(err.status, err.body(), headers), err.code)
    if entry is not None:
        entry["accepted"] = True
        if isinstance(body, dict):
            for key in ("orderId", "algoId", "status", "algoStatus"):
                if key in body:
                    entry[key] = body[key]
    failure = s.faults.take(method, path, after=True)
    if failure is not None:
        return _finish(entry, failure.response(), failure.code)
    return _finish(entry, _json(200, body, headers), None)


async def _in_flight(s: SimState, method: str, path: str, params: Params,
                     delay_ms: float) -> None:
    """Hold a received request inside the exchange; it is processed even if the client
    gives up and disconnects (aiohttp does not cancel handlers on disconnect)."""
    key = next(_ids)
    now = s.clock.now_ms()
    s.in_flight[key] = {"method": method, "path": path, "received_ms": now,
                        "lands_ms": now + round(delay_ms),
                        "clientOrderId": _client_id(params)}
    try:
        await asyncio.sleep(delay_ms / 1000)
    finally:
        del s.in_flight[key]


def _client_id(params: Params) -> str | None:
    return (params.text("newClientOrderId") or params.text("origClientOrderId")
            or params.text("clientAlgoId"))


def _log_entry(s: SimState, method: str, path: str, params: Params,
               recv_ns: int) -> dict[str, object]:
    entry: dict[str, object] = {"time": s.clock.now_ms(), "recv_ns": recv_ns,
                                "method": method, "path": path,
                                "clientOrderId": _client_id(params), "accepted": False}
    entry.update({k: params.values[k] for k in _LOGGED if k in params})
    s.order_log.append(entry)
    return entry


def _finish(entry: dict[str, object] | None, response: web.Response,
            code: int | None) -> web.Response:
    if entry is not None:
        entry["http_status"] = response.status
        entry["code"] = code
    return response
