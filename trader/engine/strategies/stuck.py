"""``stuck``: trades like ``demo``, then blocks inside its tick handler while the process lives.

A rehearsal of the failure heartbeats exist for: the process is alive, a side thread could still
say so, but the loop that does the work makes no progress. Heartbeats come from that loop, so
the supervisor sees the hang within ``heartbeat_liveness x heartbeat_interval``.
Params: ``after`` (s before it blocks, default 2).
"""

from __future__ import annotations

import time

from trader.engine.strategies.demo import Demo
from trader.engine.strategy import Context, MarketData


class Stuck(Demo):
    name = "stuck"

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.block_at = ctx.now() + float(ctx.params.get("after", 2.0))

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        if ctx.now() >= self.block_at:
            ctx.log("stuck strategy: blocking the loop now")
            while True:  # a deadlock, an infinite loop, a blocking call: the loop never returns
                time.sleep(3600)
        super().on_tick(ctx, md)
