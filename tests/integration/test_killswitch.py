"""Kill switch, end to end: whatever happens to the trader, the account ends flat and halted.

Each test runs a real ``flatguard up`` against a standalone simulated exchange (so the account
can be inspected after the stack is gone) and checks flatness on the exchange itself. What is
logic is decided in-process: what an exit, a hang or an absence means
(tests/unit/supervisor/test_supervisor_policy.py), the trigger rule
(test_killswitch_trigger_rule.py), the fail-closed journal (test_rundir_journal.py).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.promtext import parsed, val
from tests.stack import Sim, Stack, is_flat, pids_gone, seed_exposure, wait_for

pytestmark = pytest.mark.integration

FAST = """
[supervisor]
connector_grace = 3.0
[killswitch]
backoff = 0.5
"""


def make_stack(sim: Sim, stacks: list[Stack], extra: str = "", run_dir=None) -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{FAST}{extra}', run_dir=run_dir)
    stacks.append(st)
    return st


def wait_halted_flat(st: Stack, sim: Sim, timeout: float = 60) -> dict:
    wait_for(lambda: is_flat(sim.state()), timeout, "the account flat on the exchange")
    return wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"] and s,
                    timeout, "HALTED with the flatten verified")


def trader_pid(st: Stack) -> int:
    return int(st.status()["processes"]["trader"]["pid"])


def test_trader_sigkill_flattens_and_stays_halted(sim: Sim, stacks: list[Stack]) -> None:
    """... and /metrics tells the truth after the kill (point 7 of the operations issue; the
    sample rules themselves: tests/unit/supervisor/test_metrics_truth.py): counters from 0, no
    heartbeat age for the dead trader, state HALTED, equity and positions from the connector."""
    st = make_stack(sim, stacks).start()
    first = parsed(st.metrics())
    assert val(first, "flatguard_killswitch_runs_total", trigger="trader_exit") == 0.0
    assert val(first, "flatguard_killswitch_rounds_total") == 0.0
    seed_exposure(sim)
    wait_for(lambda: val(parsed(st.metrics()), "flatguard_position_contracts",
                         symbol="BTC/USDT:USDT"), 60, "the position on /metrics")
    os.kill(trader_pid(st), signal.SIGKILL)
    s = wait_halted_flat(st, sim)
    assert s["halt"]["trigger"] == "trader_exit"
    assert s["processes"]["trader"]["pid"] is None  # never restarted on its own
    m = wait_for(lambda: (x := parsed(st.metrics())) and
                 val(x, "flatguard_trading_state", state="HALTED") == 1.0 and x, 30, "HALTED")
    assert val(m, "flatguard_killswitch_runs_total", trigger="trader_exit") == 1.0
    assert val(m, "flatguard_halted") == 1.0 and val(m, "flatguard_killpath_ready") == 1.0
    assert val(m, "flatguard_up", process="trader") == 0.0
    assert val(m, "flatguard_heartbeat_age_seconds", process="trader") is None
    assert val(m, "flatguard_heartbeat_age_seconds", process="connector") is not None
    assert val(m, "flatguard_equity") is not None  # the connector's view while halted
    wait_for(lambda: val(parsed(st.metrics()), "flatguard_position_contracts",
                         symbol="BTC/USDT:USDT") == 0.0, 30, "position 0 after the flatten")
    assert "?" not in st.metrics()
    # A halted stack sends no orders: nothing new reaches the exchange.
    before = sim.state()["orders_received"]
    info = st.ctl_json("info")
    assert info["halted"] is True
    assert sim.state()["orders_received"] == before


def test_trader_sigstop_is_a_hang(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    pid = trader_pid(st)
    st.pids.add(pid)
    os.kill(pid, signal.SIGSTOP)
    s = wait_halted_flat(st, sim)
    assert s["halt"]["trigger"] == "trader_hang"


def test_stuck_strategy_is_detected_as_a_hang(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks, '[strategy]\nname = "stuck"\n[strategy.params]\nafter = 1.0\n')
    st.start()
    s = wait_halted_flat(st, sim)
    assert s["halt"]["trigger"] == "trader_hang"


def test_strategy_exception_trips_the_in_process_dead_switch(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks, '[strategy]\nname = "tests.strategies:Raiser"\n')
    st.start()
    s = wait_halted_flat(st, sim)
    assert s["halt"]["trigger"] == "trader_exception"


def test_kill_command_flattens(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    r = st.request(st.paths.supervisor, "kill", {"reason": "test"})
    assert r["halted"] is True
    s = wait_halted_flat(st, sim)
    assert s["halt"]["trigger"] == "command"


def test_flatten_survives_exchange_faults(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    # The first rounds of the flatten meet a timestamp error, a bare 503, a rate limit and latency.
    sim.control("fail", {"path": "/fapi/v1/allOpenOrders", "method": "DELETE", "count": 1,
                         "code": -1021})
    sim.control("fail", {"path": "/fapi/v1/openOrders", "count": 2, "status": 503})
    sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1, "code": -1003})
    sim.control("latency", {"ms": 300})
    os.kill(trader_pid(st), signal.SIGKILL)
    s = wait_halted_flat(st, sim, timeout=90)
    assert s["halt"]["trigger"] == "trader_exit"
    assert "flatguard_killswitch_rounds_total" in st.metrics()


def test_kill_path_survives_a_skewed_exchange_clock(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    sim.control("skew", {"seconds": 15})
    os.kill(trader_pid(st), signal.SIGKILL)
    wait_halted_flat(st, sim, timeout=60)


def test_halted_survives_restart_and_resume_trades_again(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    os.kill(trader_pid(st), signal.SIGKILL)
    wait_halted_flat(st, sim)
    assert st.stop() == 0
    before = sim.state()["orders_received"]
    st2 = make_stack(sim, stacks, run_dir=st.run_dir).start()
    s = st2.status()
    assert s["halted"] is True and s["processes"]["trader"]["pid"] is None
    assert "state=HALTED" in st2.find("flatguard ready")
    assert sim.state()["orders_received"] == before
    r = st2.request(st2.paths.supervisor, "resume")
    assert r["resumed"] is True
    wait_for(lambda: sim.state()["orders_received"] > before, 60, "orders after resume")
    assert st2.status()["halted"] is False


def test_crash_mid_flatten_resumes_the_flatten_on_next_up(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    # The exchange refuses every cancel and close for now: the flatten cannot finish.
    sim.control("fail", {"path": "/fapi/v1/allOpenOrders", "method": "DELETE", "count": 10_000,
                         "status": 503})
    os.kill(trader_pid(st), signal.SIGKILL)
    wait_for(lambda: st.status()["killswitch"]["rounds"] >= 1, 30, "a failed flatten round")
    st.remember_pids()
    os.kill(st.proc.pid, signal.SIGKILL)  # the supervisor dies in the middle of the flatten
    st.wait_exit(10)
    for pid in st.pids:  # its children notice and go; reap whatever is left
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sim.control("clear")
    st2 = make_stack(sim, stacks, run_dir=st.run_dir).start()
    s = wait_halted_flat(st2, sim)
    assert s["halted"] and s["processes"]["trader"]["pid"] is None


def test_connector_frozen_stops_orders_then_kill_switch(sim: Sim, stacks: list[Stack]) -> None:
    """A hung connector is killed and restarted; while it is down the trader sends nothing, and
    if it cannot come back within connector_grace the kill switch runs (through the supervisor's
    own session, which needs no connector)."""
    st = make_stack(sim, stacks).start()
    conn_pid = int(st.status()["processes"]["connector"]["pid"])
    st.pids.add(conn_pid)
    seed_exposure(sim)
    # A restarted connector cannot get ready: the exchange holds its markets request for a
    # minute. Its 10 s REST timeout is transient, so nothing fatal can be reported before
    # connector_grace (3 s) runs out: the trigger is connector_down by rule, not by a race
    # (a 404 here was reported as exchange_fatal about as fast as the grace ran out).
    sim.control("latency", {"ms": 60_000, "path": "/fapi/v1/exchangeInfo", "method": "GET"})
    os.kill(conn_pid, signal.SIGSTOP)
    # An order signed just before the stop may reach the sim just after it: what a stopped
    # connector cannot do is sign one, so judge by the signed timestamp (50 ms for the signal
    # to take effect on the other core).
    stopped_ms = time.time() * 1000 + 50
    s = wait_halted_flat(st, sim, timeout=90)
    assert s["halt"]["trigger"] == "connector_down", s["halt"]
    after = [e for e in sim.control("orders") if int(e.get("timestamp") or 0) > stopped_ms]
    from_trader = [e for e in after if str(e.get("clientOrderId") or "").startswith("fg")]
    assert not from_trader, f"the trader sent orders while the connector was down: {from_trader}"
    assert st.status()["processes"]["connector"]["restarts"] >= 1


def test_supervisor_sigkill_trader_flattens_itself_and_all_exit(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    st.remember_pids()
    children = [p["pid"] for n, p in st.status()["processes"].items() if p.get("pid")]
    os.kill(st.proc.pid, signal.SIGKILL)
    st.wait_exit(10)
    wait_for(lambda: is_flat(sim.state()), 60, "the trader flattening itself")

    wait_for(lambda: pids_gone(children), 60, "every child to exit")
    before = sim.state()["orders_received"]
    st2 = make_stack(sim, stacks, run_dir=st.run_dir).start()
    assert st2.status()["halted"] is True
    assert sim.state()["orders_received"] == before
