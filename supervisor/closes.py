"""Closing one position for the kill path: reduce-only market orders, split and priced to pass.

Split from ``flatten.py`` (which owns the session, the reads, the cancels and the round). What a
close meets, decided by the taxonomy's code and the venue's close quirks (``Venue``:
``close_order``, ``price_band`` and the code sets; Binance USDⓈ-M's below), never by matching
error text:

* the order's side and params come from the venue (Binance: hedge mode closes each side with
  its ``positionSide``, which refuses ``reduceOnly``, -1106; one-way: ``reduceOnly``);
* MARKET_LOT_SIZE: a position above the market's maximum market-order quantity is closed in
  several orders;
* -4131 (price protection: the book beyond the PERCENT_PRICE band): an aggressive IOC limit inside
  the band instead;
* -2022 (reduce-only refused: the position is smaller than we read): stop, the re-read decides;
* a filter refusal (-1111 precision, -4003/-4005 quantity, -4023 step, -1013 filter, -4164 min
  notional, -4014 tick): the exchange changed the symbol's filters since the markets were loaded.
  Reload them (the caller bounds it: once per round, a minimum interval apart) and retry with the
  new filters in the same round; without a reload the refusal fails the round as it is. A
  remainder our filters call "below one lot step" reloads too (the step may have become finer);
  if it stays below, the round fails REJECTED naming it (``BelowLotStep``: close it by hand).

Every other failure propagates, classified, to the round.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from trader.exchange import errors as E
from trader.exchange.ccxtload import errors as ccxt  # ccxt's error classes
from trader.exchange.venues import Venue
from trader.kernel.errors import FlatguardError

log = logging.getLogger("flatguard")

IOC_SLIPPAGE = 0.02  # through the mark, when the market publishes no PERCENT_PRICE band
BAND_USE = 0.9  # how much of the PERCENT_PRICE band an IOC close may use (mark moves meanwhile)

Call = Callable[..., Awaitable[Any]]


class BelowLotStep(FlatguardError, ValueError):
    """What is left of a position is smaller than any order the exchange accepts."""


def contracts(p: dict[str, Any]) -> float:
    """The position's size; NaN when the exchange sent something unreadable (never 0: a NaN
    must not look flat)."""
    try:
        return abs(float(p.get("contracts") or 0))
    except (TypeError, ValueError):
        return math.nan


class Closer:
    """Closes positions through ``call`` (the flattener's classified, counted, ban-aware call)."""

    def __init__(self, exchange: Any, call: Call, reload: Callable[[], Awaitable[bool]],
                 venue: Venue) -> None:
        self.ex = exchange
        self.venue = venue
        self.call = call
        self.reload = reload

    def _max_market_qty(self, sym: str, fallback: float) -> float:
        market = self.ex.market(sym)
        return float(((market.get("limits") or {}).get("market") or {}).get("max") or fallback)

    async def close(self, p: dict[str, Any]) -> int:
        """Send the orders that close ``p``; return how many were sent (accepted or not filled:
        only a fresh position read says what is left)."""
        sym = p["symbol"]
        size = contracts(p)
        if not math.isfinite(size):
            raise ValueError(f"{sym}: position size unreadable ({p.get('contracts')!r}); "
                             "cannot size a close")
        how = self.venue.close_order(p)
        side, params, pos_side = how.side, dict(how.params), how.position_side
        max_q = self._max_market_qty(sym, size)
        sent, left = 0, size
        while left > 0:
            try:
                qty = float(self.ex.amount_to_precision(sym, min(left, max_q)))
            except ccxt.InvalidOrder:
                qty = 0.0  # below one lot step
            if qty <= 0:
                # The exchange holds it, so its step may have become finer than ours.
                if await self.reload():
                    max_q = self._max_market_qty(sym, size)
                    continue
                raise BelowLotStep(f"{sym} {pos_side} {left:g} is below the exchange's lot "
                                   "step: no order can close it (close it by hand)")
            try:
                await self._send(sym, side, qty, params)
            except E.Rejected as e:
                c = e.classification
                if c.code in self.venue.reduce_only_rejected_codes:
                    # Smaller than we read (closed meanwhile): the re-read decides what is left.
                    log.warning("kill path: close of %s %s rejected as not reducing (%s); "
                                "re-reading", sym, pos_side, c.code)
                    break
                if c.code in self.venue.filter_codes and await self.reload():
                    log.warning("kill path: close of %s %s refused by a filter (code %s); "
                                "markets reloaded, retrying with the new filters",
                                sym, pos_side, c.code)
                    max_q = self._max_market_qty(sym, size)
                    continue  # the same quantity left, sized by the new filters
                raise
            sent += 1
            left = round(left - qty, 12)
        return sent

    async def _send(self, sym: str, side: str, qty: float, params: dict[str, Any]) -> None:
        try:
            await self.call(self.ex.create_order, sym, "market", side, qty, None, dict(params))
        except E.Rejected as e:
            if e.classification.code not in self.venue.price_protection_codes:
                raise
            await self._ioc_close(sym, side, qty, params)

    async def _ioc_price(self, sym: str, side: str) -> float:
        """The most aggressive price the PERCENT_PRICE band accepts, less a margin."""
        market = self.ex.market(sym)
        mark = 0.0
        if self.ex.has.get("fetchMarkPrice"):
            mark = float((await self.call(self.ex.fetch_mark_price, sym)).get("markPrice") or 0)
        if not mark or not math.isfinite(mark):
            ticker = await self.call(self.ex.fetch_ticker, sym)
            mark = float(ticker.get("last") or ticker.get("close") or ticker.get("bid") or 0)
        if not mark or not math.isfinite(mark):
            raise ValueError(f"{sym}: no usable mark or last price for an IOC close")
        band = self.venue.price_band(market)
        if band is not None:
            up, down = band
            factor = 1 - (1 - down) * BAND_USE if side == "sell" else 1 + (up - 1) * BAND_USE
        else:
            factor = 1 - IOC_SLIPPAGE if side == "sell" else 1 + IOC_SLIPPAGE
        return float(self.ex.price_to_precision(sym, mark * factor))

    async def _ioc_close(self, sym: str, side: str, qty: float, params: dict[str, Any]) -> None:
        px = await self._ioc_price(sym, side)
        log.warning("kill path: market close refused by price protection; IOC limit symbol=%s "
                    "side=%s qty=%g price=%g", sym, side, qty, px)
        await self.call(self.ex.create_order, sym, "limit", side, qty, px,
                        {**params, "timeInForce": "IOC"})
