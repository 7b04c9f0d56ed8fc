"""``make bench``: every benchmark, each figure printed with its target and the ratio.

    python -m tests.benchmarks [--quick] [--only NAME[,NAME...]]     (make bench ARGS="--quick")

Figures are printed, never asserted (timings depend on the machine). The output is a table and,
as the last line, one JSON object ``{"figures": {...}, "misses": [...], "seconds": ...}`` for the
issue notes. A benchmark that fails is reported (and the rest still run); the exit status is 1
only then, never because a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

# name -> (module, function); each returns dict[str, float], optionally taking ``quick``
SUITES: dict[str, tuple[str, str]] = {
    "bus": ("tests.benchmarks.bench_bus", "run"),
    "tick": ("tests.benchmarks.bench_stack", "bench_tick"),
    "floor": ("tests.benchmarks.bench_floor", "run"),
    "up": ("tests.benchmarks.bench_stack", "bench_up"),
    "killswitch": ("tests.benchmarks.bench_stack", "bench_killswitch"),
    "killpath": ("tests.benchmarks.bench_killpath", "run"),
    "risk": ("tests.benchmarks.bench_risk", "run"),
    "connector": ("tests.benchmarks.bench_connector", "run"),
    "control": ("tests.benchmarks.bench_control", "run"),
    "notifier": ("tests.benchmarks.bench_notifier", "run"),
    "sim": ("tests.benchmarks.bench_sim", "run"),
    "falsekill": ("tests.benchmarks.bench_falsekill", "run"),
    "suites": ("tests.benchmarks.bench_suites", "run"),
}


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    value: float
    unit: str
    source: str  # where the target comes from

    def ratio(self, x: float) -> float:
        """figure / target: <= 1 is within target for "<=", >= 1 for ">="."""
        return x / self.value if self.value else math.nan

    def met(self, x: float) -> bool:
        return x <= self.value if self.op == "<=" else x >= self.value


TARGETS: dict[str, Target] = {
    "bus_ratio": Target(">=", 0.7, "x raw", "bus throughput vs raw pyzmq (recv_batch, as the engine)"),
    "tick_to_order_p50_ms": Target("<=", 2.0, "ms", "tick-to-order p50"),
    "tick_to_order_p99_ms": Target("<=", 10.0, "ms", "tick-to-order p99"),
    "tick_to_order_flood_p99_ms": Target("<=", 10.0, "ms", "tick-to-order p99 under flood"),
    "stack_to_floor_p50_ratio": Target("<=", 2.0, "x floor", "tick-to-order p50 / one-process floor"),
    "tick_to_floor_p50_ratio": Target("<=", 2.0, "x floor", "tick suite p50 / floor p50, same run"),
    "ctl_ping_wall_ms": Target("<=", 150.0, "ms", "flatguard ctl ping, real stack"),
    "ctl_ping_wall_ms_median": Target("<=", 150.0, "ms", "ctl ping, commander stand-in"),
    "up_to_ready_s": Target("<=", 3.0, "s", "flatguard up -> ready"),
    "stack_rss_mib": Target("<=", 500.0, "MiB", "RSS supervisor + children"),
    "crash_to_flat_p50_ms": Target("<=", 100.0, "ms", "trader SIGKILL -> flat"),
    "hang_to_flat_p50_ms": Target("<=", 1500.0, "ms", "trader SIGSTOP -> flat"),
    "hang_to_flat_p99_ms": Target("<=", 1500.0, "ms", "trader SIGSTOP -> flat (worst)"),
    "falsekill_kills": Target("<=", 0.0, "kills", "false kills, 2 CPU hogs (issue 13: 0 in 50)"),
    "hang_to_flat_loaded_p50_ms": Target("<=", 1500.0, "ms", "SIGSTOP -> flat, 2 CPU hogs"),
    "hang_to_flat_loaded_p99_ms": Target("<=", 1500.0, "ms", "SIGSTOP -> flat, 2 CPU hogs"),
    # the order's recvWindow (5 s) + the 1 s Binance accepts a timestamp ahead + one round: the
    # proof costs the bound, no more (the sim's new orders take 1 s in this benchmark)
    "unit_suite_s": Target("<=", 30.0, "s", "make test-fast (issue 11)"),
    "integration_suite_s": Target("<=", 240.0, "s", "make test, 2 cores (issue 11)"),
    "unit_failed": Target("<=", 0.0, "tests", "unit failures"),
    "integration_failed": Target("<=", 0.0, "tests", "integration failures"),
    "inflight_kill_to_verified_p50_ms": Target("<=", 7500.0, "ms", "kill, order in flight -> verified"),
}


def _call(fn: Callable[..., dict[str, float]], quick: bool) -> dict[str, float]:
    if "quick" in inspect.signature(fn).parameters:
        return fn(quick=quick)
    return fn()


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def table(figures: dict[str, dict[str, float]]) -> tuple[str, list[str]]:
    rows = [("suite", "figure", "value", "target", "ratio", "")]
    misses = []
    for suite, figs in figures.items():
        for name, x in figs.items():
            t = TARGETS.get(name)
            if t is None:
                rows.append((suite, name, _fmt(x), "", "", ""))
                continue
            ok = t.met(x)
            if not ok:
                misses.append(name)
            rows.append((suite, name, _fmt(x), f"{t.op} {_fmt(t.value)} {t.unit}",
                         f"{t.ratio(x):.2f}", "ok" if ok else "MISS"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines), misses


def derived(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Ratios across suites of the same run: the ``tick`` suite's figures over the floor's."""
    flat = {k: v for f in figures.values() for k, v in f.items()}
    out = {f"tick_to_floor_{q}_ratio": flat[f"tick_to_order_{q}_ms"] / flat[f"floor_tick_to_order_{q}_ms"]
           for q in ("p50", "p99")
           if flat.get(f"tick_to_order_{q}_ms") and flat.get(f"floor_tick_to_order_{q}_ms")}
    return {"tick/floor": out} if out else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (about a minute)")
    ap.add_argument("--only", default="", help=f"comma-separated suites: {', '.join(SUITES)}")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    t0 = time.monotonic()
    figures: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    for name in names:
        module, attr = SUITES[name]
        t = time.monotonic()
        print(f"bench suite={name} ...", file=sys.stderr, flush=True)
        try:
            fn = getattr(importlib.import_module(module), attr)
            figures[name] = {k: float(v) for k, v in _call(fn, args.quick).items()}
        except Exception as e:  # report it, run the rest
            traceback.print_exc()
            failed[name] = f"{type(e).__name__}: {e}"
        print(f"bench suite={name} seconds={time.monotonic() - t:.1f}"
              + (" FAILED" if name in failed else ""), file=sys.stderr, flush=True)
    figures.update(derived(figures))
    text, misses = table(figures)
    print(text)
    for name, err in failed.items():
        print(f"FAILED suite={name}: {err}")
    print(json.dumps({"figures": {k: v for f in figures.values() for k, v in f.items()},
                      "misses": misses, "failed": failed, "quick": args.quick,
                      "seconds": round(time.monotonic() - t0, 1)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
