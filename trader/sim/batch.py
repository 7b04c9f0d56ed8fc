"""Order endpoints beyond the single new/cancel/query: modify (``PUT /fapi/v1/order``), the
batch family (``POST/PUT/DELETE /fapi/v1/batchOrders``) and ``GET /fapi/v1/openOrder``.

Batches follow Binance: the list travels as one JSON parameter (``batchOrders``,
``orderIdList``, ``origClientOrderIdList``); each item is checked and processed on its own and
the reply lists, in request order, either the order or that item's ``{"code", "msg"}`` in its
place. A list that is not JSON, not a list of the right kind, or longer than Binance allows
(5 orders to place or modify, 10 to cancel) refuses the whole request with -1130.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from trader.sim import shapes
from trader.sim.errors import BinanceError, mandatory
from trader.sim.market import instrument
from trader.sim.params import Params, order_request
from trader.sim.rest import Route
from trader.sim.state import SimState

MAX_BATCH = 5
MAX_CANCEL = 10


def _bad(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def _json_list(p: Params, name: str, limit: int) -> list[object] | None:
    raw = p.text(name)
    if raw is None:
        return None
    try:
        items = json.loads(raw)
    except ValueError:
        raise _bad(name) from None
    if not isinstance(items, list) or not items or len(items) > limit:
        raise _bad(name)
    return items


def _item_params(item: object, name: str) -> Params:
    """One batch item as request parameters: JSON values rendered the way a query string
    carries them (true/false, numbers as written); nulls are absent."""
    if not isinstance(item, dict):
        raise _bad(name)
    values: dict[str, str] = {}
    for key, value in item.items():
        if value is None:
            continue
        if isinstance(value, bool):
            values[str(key)] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[str(key)] = str(value)
        else:
            raise _bad(name)
    return Params(values)


def _each(items: list[object], name: str, handle: Callable[[Params], object]) -> list[object]:
    params = [_item_params(item, name) for item in items]  # malformed anywhere: whole refusal
    out: list[object] = []
    for item in params:
        try:
            out.append(handle(item))
        except BinanceError as err:
            out.append(err.body())
    return out


def _place(s: SimState, p: Params) -> object:
    resp_type = p.resp_type()
    placed = s.account.place(order_request(p))
    return shapes.order(placed, with_time=False) if resp_type == "RESULT" \
        else shapes.order_ack(placed)


def _modify(s: SimState, p: Params) -> object:
    order_id, client_id = p.order_ref()
    side = p.req("side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117)
    quantity, price = p.number("quantity"), p.number("price")
    if quantity is None:
        raise mandatory("quantity")
    if price is None:
        raise mandatory("price")
    return shapes.order(s.account.modify(p.req("symbol"), order_id, client_id, side,
                                         quantity, price), with_time=False)


async def modify_order(s: SimState, p: Params) -> object:
    return _modify(s, p)


async def place_batch(s: SimState, p: Params) -> object:
    items = _json_list(p, "batchOrders", MAX_BATCH)
    if items is None:
        raise mandatory("batchOrders")
    return _each(items, "batchOrders", lambda item: _place(s, item))


async def modify_batch(s: SimState, p: Params) -> object:
    items = _json_list(p, "batchOrders", MAX_BATCH)
    if items is None:
        raise mandatory("batchOrders")
    return _each(items, "batchOrders", lambda item: _modify(s, item))


async def cancel_batch(s: SimState, p: Params) -> object:
    symbol = instrument(p.req("symbol")).symbol
    ids = _json_list(p, "orderIdList", MAX_CANCEL)
    client_ids = _json_list(p, "origClientOrderIdList", MAX_CANCEL)
    if ids is None and client_ids is None:
        raise BinanceError(-1102, "Param 'origClientOrderIdList' or 'orderIdList' must be "
                                  "sent, but both were empty/null!")
    refs: list[tuple[int | None, str | None]]
    if ids is not None:  # Binance: orderIdList wins when both are sent
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _bad("orderIdList")
        refs = [(int(i), None) for i in ids]  # type: ignore[call-overload]
    else:
        assert client_ids is not None
        if not all(isinstance(c, str) for c in client_ids):
            raise _bad("origClientOrderIdList")
        refs = [(None, str(c)) for c in client_ids]
    out: list[object] = []
    for order_id, client_id in refs:
        try:
            out.append(shapes.order(s.account.cancel(symbol, order_id, client_id),
                                    with_time=False))
        except BinanceError as err:
            out.append(err.body())
    return out


async def open_order(s: SimState, p: Params) -> object:
    """``GET /fapi/v1/openOrder``: an open order, or -2013 once it is filled or cancelled."""
    sym = instrument(p.req("symbol")).symbol
    order_id, client_id = p.order_ref()
    order = s.account.find_order(sym, order_id, client_id, code=-2013)
    if not order.is_open:
        raise BinanceError(-2013)
    return shapes.order(order)


def order_counts(method: str, path: str) -> tuple[int, int]:
    """What a request adds to the (10 s, 1 min) order-count limits, per Binance's reference."""
    return _COUNTS.get((method, path), (0, 0))


_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("POST", "/fapi/v1/order"): (1, 1),
    ("PUT", "/fapi/v1/order"): (1, 1),
    ("POST", "/fapi/v1/batchOrders"): (5, 1),
    ("PUT", "/fapi/v1/batchOrders"): (5, 1),
    ("POST", "/fapi/v1/algoOrder"): (1, 1),
}

ROUTES: dict[tuple[str, str], Route] = {
    (r.method, r.path): r for r in (
        Route("PUT", "/fapi/v1/order", modify_order, "SIGNED", 0),
        Route("POST", "/fapi/v1/batchOrders", place_batch, "SIGNED", 5),
        Route("PUT", "/fapi/v1/batchOrders", modify_batch, "SIGNED", 5),
        Route("DELETE", "/fapi/v1/batchOrders", cancel_batch, "SIGNED", 1),
        Route("GET", "/fapi/v1/openOrder", open_order, "SIGNED", 1),
    )
}
