"""Control-plane benchmarks: command round trip through the control socket (p50/p99, against
the real commander process) and `flatguard ctl ping` wall time (target <= 150 ms)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tests.fakes.commander_peers import CommanderStack
from trader.kernel import bus

N = 500
CTL_RUNS = 10


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def run() -> dict[str, float]:
    s = CommanderStack()
    s.peers.answers["supervisor"]["status"] = {"processes": {}, "halted": False, "halt": {}}
    try:
        req = bus.SyncRequester(s.paths.control, "bench")
        out: dict[str, float] = {}
        for command in ("roll", "ping"):
            lat = []
            for _ in range(N):
                t = time.perf_counter()
                req.request("cmd", {"command": command}, timeout=10)
                lat.append((time.perf_counter() - t) * 1000)
            out[f"control_{command}_p50_ms"] = _pct(lat, 0.5)
            out[f"control_{command}_p99_ms"] = _pct(lat, 0.99)
        req.close()
        for label, cmd in (("ctl_ping", [sys.executable, "-m", "supervisor.cli", "ctl"]),
                           ("ctl_ping_direct", [sys.executable, "-m", "commander.cli"])):
            walls = []
            for _ in range(CTL_RUNS):
                t = time.perf_counter()
                r = subprocess.run([*cmd, "--run-dir", s.dir, "ping"], capture_output=True)
                walls.append((time.perf_counter() - t) * 1000)
                if r.returncode != 0:
                    walls = [float("nan")]
                    break
            out[f"{label}_wall_ms_median"] = statistics.median(walls)
        return out
    finally:
        s.close()


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:32s} {v:8.2f}")
