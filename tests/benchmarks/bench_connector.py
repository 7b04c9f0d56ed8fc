"""Connector benchmarks: request round trip over the bus to the sim, feed latency, reconcile cost.

``run()`` starts a real connector process against the sim (same harness as the tests) and
returns milliseconds:

* ``connector_order_rtt_p50_ms`` / ``_p99_ms``: ``order.create`` (market) over DEALER->ROUTER,
  through ccxt to the sim and back, as the trader sees it;
* ``connector_fill_event_p50_ms`` / ``_p99_ms``: the sim's fill event time (its ``T``/``E``
  timestamp, carried as the fill's ``ts``) -> a SUB on the event proxy receives ``fill.*``;
* ``connector_reconcile_ms_p50``: a ``sync`` request (positions + open orders + balance + fill
  catch-up over REST, diff, publish).
"""

from __future__ import annotations

import statistics
import time

import zmq

from tests.connector_harness import ConnectorProc
from trader.kernel import wire

N_ORDERS = 200


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run() -> dict[str, float]:
    c = ConnectorProc(reconcile_interval=3600.0)
    try:
        sub = c.plumbing.subscriber(["fill."])
        time.sleep(0.3)  # the SUB joins the proxy (slow joiner)
        rtt, feed = [], []
        side = "buy"
        for i in range(N_ORDERS):
            t0 = time.perf_counter()
            c.request("order.create", {"client_id": f"b{i}", "symbol": "BTC/USDT:USDT",
                                       "side": side, "type": "market", "amount": 0.01})
            rtt.append((time.perf_counter() - t0) * 1000)
            side = "sell" if side == "buy" else "buy"
            if sub.poll(5000):
                seen = time.time()
                m = wire.decode(sub.recv_multipart())
                feed.append((seen - m.data["ts"]) * 1000)
            while sub.poll(0):
                sub.recv_multipart(zmq.NOBLOCK)
        sub.close(0)
        rec = []
        for _ in range(20):
            t0 = time.perf_counter()
            c.request("sync")
            rec.append((time.perf_counter() - t0) * 1000)
        return {
            "connector_order_rtt_p50_ms": statistics.median(rtt),
            "connector_order_rtt_p99_ms": _pct(rtt, 0.99),
            "connector_fill_event_p50_ms": statistics.median(feed) if feed else float("nan"),
            "connector_fill_event_p99_ms": _pct(feed, 0.99) if feed else float("nan"),
            "connector_reconcile_ms_p50": statistics.median(rec),
        }
    finally:
        c.close()


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} {v:.2f}")
