"""Notifier benchmarks: publisher-side cost of one ``NotifyClient.send`` and a 100,000-message
flood against a real notifier process (sent/dropped counts, exactness, notifier RSS).

``run() -> dict[str, float]``; wired into ``make bench`` by the lead. Standalone:
``python -m tests.benchmarks.bench_notifier``.
"""

from __future__ import annotations

import time

from tests.fakes.webhook import FakeWebhook
from tests.integration.test_notifier_process import FAST, NotifierStack, wait
from trader.kernel.proc import NotifyClient


def _rss_kib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return 0.0


def run() -> dict[str, float]:
    out: dict[str, float] = {}
    with FakeWebhook() as wh:
        st = NotifierStack({"dedup_window": 0, "webhook": {"url": wh.hook_url(), **FAST}})
        try:
            st.ready()
            client = NotifyClient(st.ctx, st.paths, "bench")
            # publisher-side cost, below the HWM (the notifier drains as we go)
            n = 2000
            t0 = time.perf_counter()
            for i in range(n):
                client.send("info", "bench", "x", key=f"b{i}")
            out["notify_send_us"] = (time.perf_counter() - t0) / n * 1e6
            wait(lambda: st.request("stats")["received"] == client.sent)
            rss0 = _rss_kib(st.proc.pid)
            sent0, dropped0 = client.sent, client.dropped
            t0 = time.perf_counter()
            for i in range(100_000):
                client.send("info", f"flood {i}", "noise", key=f"f{i}")
            out["flood_send_s"] = time.perf_counter() - t0
            flood_sent = client.sent - sent0
            out["flood_sent"] = flood_sent
            out["flood_dropped_at_client"] = client.dropped - dropped0
            stats = wait(lambda: (s := st.request("stats"))["received"] == client.sent and s,
                         timeout=120)
            c = stats["sinks"]["webhook"]
            out["flood_dropped_at_sink"] = c["dropped"]
            out["counts_exact"] = float(
                all(v["published"] == v["sent"] + v["dropped"] + v["failed"] + v["queued"]
                    for v in stats["sinks"].values()))
            out["notifier_rss_mib"] = _rss_kib(st.proc.pid) / 1024
            out["notifier_rss_growth_mib"] = (_rss_kib(st.proc.pid) - rss0) / 1024
            client.close()
        finally:
            st.close()
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:28s} {v:12.3f}")
