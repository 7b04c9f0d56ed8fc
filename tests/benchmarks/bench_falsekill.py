"""False kills under CPU load, and hang -> flat under the same load (issue 13, point 1).

    python -m tests.benchmarks.bench_falsekill [--starts N] [--hold S] [--hogs H]
    (in ``make bench``: suite ``falsekill``, 50 starts; 10 with ``--quick``)

Two (``H``) CPU-bound processes (``while True: pass``) run for the whole benchmark on this machine's
cores. ``N`` times, a fresh ``flatguard up`` (default config: the ``demo`` strategy on the
built-in simulator) starts and is held ``S`` seconds; any kill switch or hung helper in that
time is a false kill (nothing was hung). Then exposure is seeded on the sim, the trader is
SIGSTOPped and the time until the sim's account is flat is one hang -> flat sample.

Also counted: extensions the supervisor granted a starved process (each one a kill under the
plain ``liveness x interval`` rule) and the latest a beat came during one.

Every process started here is reaped by pid (hogs: ``Popen.kill``; stacks: ``Stack.close``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

from tests.stack import Stack, seed_exposure, wait_for

HOG = "while True: pass"
STARTS = 50
HOLD = 10.0
HOGS = 2
CONFIG = '[exchange]\nid = "sim"\n'  # the built-in simulator, every other setting default
FALSE_KILL = re.compile(r"KILL SWITCH|process=\w+ hung: ")  # the kill switch, a helper killed
LATE = re.compile(r"process=(\w+) heartbeat late, not hung: no heartbeat for ([\d.]+) s")
BACK = re.compile(r"process=(\w+) heartbeat late, not hung: beat again after ([\d.]+) s")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


class _SimView:
    """The stack's built-in sim, seen through the helpers tests use for a standalone one."""

    def __init__(self, st: Stack) -> None:
        self.st = st

    def state(self) -> dict:
        return self.st.sim_state()

    def control(self, path: str, body: dict | None = None) -> object:
        return self.st.sim_control(path, body)


def one_start(hold: float) -> dict[str, object]:
    """Start, hold, then SIGSTOP the trader and time the flatten. Returns what was seen."""
    st = Stack(CONFIG)
    out: dict[str, object] = {"false_kill": "", "hang_ms": None, "late": [], "back": [],
                              "error": ""}
    try:
        st.start()
        t_end = time.monotonic() + hold
        while time.monotonic() < t_end and not out["false_kill"]:
            time.sleep(0.2)
            out["false_kill"] = next((ln for ln in list(st.lines) if FALSE_KILL.search(ln)), "")
        if not out["false_kill"]:
            sim = _SimView(st)
            seed_exposure(sim)  # type: ignore[arg-type]
            pid = int(st.status()["processes"]["trader"]["pid"])
            st.pids.add(pid)
            t0 = time.time_ns()
            os.kill(pid, signal.SIGSTOP)
            flat = wait_for(lambda: sim.state()["flat_since_ns"], 60, "the account flat",
                            interval=0.01)
            out["hang_ms"] = (int(flat) - t0) / 1e6
            out["hang_line"] = st.find("KILL SWITCH")
    except Exception as e:  # noqa: BLE001 - one broken start is counted, the rest still run
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        st.close()
        out["late"] = [(m[1], float(m[2])) for ln in st.lines if (m := LATE.search(ln))]
        out["back"] = [(m[1], float(m[2])) for ln in st.lines if (m := BACK.search(ln))]
    return out


def bench(starts: int = STARTS, hold: float = HOLD, hogs_n: int = HOGS,
          verbose: bool = True) -> dict[str, float]:
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs_n)]
    kills: list[str] = []
    errors: list[str] = []
    hang_ms: list[float] = []
    late: list[tuple[str, float]] = []
    back: list[tuple[str, float]] = []
    t0 = time.monotonic()
    try:
        for i in range(starts):
            r = one_start(hold)
            if r["false_kill"]:
                kills.append(str(r["false_kill"]))
            if r["error"]:
                errors.append(str(r["error"]))
            if r["hang_ms"] is not None:
                hang_ms.append(float(r["hang_ms"]))  # type: ignore[arg-type]
            late += r["late"]  # type: ignore[operator]
            back += r["back"]  # type: ignore[operator]
            if verbose:
                print(f"start {i + 1}/{starts}: false_kill={bool(r['false_kill'])} "
                      f"hang_to_flat_ms={r['hang_ms']} extensions={r['late']} "
                      f"beat_again={r['back']}", file=sys.stderr, flush=True)
                for line in (str(r["false_kill"]), str(r.get("hang_line") or ""),
                             str(r["error"])):
                    if line:
                        print("   ", line[-300:], file=sys.stderr, flush=True)
    finally:
        for p in hogs:  # our own children, by pid
            p.kill()
            p.wait()
    return {
        "falsekill_starts": float(starts),
        "falsekill_hogs": float(hogs_n),
        "falsekill_kills": float(len(kills)),
        "falsekill_errors": float(len(errors)),  # starts that broke for another reason
        "falsekill_extensions": float(len(late)),
        "falsekill_extension_worst_s": max((s for _, s in back), default=0.0),
        "hang_to_flat_loaded_p50_ms": pct(hang_ms, 0.5),
        "hang_to_flat_loaded_p99_ms": pct(hang_ms, 0.99),
        "hang_to_flat_loaded_max_ms": max(hang_ms, default=float("nan")),
        "falsekill_seconds": time.monotonic() - t0,
    }


def run(quick: bool = False) -> dict[str, float]:
    return bench(10 if quick else STARTS)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_falsekill",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=STARTS, help="stacks to start (default 50)")
    ap.add_argument("--hold", type=float, default=HOLD, help="seconds each is held (10)")
    ap.add_argument("--hogs", type=int, default=HOGS, help="CPU-bound processes (2)")
    a = ap.parse_args()
    print(json.dumps(bench(a.starts, a.hold, a.hogs), indent=1))
