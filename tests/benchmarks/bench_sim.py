"""Simulator benchmarks (``make bench ARGS="--only sim"``).

* Order round trip: ccxt (REST, ``binanceusdm``) against the in-process sim, a 0.002 BTC MARKET
  order alternating buy and sell (the book's realistic profile), p50/p99 of the create call.
* Accelerated market: a standalone ``flatguard sim --speed N`` with ``flatguard up`` running
  the demo strategy against it; over a wall-clock window, the market time it covered (its
  ``market_ms`` in ``/_sim/state``), as simulated hours per wall-clock minute, with the tick
  rate it kept, the orders the strategy sent and the funding settlements made meanwhile.

Every process started here is reaped by pid (``Stack.close`` / ``Sim.close``).
"""

from __future__ import annotations

import statistics
import time

from tests.stack import Sim, Stack

SPEED = 3600  # one market hour per wall second


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def bench_round_trip(quick: bool = False) -> dict[str, float]:
    from tests.sim_harness import SimHarness

    n = 60 if quick else 300
    h = SimHarness(order_limit_10s=0, order_limit_1m=0)  # a benchmark, not a rate test
    try:
        ex = h.exchange(pro=False)

        async def body() -> list[float]:
            await ex.load_markets()
            times: list[float] = []
            for i in range(n + 10):
                t0 = time.perf_counter()
                await ex.create_order("BTC/USDT:USDT", "market", "buy" if i % 2 else "sell",
                                      0.002)
                if i >= 10:  # warm-up: connection, first signatures
                    times.append((time.perf_counter() - t0) * 1000)
            return times

        times = h.run(body(), timeout=120)
    finally:
        h.close()
    return {"sim_order_rtt_p50_ms": pct(times, 0.5), "sim_order_rtt_p99_ms": pct(times, 0.99),
            "sim_order_rtt_mean_ms": statistics.fmean(times)}


def bench_speed(quick: bool = False) -> dict[str, float]:
    window = 10.0 if quick else 20.0
    sim = Sim("--speed", str(SPEED))
    st: Stack | None = None
    try:
        st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n'
                   '[strategy]\nname = "demo"\n').start()
        time.sleep(2.0)  # the strategy's first ticks
        a, t0 = sim.state(), time.monotonic()
        time.sleep(window)
        b, t1 = sim.state(), time.monotonic()
        wall = t1 - t0
        market_h = (b["market_ms"] - a["market_ms"]) / 3_600_000
        return {
            "sim_speed": float(SPEED),
            "sim_hours_per_wall_min": market_h / wall * 60,
            "sim_speed_achieved_ratio": market_h * 3600 / wall / SPEED,
            "sim_ticks_per_s": (b["ticks"] - a["ticks"]) / wall,
            "sim_strategy_orders": float(b["orders_received"] - a["orders_received"]),
            "sim_funding_settlements": float(_funding_rows(sim, a["server_time"])),
            "sim_bugs": float(b["bugs"]),
        }
    finally:
        if st is not None:
            st.close()
        sim.close()


def _funding_rows(sim: Sim, since_ms: int) -> int:
    from tests.stack import http_json

    rows = http_json(f"{sim.url}/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={since_ms}"
                     "&limit=1000")
    return len(rows)


def run(quick: bool = False) -> dict[str, float]:
    return bench_round_trip(quick) | bench_speed(quick)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
