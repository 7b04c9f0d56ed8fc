"""The USDⓈ-M algo-order endpoints, as ccxt 4.5.90's binanceusdm reaches them.

ccxt routes a contract order to the algo endpoints when it is conditional: ``create_order``
with ``triggerPrice``/``stopPrice``/``stopLossPrice``/``takeProfitPrice``/``trailingPercent``
in params sends ``POST /fapi/v1/algoOrder`` (``algoType=CONDITIONAL``, ``type``,
``triggerPrice``, ``clientAlgoId``, ``quantity`` ...). ``fetch_open_orders``,
``cancel_order``, ``cancel_all_orders``, ``fetch_order`` and ``fetch_orders`` reach them only
with ``params={'trigger': True}`` (or ``stop``/``conditional``): ``GET /fapi/v1/openAlgoOrders``,
``DELETE /fapi/v1/algoOrder`` (``algoId`` or ``clientAlgoId``), ``DELETE
/fapi/v1/algoOpenOrders`` (``symbol``), ``GET /fapi/v1/algoOrder``, ``GET
/fapi/v1/allAlgoOrders``. Shapes follow Binance's reference (``algoId``, ``algoStatus`` ...).
"""

from __future__ import annotations

from decimal import Decimal

from trader.sim.algo import CHILD_TYPE, AlgoOrder
from trader.sim.errors import BinanceError, mandatory, not_required
from trader.sim.market import INSTRUMENTS, instrument
from trader.sim.params import Params
from trader.sim.rest import Route, _by_symbol, _window
from trader.sim.state import SimState

_MALFORMED = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."


def _ref(p: Params) -> tuple[int | None, str | None]:
    # Binance's reference table spells them algoid / clientalgoid; clients send camelCase.
    algo_id = p.integer("algoId") if "algoId" in p else p.integer("algoid")
    client_id = p.text("clientAlgoId") or p.text("clientalgoid")
    if algo_id is None and client_id is None:
        raise BinanceError(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both "
                                  "were empty/null!")
    return algo_id, client_id


def parse(s: SimState, p: Params) -> AlgoOrder:
    """``POST /fapi/v1/algoOrder`` parameters; syntax only, ``AlgoBook.place`` checks the rest."""
    if p.req("algoType") != "CONDITIONAL":
        raise BinanceError(-1102, _MALFORMED.format("algoType"))
    symbol = instrument(p.req("symbol")).symbol
    side = p.req("side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117)
    order_type = p.req("type")
    if order_type not in CHILD_TYPE:
        raise BinanceError(-1116)
    close = p.flag("closePosition")
    quantity = p.number("quantity")
    if close:
        if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise not_required("closePosition")
        if quantity is not None:
            raise not_required("quantity")
        if p.flag("reduceOnly"):
            raise not_required("reduceOnly")
    elif quantity is None:
        raise mandatory("quantity")
    trailing = order_type == "TRAILING_STOP_MARKET"
    trigger = p.number("triggerPrice")
    if trigger is None and not trailing:
        raise mandatory("triggerPrice")
    limit = CHILD_TYPE[order_type] == "LIMIT"
    price = p.number("price")
    if limit and price is None:
        raise mandatory("price")
    if not limit and price is not None:
        raise not_required("price")
    tif = p.text("timeInForce") or "GTC"
    if tif not in ("GTC", "IOC", "FOK", "GTX", "GTD"):
        raise BinanceError(-1115)
    working = p.text("workingType") or "CONTRACT_PRICE"
    if working not in ("MARK_PRICE", "CONTRACT_PRICE"):
        raise BinanceError(-1102, _MALFORMED.format("workingType"))
    callback = p.number("callbackRate")
    if trailing and (callback is None or not Decimal("0.1") <= callback <= 10):
        raise BinanceError(-1102, _MALFORMED.format("callbackRate"))
    now = s.clock.now_ms()
    algo_id = s.algos.ids.next()
    return AlgoOrder(
        algo_id=algo_id, client_algo_id=p.text("clientAlgoId") or f"simalgo{algo_id}",
        symbol=symbol, side=side, order_type=order_type,
        position_side=(p.text("positionSide") or "BOTH").upper(), time_in_force=tif,
        quantity=quantity, price=price, trigger_price=trigger if not trailing else None,
        working_type=working, close_position=close, reduce_only=p.flag("reduceOnly"),
        price_protect=p.flag("priceProtect"), activate_price=p.number("activatePrice"),
        callback_rate=callback if trailing else None, create_time=now, update_time=now)


def shape(s: SimState, a: AlgoOrder) -> dict[str, object]:
    """An algo order as ``GET /fapi/v1/openAlgoOrders`` lists it."""
    inst = INSTRUMENTS[a.symbol]
    child = s.algos.child(a)
    price = inst.fmt_price(a.price) if a.price is not None else "0.00"
    out: dict[str, object] = {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": a.position_side,
        "timeInForce": a.time_in_force,
        "quantity": inst.fmt_qty(a.quantity or Decimal(0)),
        "algoStatus": a.status,
        "actualOrderId": str(a.actual_order_id) if a.actual_order_id else "",
        "actualPrice": (f"{child.avg_price:.{inst.price_precision + 3}f}"
                        if child is not None and child.executed else "0.00000"),
        "triggerPrice": inst.fmt_price(a.trigger_price) if a.trigger_price else "0.00",
        "price": price,
        "icebergQuantity": None,
        "tpTriggerPrice": "0.000",
        "tpPrice": "0.000",
        "slTriggerPrice": "0.000",
        "slPrice": "0.000",
        "tpOrderType": "",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "createTime": a.create_time,
        "updateTime": a.update_time,
        "triggerTime": a.trigger_time,
        "goodTillDate": 0,
    }
    if a.order_type == "TRAILING_STOP_MARKET":
        out["activatePrice"] = inst.fmt_price(a.activate_price) if a.activate_price else ""
        out["callbackRate"] = str(a.callback_rate)
    return out


async def new_algo_order(s: SimState, p: Params) -> object:
    return shape(s, s.algos.place(parse(s, p)))


async def get_algo_order(s: SimState, p: Params) -> object:
    algo_id, client_id = _ref(p)
    return shape(s, s.algos.find(algo_id, client_id, code=-2013))


async def cancel_algo_order(s: SimState, p: Params) -> object:
    algo_id, client_id = _ref(p)
    a = s.algos.cancel(algo_id, client_id)
    return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200",
            "msg": "success"}


async def cancel_all_algo(s: SimState, p: Params) -> object:
    s.algos.cancel_all(instrument(p.req("symbol")).symbol)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


async def open_algo_orders(s: SimState, p: Params) -> object:
    sym = instrument(p.text("symbol")).symbol if "symbol" in p else None
    algo_type = p.text("algoType")
    algo_id = p.integer("algoId")
    return [shape(s, a) for a in s.algos.open_orders(sym)
            if (algo_type in (None, "CONDITIONAL")) and algo_id in (None, a.algo_id)]


async def all_algo_orders(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    rows: list[object] = [shape(s, a) for a in s.algos.orders.values() if a.symbol == sym]
    return _window(p, rows, "createTime", "algoId", "algoId")


ROUTES: dict[tuple[str, str], Route] = {
    (r.method, r.path): r for r in (
        Route("POST", "/fapi/v1/algoOrder", new_algo_order, "SIGNED", 0),
        Route("GET", "/fapi/v1/algoOrder", get_algo_order, "SIGNED"),
        Route("DELETE", "/fapi/v1/algoOrder", cancel_algo_order, "SIGNED"),
        Route("DELETE", "/fapi/v1/algoOpenOrders", cancel_all_algo, "SIGNED"),
        Route("GET", "/fapi/v1/openAlgoOrders", open_algo_orders, "SIGNED", _by_symbol(1, 40)),
        Route("GET", "/fapi/v1/allAlgoOrders", all_algo_orders, "SIGNED", 5),
    )
}
