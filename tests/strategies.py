"""Strategies used only by tests (loaded as ``tests.strategies:Name``)."""

from __future__ import annotations

from trader.strategy import Context, MarketData, Strategy


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
