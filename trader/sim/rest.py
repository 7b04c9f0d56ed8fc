"""The Binance USDⓈ-M REST endpoints ccxt's binanceusdm uses (the request pipeline that
serves them is ``pipeline.py``; the algo-order endpoints are ``algo_rest.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from trader.sim import margin, shapes
from trader.sim.errors import BinanceError
from trader.sim.market import INSTRUMENTS, instrument
from trader.sim.params import Params, order_request
from trader.sim.state import SimState

Handler = Callable[[SimState, Params], Awaitable[object]]
Weight = int | Callable[[Params], int]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    security: str = "NONE"  # NONE | SIGNED | USER_STREAM (API key only)
    weight: Weight = 1


def _by_symbol(with_symbol: int, without: int) -> Weight:
    return lambda p: with_symbol if "symbol" in p else without


def _symbols(p: Params) -> list[str]:
    sym = p.text("symbol")
    return [instrument(sym).symbol] if sym else list(INSTRUMENTS)


def _one_or_all(p: Params, rows: list[object]) -> object:
    return rows[0] if "symbol" in p else rows


# ---- public --------------------------------------------------------------------------


async def ping(s: SimState, p: Params) -> object:
    return {}


async def server_time(s: SimState, p: Params) -> object:
    return {"serverTime": s.clock.now_ms()}


async def exchange_info(s: SimState, p: Params) -> object:
    return {
        "timezone": "UTC",
        "serverTime": s.clock.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": s.config.weight_limit or 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
             "limit": s.config.order_limit_1m or 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": s.config.order_limit_10s or 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [s.account.instrument(sym).info() for sym in INSTRUMENTS],
    }


async def premium_index(s: SimState, p: Params) -> object:
    now = s.clock.now_ms()
    return _one_or_all(p, [shapes.premium_index(s.feed.quotes[x], now) for x in _symbols(p)])


async def ticker_24hr(s: SimState, p: Params) -> object:
    return _one_or_all(p, [shapes.ticker_24hr(s.feed.quotes[x]) for x in _symbols(p)])


async def book_ticker(s: SimState, p: Params) -> object:
    return _one_or_all(p, [shapes.book_ticker(s.feed.quotes[x]) for x in _symbols(p)])


async def ticker_price(s: SimState, p: Params) -> object:
    return _one_or_all(p, [
        {"symbol": x, "price": INSTRUMENTS[x].fmt_price(s.feed.quotes[x].mark),
         "time": s.feed.quotes[x].time_ms} for x in _symbols(p)])


async def depth(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    limit = p.integer("limit", 500) or 500
    if limit not in (5, 10, 20, 50, 100, 500, 1000):
        raise BinanceError(-1102, "Mandatory parameter 'limit' was not sent, was empty/null, "
                                  "or malformed.")
    return shapes.depth(s.feed.quotes[sym], limit, s.clock.now_ms())


# ---- account -------------------------------------------------------------------------


async def account_v2(s: SimState, p: Params) -> object:
    return shapes.account(s.account, v2=True)


async def account_v3(s: SimState, p: Params) -> object:
    return shapes.account(s.account, v2=False)


async def balance(s: SimState, p: Params) -> object:
    return shapes.balance(s.account)


def _position_rows(s: SimState, p: Params, *, v2: bool) -> list[object]:
    sides = ("LONG", "SHORT") if s.account.dual_side else ("BOTH",)
    rows = []
    for sym in _symbols(p):
        for side in sides:
            pos = s.account.position(sym, side)
            # v3 lists positions held and symbols with open orders (Binance: "positions or
            # open orders"); v2 lists every symbol.
            if v2 or pos.amt or any(o.position_side == side
                                    for o in s.account.open_orders(sym)):
                rows.append(shapes.position_risk(s.account, pos, v2=v2))
    return rows


async def position_risk_v2(s: SimState, p: Params) -> object:
    return _position_rows(s, p, v2=True)


async def position_risk_v3(s: SimState, p: Params) -> object:
    return _position_rows(s, p, v2=False)


async def leverage_bracket(s: SimState, p: Params) -> object:
    def brackets(sym: str) -> dict[str, object]:
        return {"symbol": sym, "notionalCoef": 1.0,
                "brackets": [b.row() for b in margin.BRACKETS]}
    return _one_or_all(p, [brackets(x) for x in _symbols(p)])


async def set_leverage(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    lev = p.integer("leverage")
    if lev is None:
        raise BinanceError(-1102, "Mandatory parameter 'leverage' was not sent, was "
                                  "empty/null, or malformed.")
    s.account.set_leverage(sym, lev)
    return {"leverage": lev, "maxNotionalValue": "10000000", "symbol": sym}


async def set_margin_type(s: SimState, p: Params) -> object:
    s.account.set_margin_type(p.req("symbol"), p.req("marginType"))
    return {"code": 200, "msg": "success"}


async def get_dual(s: SimState, p: Params) -> object:
    return {"dualSidePosition": s.account.dual_side}


async def set_dual(s: SimState, p: Params) -> object:
    p.req("dualSidePosition")
    s.account.set_dual_side(p.flag("dualSidePosition"))
    return {"code": 200, "msg": "success"}


async def api_trading_status(s: SimState, p: Params) -> object:
    return {"indicators": {}, "updateTime": s.clock.now_ms()}


# ---- orders --------------------------------------------------------------------------


async def new_order(s: SimState, p: Params) -> object:
    resp_type = p.resp_type()
    placed = s.account.place(order_request(p))
    return shapes.order(placed, with_time=False) if resp_type == "RESULT" \
        else shapes.order_ack(placed)


async def get_order(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    order_id, client_id = p.order_ref()
    return shapes.order(s.account.find_order(sym, order_id, client_id, code=-2013))


async def cancel_order(s: SimState, p: Params) -> object:
    order_id, client_id = p.order_ref()
    return shapes.order(s.account.cancel(p.req("symbol"), order_id, client_id),
                        with_time=False)


async def cancel_all(s: SimState, p: Params) -> object:
    s.account.cancel_all(p.req("symbol"))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


async def open_orders(s: SimState, p: Params) -> object:
    sym = instrument(p.text("symbol")).symbol if "symbol" in p else None
    return [shapes.order(o) for o in s.account.open_orders(sym)]


def _window(p: Params, rows: list[object], time_key: str, id_key: str,
            from_key: str) -> list[object]:
    start, end = p.integer("startTime"), p.integer("endTime")
    first = p.integer(from_key)
    limit = min(p.integer("limit", 500) or 500, 1000)
    out = [r for r in rows if isinstance(r, dict)
           and (start is None or r[time_key] >= start) and (end is None or r[time_key] <= end)
           and (first is None or r[id_key] >= first)]
    return out[-limit:] if first is None else out[:limit]


async def all_orders(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    rows: list[object] = [shapes.order(o) for o in s.account.orders.values() if o.symbol == sym]
    return _window(p, rows, "time", "orderId", "orderId")


async def user_trades(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    order_id = p.integer("orderId")
    rows: list[object] = [shapes.trade(t) for t in s.account.trades if t.symbol == sym
                          and (order_id is None or t.order_id == order_id)]
    return _window(p, rows, "time", "id", "fromId")


async def countdown_cancel_all(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    ms = p.integer("countdownTime")
    if ms is None or ms < 0:
        raise BinanceError(-1102, "Mandatory parameter 'countdownTime' was not sent, was "
                                  "empty/null, or malformed.")
    s.countdowns.arm(sym, ms)
    return {"symbol": sym, "countdownTime": str(ms)}


# ---- user data stream ----------------------------------------------------------------


async def new_listen_key(s: SimState, p: Params) -> object:
    return {"listenKey": s.hub.create_listen_key()}


async def keepalive_listen_key(s: SimState, p: Params) -> object:
    return {"listenKey": s.hub.keepalive(p.text("listenKey"))}


async def close_listen_key(s: SimState, p: Params) -> object:
    s.hub.delete_listen_key(p.text("listenKey"))
    return {}


ROUTES: dict[tuple[str, str], Route] = {
    (r.method, r.path): r for r in (
        Route("GET", "/fapi/v1/ping", ping),
        Route("GET", "/fapi/v1/time", server_time),
        Route("GET", "/fapi/v1/exchangeInfo", exchange_info),
        Route("GET", "/fapi/v1/premiumIndex", premium_index, weight=_by_symbol(1, 10)),
        Route("GET", "/fapi/v1/ticker/24hr", ticker_24hr, weight=_by_symbol(1, 40)),
        Route("GET", "/fapi/v1/ticker/bookTicker", book_ticker, weight=_by_symbol(2, 5)),
        Route("GET", "/fapi/v1/ticker/price", ticker_price, weight=_by_symbol(1, 2)),
        Route("GET", "/fapi/v2/ticker/price", ticker_price, weight=_by_symbol(1, 2)),
        Route("GET", "/fapi/v1/depth", depth, weight=lambda p: 20 if (
            p.integer("limit", 500) or 500) >= 500 else 5),
        Route("GET", "/fapi/v2/account", account_v2, "SIGNED", 5),
        Route("GET", "/fapi/v3/account", account_v3, "SIGNED", 5),
        Route("GET", "/fapi/v2/balance", balance, "SIGNED", 5),
        Route("GET", "/fapi/v3/balance", balance, "SIGNED", 5),
        Route("GET", "/fapi/v2/positionRisk", position_risk_v2, "SIGNED", 5),
        Route("GET", "/fapi/v3/positionRisk", position_risk_v3, "SIGNED", 5),
        Route("GET", "/fapi/v1/leverageBracket", leverage_bracket, "SIGNED"),
        Route("POST", "/fapi/v1/leverage", set_leverage, "SIGNED"),
        Route("POST", "/fapi/v1/marginType", set_margin_type, "SIGNED"),
        Route("GET", "/fapi/v1/positionSide/dual", get_dual, "SIGNED", 30),
        Route("POST", "/fapi/v1/positionSide/dual", set_dual, "SIGNED"),
        Route("GET", "/fapi/v1/apiTradingStatus", api_trading_status, "SIGNED"),
        Route("POST", "/fapi/v1/order", new_order, "SIGNED", 0),
        Route("GET", "/fapi/v1/order", get_order, "SIGNED"),
        Route("DELETE", "/fapi/v1/order", cancel_order, "SIGNED"),
        Route("DELETE", "/fapi/v1/allOpenOrders", cancel_all, "SIGNED"),
        Route("GET", "/fapi/v1/openOrders", open_orders, "SIGNED", _by_symbol(1, 40)),
        Route("GET", "/fapi/v1/allOrders", all_orders, "SIGNED", 5),
        Route("GET", "/fapi/v1/userTrades", user_trades, "SIGNED", 5),
        Route("POST", "/fapi/v1/countdownCancelAll", countdown_cancel_all, "SIGNED", 10),
        Route("POST", "/fapi/v1/listenKey", new_listen_key, "USER_STREAM"),
        Route("PUT", "/fapi/v1/listenKey", keepalive_listen_key, "USER_STREAM"),
        Route("DELETE", "/fapi/v1/listenKey", close_listen_key, "USER_STREAM"),
    )
}
