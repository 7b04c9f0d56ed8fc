"""Benchmark: kill with an order in flight -> verified flat, and the kill path's cost per round.

A real stack on a standalone simulator whose new orders take ``LATENCY_MS`` to be processed (a
busy matching engine); the one-shot strategy sends a market buy; the kill comes while it is on
its way. Figures: ms from the kill to "verified flat" (which now includes the in-flight bound:
the order's recvWindow after the fence), and the exchange requests of the kill path's last
round (``flatguard_killswitch_round_requests``). ``python -m tests.benchmarks killpath``.
"""

from __future__ import annotations

import re
import time

from tests.benchmarks.bench_stack import exchange_config, pct
from tests.stack import Sim, Stack, is_flat, wait_for

LATENCY_MS = 1000
CONFIG = """
[strategy]
name = "tests.strategies:OneShot"
[killswitch]
watch_after = 0
"""


def _round_requests(st: Stack) -> float:
    m = re.search(r"^flatguard_killswitch_round_requests (\S+)$", st.metrics(), re.M)
    return float(m.group(1)) if m else float("nan")


def _one(st: Stack, sim: Sim) -> tuple[float, float]:
    before = sim.state()["requests"].get("POST /fapi/v1/order", 0)
    wait_for(lambda: sim.state()["requests"].get("POST /fapi/v1/order", 0) > before, 60,
             "the one-shot buy on its way", interval=0.005)
    t0 = time.monotonic()
    st.request(st.paths.supervisor, "kill", {"reason": "bench"}, timeout=10)
    wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"], 60,
             "verified flat", interval=0.01)
    took = (time.monotonic() - t0) * 1000
    assert is_flat(sim.state())
    reqs = _round_requests(st)
    r = st.request(st.paths.supervisor, "resume", timeout=15)
    assert r["resumed"] is True, r
    wait_for(lambda: st.status()["processes"]["trader"]["up"], 60, "the trader up again")
    return took, reqs


def bench_inflight_kill(runs: int) -> dict[str, float]:
    sim = Sim()
    st = Stack(exchange_config(sim, CONFIG))
    try:
        sim.control("latency", {"ms": LATENCY_MS, "path": "/fapi/v1/order", "method": "POST"})
        st.start()
        xs, reqs = zip(*(_one(st, sim) for _ in range(runs)), strict=True)
    finally:
        st.close()
        sim.close()
    return {"inflight_kill_to_verified_p50_ms": pct(list(xs), 0.5),
            "inflight_kill_to_verified_p99_ms": pct(list(xs), 0.99),
            "killpath_round_requests_max": max(reqs),
            "inflight_kill_runs": float(runs)}


def run(quick: bool = False) -> dict[str, float]:
    return bench_inflight_kill(2 if quick else 5)
