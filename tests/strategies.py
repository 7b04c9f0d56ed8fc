"""Strategies used only by tests (loaded as ``tests.strategies:Name``)."""

from __future__ import annotations

from trader.engine.strategy import Context, MarketData, Strategy


class Raiser(Strategy):
    """Raises on its third tick: a logic error the in-process dead switch must catch."""

    name = "raiser"

    def on_start(self, ctx: Context) -> None:
        self.ticks = 0

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        self.ticks += 1
        if self.ticks == 1:
            ctx.buy(md.symbol, 0.002 if md.symbol.startswith("BTC") else 0.05)
        if self.ticks >= 3:
            raise RuntimeError("strategy bug: deliberate failure for the dead-switch test")


class TickOrder(Strategy):
    """Benchmark strategy: one small market order on every tick of ``symbol`` whose mark changed,
    alternating buy and sell so the position stays within one order size.

    Params: ``symbol`` (default the first configured), ``amount`` (default 0.002)."""

    name = "tick_order"

    def on_start(self, ctx: Context) -> None:
        self.symbol = str(ctx.params.get("symbol") or ctx.symbols[0])
        self.amount = float(ctx.params.get("amount", 0.002))
        self.last_mark: float | None = None
        self.buy_next = True
        self.sent = 0

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        if md.symbol != self.symbol or md.mark == self.last_mark:
            return
        first = self.last_mark is None
        self.last_mark = md.mark
        if first:
            return  # the first mark seen is the baseline, not a change
        if self.buy_next:
            ctx.buy(md.symbol, self.amount)
        else:
            ctx.sell(md.symbol, self.amount)
        self.buy_next = not self.buy_next
        self.sent += 1

    def debug(self) -> dict[str, object]:
        return {"sent": self.sent}


class OneShot(Strategy):
    """One market buy of ``amount`` (default 0.01) on the first tick of the first symbol, then
    nothing: the order a kill may catch in flight."""

    name = "one_shot"

    def on_start(self, ctx: Context) -> None:
        self.sent = False
        self.amount = float(ctx.params.get("amount", 0.01))

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        if not self.sent and md.symbol == ctx.symbols[0]:
            self.sent = True
            ctx.buy(md.symbol, self.amount)
