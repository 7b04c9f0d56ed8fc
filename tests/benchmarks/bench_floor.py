"""Tick-to-order against its floor, measured in the same run, sample by sample.

The stack (``flatguard up``: sim WebSocket -> connector (ccxt.pro) -> event proxy -> trader ->
``TickOrder`` -> risk -> DEALER/ROUTER -> connector -> ccxt REST -> sim) and the floor
(``floor.py``: one process reading the same sim's mark-price stream with aiohttp and posting a
signed MARKET order with aiohttp, no bus) run side by side on one simulator. Both are timed at
the same two points: the sim's tick (``published_ns`` of ``/_sim/price``) and the order's receipt
at the sim (``recv_ns``). Samples alternate (floor, stack, stack, floor, ...) so a load that
comes and goes on a shared machine weighs on both alike.

The stack trades BTCUSDT only (its config lists that one symbol) and the floor ETHUSDT only,
so a tick for one wakes nothing of the other: the same order (MARKET, signed, sides alternating)
on another symbol. The ratio stack / floor at p50 has a target of 2x (issue 11, point 7);
figures are printed, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.benchmarks.bench_stack import SAMPLE_TIMEOUT, TICK_CONFIG, WARMUP, exchange_config, pct
from tests.stack import ROOT, Sim, Stack

STACK_SYMBOL, STACK_PREFIX = "BTCUSDT", "fg"  # the trader's client ids start with "fg"
FLOOR_SYMBOL, FLOOR_PREFIX, FLOOR_AMOUNT = "ETHUSDT", "floor", "0.05"
STACK_CONFIG = 'symbols = ["BTC/USDT:USDT"]\n' + TICK_CONFIG


class Sampler:
    """Ticks one symbol at a time and finds the order it caused in the sim's order log."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.since = len(sim.control("orders"))
        marks = sim.state()["marks"]
        self.base = {s: round(float(marks[s]), 1) for s in (STACK_SYMBOL, FLOOR_SYMBOL)}
        self.refused = 0

    def one(self, symbol: str, prefix: str, i: int) -> float | None:
        """Tick-to-order in ms for one new mark of ``symbol``; None when no order came."""
        price = self.base[symbol] + (2.0 if i % 2 else 1.0)  # never the current mark
        published = int(self.sim.control("price", {"symbol": symbol,
                                                   "price": str(price)})["published_ns"])
        time.sleep(0.025)  # look once the order has surely arrived; then poll slowly (the sim
        deadline = time.monotonic() + SAMPLE_TIMEOUT  # is on the measured path)
        while time.monotonic() < deadline:
            new = self.sim.control("orders", {"since": self.since})
            for k, e in enumerate(new):
                if (e["method"] == "POST" and e.get("symbol") == symbol
                        and str(e.get("clientOrderId") or "").startswith(prefix)):
                    self.since += k + 1
                    if e.get("http_status") not in (None, 200):
                        self.refused += 1
                    return (int(e["recv_ns"]) - published) / 1e6
            time.sleep(0.01)
        self.since = len(self.sim.control("orders"))
        return None


def start_floor(sim: Sim) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.floor", sim.url, FLOOR_SYMBOL,
                          FLOOR_AMOUNT, FLOOR_PREFIX], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    if p.stdout.readline().strip() != "floor ready":
        p.kill()
        p.wait(5)
        raise RuntimeError("the floor process did not start")
    return p


def bench_floor(samples: int) -> dict[str, float]:
    sim = Sim()
    st = Stack(exchange_config(sim, STACK_CONFIG))
    floor: subprocess.Popen[str] | None = None
    try:
        st.start()
        floor = start_floor(sim)
        sim.control("freeze")
        time.sleep(0.3)
        s = Sampler(sim)
        lat: dict[str, list[float]] = {"stack": [], "floor": []}
        misses = {"stack": 0, "floor": 0}
        for i in range(samples + WARMUP):
            order = ("stack", "floor") if i % 2 else ("floor", "stack")
            for who in order:
                sym, prefix = ((STACK_SYMBOL, STACK_PREFIX) if who == "stack"
                               else (FLOOR_SYMBOL, FLOOR_PREFIX))
                ms = s.one(sym, prefix, i)
                if ms is None:
                    misses[who] += 1
                elif i >= WARMUP:
                    lat[who].append(ms)
                time.sleep(0.005)  # the fill and account events settle before the next tick
        out = {
            "stack_tick_to_order_p50_ms": pct(lat["stack"], 0.5),
            "stack_tick_to_order_p99_ms": pct(lat["stack"], 0.99),
            "floor_tick_to_order_p50_ms": pct(lat["floor"], 0.5),
            "floor_tick_to_order_p99_ms": pct(lat["floor"], 0.99),
        }
        out["stack_to_floor_p50_ratio"] = (out["stack_tick_to_order_p50_ms"]
                                           / out["floor_tick_to_order_p50_ms"])
        out["stack_to_floor_p99_ratio"] = (out["stack_tick_to_order_p99_ms"]
                                           / out["floor_tick_to_order_p99_ms"])
        out.update({"floor_samples": float(len(lat["floor"])),
                    "floor_misses": float(misses["floor"]),
                    "stack_vs_floor_samples": float(len(lat["stack"])),
                    "stack_vs_floor_misses": float(misses["stack"]),
                    "floor_bench_orders_refused": float(s.refused),
                    "floor_bench_stack_halted": float(bool(st.status()["halted"]))})
        return out
    finally:
        if floor is not None:
            floor.kill()  # our own child, by pid
            floor.wait(5)
        st.close()
        sim.close()


def run(quick: bool = False) -> dict[str, float]:
    return bench_floor(150 if quick else 300)
