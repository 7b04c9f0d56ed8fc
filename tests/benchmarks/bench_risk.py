"""Benchmark: cost of the pre-trade checks per order, in microseconds.

``run()`` returns {name: value}; ``make bench`` collects it. A realistic view: two symbols with
positions, eight resting orders, fresh marks; the order passes every check (the slowest path,
since the first refusal short-circuits).
"""

from __future__ import annotations

import time

from trader.engine.risk import AccountView, Mark, OpenOrder, OrderIntent, Position, RiskEngine
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _setup() -> tuple[RiskEngine, AccountView, list[OrderIntent]]:
    now = time.time()
    cfg = RiskConfig(max_orders_per_second=10**9, max_orders_per_minute=10**9)
    risk = RiskEngine(cfg, (BTC, ETH))
    risk.set_trading_state(P.RUNNING)
    orders = tuple(
        OpenOrder(f"r{i}", (BTC, ETH)[i % 2], ("buy", "sell")[i // 2 % 2], 0.01, 100.0)
        for i in range(8)
    )
    view = AccountView(
        equity=10_000.0,
        positions={BTC: Position(0.02, 60_000.0), ETH: Position(-0.5, 3_000.0)},
        marks={BTC: Mark(60_000.0, now), ETH: Mark(3_000.0, now)},
        open_orders=orders,
        confirmed=now,
    )
    intents = [
        OrderIntent(
            f"b{i}",
            BTC,
            ("buy", "sell")[i % 2],
            ("market", "limit")[i % 2 and 1],
            0.001,
            None if i % 2 == 0 else 60_010.0,
        )
        for i in range(1000)
    ]
    return risk, view, intents


def run() -> dict[str, float]:
    risk, view, intents = _setup()
    now = view.confirmed
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for o in intents:
            rej = risk.check(o, view, now)
            assert rej is None, rej
        best = min(best, (time.perf_counter() - t0) / len(intents))
    # a runaway strategy: default limits, an order every 10 ms, most refused by the throttle
    risk2 = RiskEngine(RiskConfig(), (BTC, ETH))
    risk2.set_trading_state(P.RUNNING)
    t0 = time.perf_counter()
    for i, o in enumerate(intents):
        t = now + i * 0.01
        v = AccountView(view.equity, view.positions, view.marks, view.open_orders, None, t)
        if risk2.check(o, v, t) is None:
            risk2.record_sent(o, t)
    runaway = (time.perf_counter() - t0) / len(intents)
    return {
        "risk_check_us": round(best * 1e6, 2),
        "risk_check_runaway_us": round(runaway * 1e6, 2),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} {v}")
