"""Full-stack benchmarks: real ``flatguard up`` processes against a standalone simulated exchange.

Times are taken on both sides with ``time.time_ns()`` on this machine: the sim notes when it
publishes a tick (``/_sim/price`` reply ``published_ns``), when it receives an order request
(``recv_ns`` in ``/_sim/orders``) and when its account last became flat (``flat_since_ns`` in
``/_sim/state``, noted after every REST request).

* tick-to-order: the sim publishes a new mark -> WebSocket -> connector (its own stream reader,
  ``exchange/mdstream.py``) -> the md socket -> trader -> strategy ``tests.strategies:TickOrder``
  -> risk -> DEALER/ROUTER -> connector -> journal -> the venue's create (ccxt's transport) ->
  the sim receives the order. Untapped (``MdTap`` says why); then a shorter tapped pass for the
  legs. Optionally under a notification flood sent by a separate process.
* ``flatguard ctl ping`` wall time, ``up`` -> "flatguard ready" wall time, RSS of the stack.
* crash-to-flat (trader SIGKILL) and hang-to-flat (trader SIGSTOP, default heartbeat settings),
  with a position and a resting order on both symbols; the stack is resumed between runs.

Every process started here is reaped by pid (``Stack.close`` / ``Sim.close`` / ``Popen.kill``).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.stack import ROOT, Sim, Stack, wait_for
from tests.stack import seed_exposure as stack_seed_exposure

SYMBOL = "BTCUSDT"
WARMUP = 10
SAMPLE_TIMEOUT = 3.0  # s for one order to arrive; a miss is counted, not waited on forever
LEG_SAMPLES = 100  # the tapped pass that splits tick-to-order into its two legs

TICK_CONFIG = """
[strategy]
name = "tests.strategies:TickOrder"
[strategy.params]
symbol = "BTC/USDT:USDT"
amount = 0.002
[risk]
max_orders_per_second = 10000
max_orders_per_minute = 1000000
loop_max_round_trips = 1000000
loop_max_cost = 1000000.0
max_daily_loss = 1000000.0
stale_pause = 3600.0
stale_halt = 7200.0
"""
IDLE_CONFIG = '[strategy]\nname = "trader.engine.strategy:Strategy"\n'  # the base class: no orders


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def exchange_config(sim: Sim, extra: str = "") -> str:
    return f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{extra}'


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stack_pids(st: Stack) -> dict[str, int]:
    assert st.proc is not None
    pids = {"supervisor": st.proc.pid}
    for name, p in st.status()["processes"].items():
        if p.get("pid"):
            pids[name] = int(p["pid"])
    return pids


# --- tick-to-order ---------------------------------------------------------------------------


class MdTap:
    """A SUB on the event proxy noting when the connector published each ``md.`` message (its
    envelope ``ts``): splits tick-to-order into sim -> connector and connector -> order.

    It is not free: with it, every md message also wakes the connector's proxy-side send, the
    supervisor's proxy (XSUB, forwarding and XPUB threads) and this thread, on the same cores
    as the tick path (with no md subscriber on the proxy, the connector's PUB drops md before
    it leaves). So the tick-to-order figures come from an untapped pass and the legs from a
    separate tapped one."""

    def __init__(self, st: Stack) -> None:
        import threading

        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"md.BTC")
        self.sock.connect(st.paths.events_out)
        self.seen: list[tuple[float, int]] = []  # (mark, connector publish ns)
        self.legs: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from trader.kernel import wire

        while not self.stop.is_set():
            if self.sock.poll(100):
                msg = wire.decode(self.sock.recv_multipart())
                self.seen.append((float(msg.data.get("mark") or 0), int(msg.ts * 1e9)))

    def md_pub_ns(self, mark: float, after_ns: int) -> int | None:
        for m, ts in self.seen:
            if m == mark and ts >= after_ns - 1_000_000:
                return ts
        return None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close(0)
        self.ctx.term()


def tick_samples(sim: Sim, n: int, tap: MdTap | None = None) -> tuple[list[float], int]:
    """``n`` tick-to-order latencies in ms (after a warm-up) and the number of misses. With a
    ``tap``, ``tap.legs`` gets (sim -> connector md publish, md publish -> order) per sample."""
    base = round(float(sim.state()["marks"][SYMBOL]), 1)
    since = len(sim.control("orders"))
    lat: list[float] = []
    misses = 0
    for i in range(n + WARMUP):
        price = base + (2.0 if i % 2 else 1.0)  # never the current mark
        published = int(sim.control("price", {"symbol": SYMBOL, "price": str(price)})["published_ns"])
        # Look once the order has surely arrived, then poll slowly: a fast poll would load the
        # sim, which is on the measured path.
        time.sleep(0.025)
        deadline = time.monotonic() + SAMPLE_TIMEOUT
        hit = None
        while hit is None and time.monotonic() < deadline:
            new = sim.control("orders", {"since": since})
            for k, e in enumerate(new):
                if e["method"] == "POST" and str(e.get("clientOrderId") or "").startswith("fg"):
                    hit, since = e, since + k + 1
                    break
            else:
                time.sleep(0.01)
        if hit is None:
            misses += 1
            since = len(sim.control("orders"))
            continue
        if i >= WARMUP:
            lat.append((int(hit["recv_ns"]) - published) / 1e6)
            md_ns = tap.md_pub_ns(price, published) if tap is not None else None
            if tap is not None and md_ns is not None:
                tap.legs.append(((md_ns - published) / 1e6, (int(hit["recv_ns"]) - md_ns) / 1e6))
        time.sleep(0.005)  # the fill and account events settle before the next tick
    return lat, misses


FLOOD_SCRIPT = """
import sys, time, zmq
from pathlib import Path
from trader.kernel import runpaths
from trader.kernel.proc import NotifyClient
c = NotifyClient(zmq.Context.instance(), runpaths.RunPaths(Path(sys.argv[1])), "bench-flood")
batches = 0
print("flooding", flush=True)
while True:
    for i in range(100_000):
        c.send("info", "flood", "x", key=f"f{batches}-{i}")
    batches += 1
    print(f"batch={batches} sent={c.sent} dropped={c.dropped}", flush=True)
"""


def start_flood(st: Stack) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, str(st.run_dir)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    p.stdout.readline()  # "flooding": connected and sending
    return p


def stop_flood(p: subprocess.Popen[str]) -> dict[str, float]:
    p.kill()  # our own child, by pid
    out, _ = p.communicate(timeout=10)
    last = [ln for ln in out.splitlines() if ln.startswith("batch=")]
    if not last:
        return {"batches": 0.0}
    f = dict(kv.split("=") for kv in last[-1].split())
    return {k: float(v) for k, v in f.items()}


def bench_tick_to_order(samples: int, ctl_runs: int, flood: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    sim = Sim()
    st = Stack(exchange_config(sim, TICK_CONFIG))
    try:
        st.start()
        sim.control("freeze")
        time.sleep(0.3)
        lat, misses = tick_samples(sim, samples)  # untapped: the figures (see MdTap)
        tap = MdTap(st)
        time.sleep(0.3)  # the tap's subscription reaches the proxy (slow joiner)
        try:
            tapped, _ = tick_samples(sim, LEG_SAMPLES, tap)
        finally:
            tap.close()
        out["tick_to_order_tapped_p50_ms"] = pct(tapped, 0.5)
        if tap.legs:
            out["tick_to_md_publish_p50_ms"] = pct([a for a, _ in tap.legs], 0.5)
            out["md_publish_to_order_p50_ms"] = pct([b for _, b in tap.legs], 0.5)
            out["tick_to_md_publish_p99_ms"] = pct([a for a, _ in tap.legs], 0.99)
            out["md_publish_to_order_p99_ms"] = pct([b for _, b in tap.legs], 0.99)
        out["tick_to_order_p50_ms"] = pct(lat, 0.5)
        out["tick_to_order_p99_ms"] = pct(lat, 0.99)
        out["tick_to_order_max_ms"] = max(lat) if lat else float("nan")
        out["tick_to_order_samples"] = float(len(lat))
        out["tick_to_order_misses"] = float(misses)
        pids = stack_pids(st)
        out["stack_rss_mib"] = sum(rss_kib(p) for p in pids.values()) / 1024
        for name, p in sorted(pids.items()):
            out[f"rss_{name}_mib"] = rss_kib(p) / 1024
        out["rss_external_sim_mib"] = rss_kib(sim.proc.pid) / 1024
        walls = []
        for _ in range(ctl_runs):
            t = time.perf_counter()
            r = st.ctl("ping")
            walls.append((time.perf_counter() - t) * 1000)
            assert r.returncode == 0, r.stderr
        out["ctl_ping_wall_ms"] = statistics.median(walls)
        if flood:
            fp = start_flood(st)
            try:
                lat, misses = tick_samples(sim, samples)
            finally:
                stats = stop_flood(fp)
            out["tick_to_order_flood_p50_ms"] = pct(lat, 0.5)
            out["tick_to_order_flood_p99_ms"] = pct(lat, 0.99)
            out["tick_to_order_flood_misses"] = float(misses)
            out["flood_notifications_sent"] = stats.get("sent", 0.0)
            out["flood_notifications_dropped"] = stats.get("dropped", 0.0)
        out["tick_stack_halted"] = float(bool(st.status()["halted"]))
    finally:
        st.close()
        sim.close()
    return out


# --- up to ready -----------------------------------------------------------------------------


def bench_up_ready(runs: int) -> dict[str, float]:
    sim = Sim()
    times = []
    try:
        for _ in range(runs):
            st = Stack(exchange_config(sim, IDLE_CONFIG))
            try:
                t = time.perf_counter()
                st.start(wait_ready=False)
                wait_for(lambda s=st: s.find("flatguard ready") or s._died(), 90, "ready",
                         interval=0.005)
                times.append(time.perf_counter() - t)
                st.remember_pids()
                st.stop()
            finally:
                st.close()
    finally:
        sim.close()
    return {"up_to_ready_s": statistics.median(times), "up_to_ready_max_s": max(times)}


# --- crash / hang to flat --------------------------------------------------------------------


def seed_exposure(sim: Sim) -> None:
    """A position and a resting order on both symbols (as the kill-switch tests do)."""
    stack_seed_exposure(sim)
    assert sim.state()["flat_since_ns"] is None


def _trader_pid(st: Stack) -> int:
    return int(st.status()["processes"]["trader"]["pid"])


def _one_kill(st: Stack, sim: Sim, sig: int) -> float:
    """Seed exposure, signal the trader, return ms from the signal to the sim being flat."""
    seed_exposure(sim)
    pid = _trader_pid(st)
    st.pids.add(pid)
    t0 = time.time_ns()
    os.kill(pid, sig)
    flat = wait_for(lambda: sim.state()["flat_since_ns"], 60, "the account flat", interval=0.01)
    wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"], 60,
             "HALTED, verified flat")
    # resume: the supervisor starts a new trader; wait until it is up again
    r = st.request(st.paths.supervisor, "resume", timeout=10)
    assert r["resumed"] is True, r
    wait_for(lambda: (p := st.status()["processes"]["trader"])["up"] and p["pid"] != pid, 60,
             "the trader up again")
    return (int(flat) - t0) / 1e6


def bench_kill_to_flat(crash_runs: int, hang_runs: int) -> dict[str, float]:
    sim = Sim()
    st = Stack(exchange_config(sim, IDLE_CONFIG))  # default supervisor/kill-switch settings
    out: dict[str, float] = {}
    try:
        st.start()
        for name, sig, runs in (("crash", signal.SIGKILL, crash_runs),
                                ("hang", signal.SIGSTOP, hang_runs)):
            xs = [_one_kill(st, sim, sig) for _ in range(runs)]
            out[f"{name}_to_flat_p50_ms"] = pct(xs, 0.5)
            out[f"{name}_to_flat_p99_ms"] = pct(xs, 0.99)
            out[f"{name}_to_flat_runs"] = float(len(xs))
    finally:
        st.close()
        sim.close()
    return out


def bench_tick(quick: bool = False) -> dict[str, float]:
    return bench_tick_to_order(200 if quick else 400, 10, flood=True)


def bench_up(quick: bool = False) -> dict[str, float]:
    return bench_up_ready(2 if quick else 3)


def bench_killswitch(quick: bool = False) -> dict[str, float]:
    return bench_kill_to_flat(5 if quick else 20, 2 if quick else 5)


BENCHES: dict[str, Callable[[bool], dict[str, float]]] = {
    "tick": bench_tick, "up": bench_up, "killswitch": bench_killswitch}


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for fn in BENCHES.values():
        out.update(fn(quick))
    return out


if __name__ == "__main__":
    import json

    which = [a for a in sys.argv[1:] if not a.startswith("-")] or list(BENCHES)
    res: dict[str, Any] = {}
    for name in which:
        res.update(BENCHES[name]("--quick" in sys.argv))
    print(json.dumps(res, indent=1))
