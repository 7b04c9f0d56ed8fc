"""The kill path's promises, end to end against a standalone simulated exchange.

- A kill while a market order is in flight (new orders take 3 s at the exchange): the order lands
  after the first look, and "verified flat" still means flat, seconds later too.
- ``resume --yes`` while an orderly stop is flattening is refused.
- The supervisor SIGKILLed while cancels fail: the exchange's dead-man switch stays armed.
- A helper (the notifier) that keeps dying is restarted forever and reported as flapping.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.stack import Sim, Stack, is_flat, pids_gone, positions_of, wait_for

pytestmark = pytest.mark.integration

FAST = """
[supervisor]
connector_grace = 3.0
[killswitch]
backoff = 0.5
"""


def make_stack(sim: Sim, stacks: list[Stack], extra: str = "") -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{FAST}{extra}')
    stacks.append(st)
    return st


def metric(st: Stack, name: str, **labels: str) -> float | None:
    lbl = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = rf"^{name}{{{lbl}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    m = re.search(pat, st.metrics(), re.M)
    return float(m.group(1)) if m else None


def test_kill_with_a_market_order_in_flight_ends_flat_and_stays_flat(
        sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks, 'watch_after = 30\n[strategy]\nname = "tests.strategies:OneShot"\n')
    # Only new orders are slow (the exchange's matching engine is busy); reads and cancels are not.
    sim.control("latency", {"ms": 3000, "path": "/fapi/v1/order", "method": "POST"})
    st.start()
    wait_for(lambda: sim.state()["requests"].get("POST /fapi/v1/order", 0) >= 1, 60,
             "the strategy's market buy on its way to the exchange")
    kill_ns = time.time_ns()
    r = st.ctl("kill")
    assert r.returncode == 0, (r.stdout, r.stderr)
    wait_for(lambda: st.find("flat verified"), 90, "the kill switch's verdict")
    assert st.find("for orders in flight"), "the verdict did not wait for the in-flight bound"
    log = sim.control("orders")
    buys = [e for e in log if e.get("side") == "BUY" and e.get("reduceOnly") != "true"]
    assert any(e.get("accepted") for e in buys), buys  # the buy did land after the kill...
    assert not [e for e in buys if int(e["recv_ns"]) > kill_ns], buys  # ...none was sent after
    assert is_flat(sim.state()), sim.state()
    # Still flat later: what "verified" promised. 4 s outlasts the 3 s a new order takes at
    # this exchange, so anything in flight at the verdict would have landed by the end.
    end = time.monotonic() + 4
    while time.monotonic() < end:
        assert is_flat(sim.state()), positions_of(sim.state())
        time.sleep(0.5)
    s = st.status()
    assert s["halted"] and s["halt"]["verified_flat"]


def test_resume_during_an_orderly_stop_is_refused(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks, "watch_after = 0\n").start()
    assert st.ctl("kill").returncode == 0
    wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"], 60,
             "HALTED, verified flat")
    # The orderly stop will have something slow to close: a position, and new orders take 4 s.
    sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})
    sim.control("latency", {"ms": 4000, "path": "/fapi/v1/order", "method": "POST"})
    st.signal(signal.SIGTERM)
    wait_for(lambda: st.find("orderly stop: shutdown=flatten"), 30, "the orderly stop")
    r = st.ctl("resume", "--yes")
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "stopping" in (r.stdout + r.stderr), (r.stdout, r.stderr)
    assert st.wait_exit(90) == 0, st.output()
    assert is_flat(sim.state())
    assert not st.find("RESUMED by a person")


def test_supervisor_sigkill_with_cancels_failing_leaves_the_countdown_armed(
        sim: Sim, stacks: list[Stack]) -> None:
    # A long countdown: an armed entry at the end can only mean "never disarmed", not "re-armed".
    # The trader's self-flatten gives up after 3 s instead of 30: its failing rounds are the
    # same, only fewer (the budget itself: tests/unit/engine/test_trader_commands.py).
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\ndms_interval = 0.5\n'
               f'dms_timeout = 600\n{FAST}self_flatten_timeout = 3\n')
    stacks.append(st)
    st.start()
    wait_for(lambda: set(sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}, 30,
             "the exchange's dead-man switch armed for both symbols")
    mark = float(sim.state()["marks"]["BTCUSDT"])
    sim.control("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                          "quantity": "0.002", "price": f"{mark * 0.95:.1f}",
                          "timeInForce": "GTC"})
    for path in ("/fapi/v1/allOpenOrders", "/fapi/v1/order"):
        sim.control("fail", {"path": path, "method": "DELETE", "count": 100_000, "status": 503})
    children = [p["pid"] for p in st.remember_pids()["processes"].values() if p.get("pid")]
    assert st.proc is not None
    os.kill(st.proc.pid, signal.SIGKILL)
    st.wait_exit(10)

    wait_for(lambda: pids_gone(children), 90, "every child to exit after the supervisor's loss")
    state = sim.state()
    assert state["open_orders"], "the test needs an order left resting"
    assert set(state["countdowns"]) >= {"BTCUSDT"}, state["countdowns"]


def test_a_notifier_that_keeps_dying_is_restarted_forever_and_flagged(
        sim: Sim, stacks: list[Stack]) -> None:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n[supervisor]\nconnector_grace = 3.0\n'
               "restart_intensity = 2\nrestart_period = 120\nrestart_backoff_max = 1\n")
    stacks.append(st)
    st.start()
    for _ in range(4):
        pid = wait_for(lambda: (p := st.status()["processes"]["notifier"])["state"] == "running"
                       and p["pid"], 60, "the notifier running")
        st.pids.add(int(pid))
        os.kill(int(pid), signal.SIGKILL)
        wait_for(lambda p=pid: st.status()["processes"]["notifier"]["pid"] != p, 30,
                 "the notifier's death seen")
    wait_for(lambda: metric(st, "flatguard_process_flapping", process="notifier") == 1.0, 30,
             "flatguard_process_flapping{process=notifier} 1")
    assert "notifier" in st.status()["flapping"]
    # Never given up on: it comes back.
    wait_for(lambda: st.status()["processes"]["notifier"]["state"] == "running", 60,
             "the notifier back")
    assert st.status()["processes"]["notifier"]["state"] != "failed"
    assert not st.status()["halted"]  # trading goes on
    assert st.stop() == 0


def _fill_journal(path: str, max_bytes: int) -> None:
    """Grow the journal to the stack's cap, then pad every table: from here on every INSERT of
    every process fails inside SQLite with "database or disk is full" (a real full journal)."""
    import sqlite3

    from trader.kernel.journal_space import fill_to_cap

    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        page = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute(f"PRAGMA max_page_count = {max_bytes // page}")
        try:
            while True:
                db.execute("INSERT INTO audit (ts, channel, who, command, args, result, ok) "
                           "VALUES (0, 'ballast', 'ballast', 'ballast', ?, 'ballast', 1)",
                           ("x" * (page // 2),))
        except sqlite3.OperationalError as e:
            assert "full" in str(e), e
        fill_to_cap(db)
    finally:
        db.close()


def test_a_full_journal_during_a_kill_still_flattens_and_alerts(
        sim: Sim, stacks: list[Stack]) -> None:
    max_bytes = 2 * 1024 * 1024
    st = make_stack(sim, stacks, f"[journal]\nmax_bytes = {max_bytes}\n").start()
    seed = {"symbol": "BTCUSDT", "amount": "0.01"}
    sim.control("position", seed)
    _fill_journal(str(st.paths.journal), max_bytes)
    r = st.ctl("kill")
    assert r.returncode == 0, (r.stdout, r.stderr)
    wait_for(lambda: is_flat(sim.state()), 60, "the account flat despite the full journal")
    wait_for(lambda: st.find("Kill switch: journal/IO failure"), 30,
             "the journal failure said loudly")
    assert st.find("database or disk is full"), st.output()
    s = wait_for(lambda: (s := st.status())["halted"] and s, 30, "HALTED")
    assert s["killswitch"]["io_errors"] >= 1
    wait_for(lambda: st.find("Account flat (verified on the exchange)"), 30, "the flat alert")
