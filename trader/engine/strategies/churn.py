"""``churn``: a deliberately misbehaving strategy, a rehearsal for the risk guards.

It is the runaway loop the guards exist for: on every tick it fires ``orders_per_tick`` market
orders, all on one side, flips the side on the next tick, never looks at its fills or its
position and never stops by itself. Run it on the sim and watch the throttle cap the order rate,
the exposure caps hold, and the loop detector put the symbol in REDUCING (then halt, if it
breaches again). Never point it at a real account.
Params: ``amount`` (contracts per order, default 0.01), ``orders_per_tick`` (default 5),
``limit`` (true: limit orders at the touch instead of market orders, default false).
"""

from __future__ import annotations

from typing import Any

from trader.engine.strategy import Context, Fill, MarketData, Strategy


class Churn(Strategy):
    name = "churn"

    def on_start(self, ctx: Context) -> None:
        p = ctx.params
        self.amount = float(p.get("amount", 0.01))
        self.orders_per_tick = int(p.get("orders_per_tick", 5))
        self.limit = bool(p.get("limit", False))
        if self.amount <= 0 or self.orders_per_tick <= 0:
            raise ValueError("churn: amount and orders_per_tick must be > 0")
        self.buying: dict[str, bool] = {}
        self.sent = 0
        self.refused = 0

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        buying = self.buying.get(md.symbol, True)
        self.buying[md.symbol] = not buying  # flip every tick, whatever happened
        for _ in range(self.orders_per_tick):
            if buying:
                cid = ctx.buy(md.symbol, self.amount, md.ask if self.limit else None)
            else:
                cid = ctx.sell(md.symbol, self.amount, md.bid if self.limit else None)
            if cid:
                self.sent += 1
            else:
                self.refused += 1  # and carries on regardless: that is the point

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass  # ignores fills on purpose

    def debug(self) -> dict[str, Any]:
        return {"sent": self.sent, "refused": self.refused, "buying": dict(self.buying)}
