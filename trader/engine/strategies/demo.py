"""``demo``: small, visible trading so that ``make run`` shows a live runtime.

Per symbol it keeps one bid and one ask resting a little away from the mark and re-quotes them
every few seconds, and now and then crosses the spread with a small market order toward a
target position that flips sign. Sizes are tiny and positions bounded (``max_position``).
Params: ``notional`` (quote currency per order, default 150), ``offset`` (fraction from the mark,
default 0.002), ``requote`` (s, default 5), ``max_position`` (in order sizes, default 3).
"""

from __future__ import annotations

import math
from typing import Any

from trader.engine.strategy import Context, Fill, MarketData, Strategy


class Demo(Strategy):
    name = "demo"

    def on_start(self, ctx: Context) -> None:
        p = ctx.params
        self.notional = float(p.get("notional", 150.0))
        self.offset = float(p.get("offset", 0.002))
        self.requote = float(p.get("requote", 5.0))
        self.max_position = float(p.get("max_position", 3))
        # Stagger the symbols' re-quotes so their orders do not land in the same second (the
        # default throttle is 5 orders/s; a re-quote is up to 3 orders).
        n = max(1, len(ctx.symbols))
        start = ctx.now() - self.requote
        self.last_quote: dict[str, float] = {
            sym: start + i * self.requote / n for i, sym in enumerate(ctx.symbols)}
        self.quotes: dict[str, list[str]] = {}
        self.target_sign = 1
        self.fills = 0
        self.last_flip = ctx.now()

    def size(self, price: float) -> float:
        # Three significant digits; the connector rounds to the market's lot size.
        raw = self.notional / price
        return round(raw, max(0, 2 - int(math.floor(math.log10(raw)))))

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        now = ctx.now()
        if now - self.last_quote.get(md.symbol, 0.0) < self.requote:
            return
        self.last_quote[md.symbol] = now
        for cid in self.quotes.pop(md.symbol, []):
            ctx.cancel(md.symbol, cid)
        size = self.size(md.mark)
        pos = ctx.position(md.symbol)
        limit = self.max_position * size
        placed = []
        if pos < limit:
            cid = ctx.buy(md.symbol, size, price=md.mark * (1 - self.offset))
            if cid:
                placed.append(cid)
        if pos > -limit:
            cid = ctx.sell(md.symbol, size, price=md.mark * (1 + self.offset))
            if cid:
                placed.append(cid)
        self.quotes[md.symbol] = placed
        # Every so often cross the spread toward a target that flips sign: visible fills.
        if now - self.last_flip > 4 * self.requote:
            self.last_flip = now
            self.target_sign = -self.target_sign
        target = self.target_sign * size
        if abs(target - pos) >= size and abs(pos) <= limit:
            if target > pos:
                ctx.buy(md.symbol, size)
            else:
                ctx.sell(md.symbol, size)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills += 1

    def debug(self) -> dict[str, Any]:
        return {"fills": self.fills, "quotes": {k: len(v) for k, v in self.quotes.items()}}
