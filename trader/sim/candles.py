"""Candles for ``GET /fapi/v1/klines`` and the ``<symbol>@kline_<interval>`` streams.

The simulator keeps one-minute bars per symbol, priced from the mark walk (the sim's last
price until the market model separates them) and with volume from the account's own fills;
longer intervals are built from them. History starts when the simulator starts: there are no
bars before it.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from trader.sim.book import Order, Position, Trade
from trader.sim.errors import BinanceError
from trader.sim.market import INSTRUMENTS

MINUTE = 60_000
KEEP_MINUTES = 1500  # Binance's klines limit; older one-minute bars are dropped
# interval -> its length in minutes (1M is a calendar month, handled apart)
INTERVALS: dict[str, int] = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
    "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320, "1w": 10080, "1M": 0,
}
_MONDAY_OFFSET = 4 * 1440 * MINUTE  # 1970-01-01 was a Thursday; Binance's weeks start Monday


@dataclass
class Bar:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trades: int = 0
    taker_buy: Decimal = Decimal(0)
    taker_buy_quote: Decimal = Decimal(0)
    first_trade: int = -1
    last_trade: int = -1

    def add_price(self, price: Decimal) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price

    def merge(self, other: Bar) -> None:
        self.add_price(other.high)
        self.add_price(other.low)
        self.close = other.close
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trades += other.trades
        self.taker_buy += other.taker_buy
        self.taker_buy_quote += other.taker_buy_quote
        if other.first_trade >= 0:
            self.first_trade = other.first_trade if self.first_trade < 0 else self.first_trade
            self.last_trade = other.last_trade


def check_interval(interval: str | None) -> str:
    if interval is None:
        raise BinanceError(-1102, "Mandatory parameter 'interval' was not sent, was "
                                  "empty/null, or malformed.")
    if interval not in INTERVALS:
        raise BinanceError(-1120)
    return interval


def bucket(ms: int, interval: str) -> tuple[int, int]:
    """(open time, close time) of the ``interval`` bar holding ``ms``."""
    if interval == "1M":
        d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        start = calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
        days = calendar.monthrange(d.year, d.month)[1]
        return start, start + days * 1440 * MINUTE - 1
    length = INTERVALS[interval] * MINUTE
    offset = _MONDAY_OFFSET if interval == "1w" else 0
    start = (ms - offset) // length * length + offset
    return start, start + length - 1


class Candles:
    """One-minute bars per symbol; an account listener for the fills' volume."""

    def __init__(self) -> None:
        self.bars: dict[str, dict[int, Bar]] = {sym: {} for sym in INSTRUMENTS}

    def _bar(self, symbol: str, now: int, price: Decimal) -> Bar:
        bars = self.bars[symbol]
        start = now // MINUTE * MINUTE
        bar = bars.get(start)
        if bar is None:
            bar = bars[start] = Bar(start, price, price, price, price)
            for old in [k for k in bars if k < start - KEEP_MINUTES * MINUTE]:
                del bars[old]
        return bar

    def on_price(self, symbol: str, price: Decimal, now: int) -> None:
        self._bar(symbol, now, price).add_price(price)

    def on_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        if trade is None:
            return
        bar = self._bar(trade.symbol, trade.time, trade.price)
        bar.volume += trade.qty
        bar.quote_volume += trade.qty * trade.price
        bar.trades += 1
        if (trade.side == "BUY") != trade.maker:  # the taker bought
            bar.taker_buy += trade.qty
            bar.taker_buy_quote += trade.qty * trade.price
        if bar.first_trade < 0:
            bar.first_trade = trade.trade_id
        bar.last_trade = trade.trade_id

    def on_account(self, reason: str, positions: list[Position]) -> None:
        pass

    def klines(self, symbol: str, interval: str) -> list[tuple[int, int, Bar]]:
        """Every ``interval`` bar, oldest first, as (open time, close time, bar)."""
        merged: dict[int, tuple[int, Bar]] = {}
        for start in sorted(self.bars[symbol]):
            one = self.bars[symbol][start]
            open_ms, close_ms = bucket(start, interval)
            if open_ms not in merged:
                merged[open_ms] = (close_ms, Bar(open_ms, one.open, one.high, one.low,
                                                 one.close))
                merged[open_ms][1].merge(one)
                merged[open_ms][1].open = one.open
            else:
                merged[open_ms][1].merge(one)
        return [(k, close, bar) for k, (close, bar) in sorted(merged.items())]

    def current(self, symbol: str, interval: str, now: int) -> tuple[int, int, Bar] | None:
        """The bar open at ``now`` (for the kline streams), built from its minutes only."""
        open_ms, close_ms = bucket(now, interval)
        minutes = sorted(k for k in self.bars[symbol] if k >= open_ms)
        if not minutes:
            return None
        first = self.bars[symbol][minutes[0]]
        bar = Bar(open_ms, first.open, first.high, first.low, first.close)
        for k in minutes:
            bar.merge(self.bars[symbol][k])
        return open_ms, close_ms, bar


def row(inst_symbol: str, open_ms: int, close_ms: int, bar: Bar) -> list[object]:
    """A ``GET /fapi/v1/klines`` row, in Binance's order and types."""
    inst = INSTRUMENTS[inst_symbol]
    return [open_ms, inst.fmt_price(bar.open), inst.fmt_price(bar.high),
            inst.fmt_price(bar.low), inst.fmt_price(bar.close), inst.fmt_qty(bar.volume),
            close_ms, f"{bar.quote_volume:.5f}", bar.trades, inst.fmt_qty(bar.taker_buy),
            f"{bar.taker_buy_quote:.5f}", "0"]
