"""Binance's checks of a new order that need no matching: position side and order filters."""

from __future__ import annotations

from decimal import Decimal

from trader.sim.errors import BinanceError, not_required
from trader.sim.market import Instrument
from trader.sim.records import OrderRequest, _decimals


def position_side(req: OrderRequest, dual_side: bool) -> str:
    """The position side an order goes to, or Binance's refusal (-4061, -1106)."""
    ps = (req.position_side or "BOTH").upper()
    if dual_side:
        if ps not in ("LONG", "SHORT"):
            raise BinanceError(-4061)
        if req.reduce_only:
            raise not_required("reduceOnly")
        return ps
    if ps != "BOTH":
        raise BinanceError(-4061)
    return ps


def filters(inst: Instrument, req: OrderRequest, mark: Decimal) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE, PRICE_FILTER, PERCENT_PRICE and MIN_NOTIONAL."""
    if req.quantity <= 0:
        raise BinanceError(-4003)
    if _decimals(req.quantity) > inst.qty_precision:
        raise BinanceError(-1111)
    if req.quantity % inst.step:
        raise BinanceError(-4023)
    if req.quantity < inst.min_qty:
        raise BinanceError(-1013, "Filter failure: LOT_SIZE")
    max_qty = inst.market_max_qty if req.type == "MARKET" else inst.max_qty
    if req.quantity > max_qty:
        raise BinanceError(-4005)
    if req.price is not None:
        if _decimals(req.price) > inst.price_precision:
            raise BinanceError(-1111)
        if req.price < inst.min_price:
            raise BinanceError(-4013, "Price less than min price.")
        if req.price % inst.tick:
            raise BinanceError(-4014)
        if req.side == "BUY" and req.price > mark * inst.multiplier_up:
            raise BinanceError(-4016, "Limit price can't be higher than "
                               f"{inst.fmt_price(mark * inst.multiplier_up)}.")
        if req.side == "SELL" and req.price < mark * inst.multiplier_down:
            raise BinanceError(-4024, "Limit price can't be lower than "
                               f"{inst.fmt_price(mark * inst.multiplier_down)}.")
    notional = req.quantity * (req.price if req.price is not None else mark)
    if not req.reduce_only and notional < inst.min_notional:
        raise BinanceError(-4164, f"Order's notional must be no smaller than "
                                  f"{inst.min_notional} (unless you choose reduce only).")
