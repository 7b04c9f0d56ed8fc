"""The kill path against the exchange as it is, end to end: readiness proofs, hedge mode at
start-up, the exchange's own dead-man switch when the whole machine freezes, and positions and
orders flatguard did not create.

Each test runs a real ``flatguard up`` against a standalone simulated exchange and checks the
account on the exchange itself.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.stack import Sim, Stack, is_flat, positions_of, wait_for

pytestmark = pytest.mark.integration

FAST = """
[supervisor]
connector_grace = 3.0
[killswitch]
backoff = 0.5
"""


def make_stack(sim: Sim, stacks: list[Stack], exchange: str = "", killswitch: str = "") -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{exchange}{FAST}{killswitch}')
    stacks.append(st)
    return st


def metric(st: Stack, name: str) -> float | None:
    m = re.search(rf"^{name} (\S+)$", st.metrics(), re.M)
    return float(m.group(1)) if m else None


def resting_order(sim: Sim, symbol: str, side: str, qty: str) -> None:
    mark = float(sim.state()["marks"][symbol])
    price = mark * (0.9 if side == "BUY" else 1.1)
    sim.control("order", {"symbol": symbol, "side": side, "type": "LIMIT", "quantity": qty,
                          "price": f"{price:.1f}" if symbol == "BTCUSDT" else f"{price:.2f}",
                          "timeInForce": "GTC"})


def test_kill_path_readiness_finds_a_revoked_key_and_stop_disarms_the_countdown(
        sim: Sim, stacks: list[Stack]) -> None:
    # No periodic reconcile: only the supervisor's proof reads the account while the key is bad
    # (the connector would rightly treat -2015 as fatal). A long dms_timeout: an empty countdown
    # list after the stop can only come from the disarm, not from the countdown firing.
    st = make_stack(sim, stacks, "reconcile_interval = 600\ndms_interval = 0.5\n",
                    "check_interval = 0.5\n").start()
    wait_for(lambda: metric(st, "flatguard_killpath_ready") == 1.0, 30, "kill path ready")
    wait_for(lambda: set(sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}, 30,
             "the exchange's dead-man switch armed for both symbols")
    sim.control("fail", {"path": "/fapi/v3/positionRisk", "method": "GET", "count": 100_000,
                         "code": -2015})  # the key is revoked (Binance: invalid API key / IP)
    wait_for(lambda: st.status()["killpath_ready"] is False, 30, "kill path not ready")
    assert metric(st, "flatguard_killpath_ready") == 0.0
    wait_for(lambda: st.find("ALERT level=critical title='Kill path NOT ready'"), 30,
             "the critical alert after two failed checks")
    assert not st.status()["halted"]  # a warning to a person, not a kill
    sim.control("clear")
    wait_for(lambda: metric(st, "flatguard_killpath_ready") == 1.0, 30, "kill path ready again")
    assert st.find("Kill path ready again")
    assert st.stop() == 0
    state = sim.state()
    assert state["countdowns"] == {} and not state["countdowns_fired"], state["countdowns"]


def test_hedge_mode_is_refused_at_start_up_with_a_clear_message(
        sim: Sim, stacks: list[Stack]) -> None:
    sim.control("dual", {"dual": True})
    st = make_stack(sim, stacks)
    st.start(wait_ready=False)
    assert st.wait_exit(90) == 78  # EX_CONFIG: a systemd unit never restarts a refusal
    out = st.output()
    assert "error: process connector refused to start (exit 78): the account is in hedge " \
           "(dual-side) position mode" in out, out
    assert "one-way" in out
    assert out.count("started process=connector") == 1  # a refusal is not restarted
    assert sim.state()["orders_received"] == 0


def test_exchange_dead_man_switch_fires_when_the_machine_freezes(
        sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks, "dms_interval = 0.5\ndms_timeout = 3\n").start()
    wait_for(lambda: set(sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}, 30,
             "the countdown armed for both symbols")
    sim.control("position", {"symbol": "SOLUSDT", "amount": "-40"})
    resting_order(sim, "BTCUSDT", "BUY", "0.002")
    resting_order(sim, "ETHUSDT", "SELL", "0.05")
    procs = st.remember_pids()["processes"]
    pids = [st.proc.pid] + [int(p["pid"]) for n, p in procs.items() if p.get("pid") and n != "sim"]
    assert len(pids) == 5, procs
    st.pids.update(pids)
    for pid in pids:  # the whole machine freezes: the supervisor and every child at once
        os.kill(pid, signal.SIGSTOP)
    try:
        fired = wait_for(lambda: (s := sim.state())["countdowns_fired"].keys() >= {
            "BTCUSDT", "ETHUSDT"} and s, 60, "the exchange's countdown to fire")
        wait_for(lambda: not sim.state()["open_orders"], 10, "every order cancelled")
        # Nobody was running: the exchange did it on its own, and it does not close positions.
        assert positions_of(sim.state()).get("SOLUSDT") == -40.0, fired["positions"]
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        st.wait_exit(30)  # our child; the others are reaped by init (their parent is gone)


def test_positions_it_did_not_create_are_warned_about_and_flattened(
        sim: Sim, stacks: list[Stack]) -> None:
    sim.control("position", {"symbol": "SOLUSDT", "amount": "25"})  # not in exchange.symbols
    sim.control("order", {"symbol": "SOLUSDT", "side": "SELL", "type": "LIMIT", "quantity": "5",
                          "price": "200", "timeInForce": "GTC"})
    st = make_stack(sim, stacks).start()
    wait_for(lambda: st.find("adopted_account_state") or st.find("adopted account state"), 30,
             "the start-up warning about what flatguard did not create")
    line = st.find("adopted_account_state") or st.find("adopted account state")
    assert "SOL" in line, line
    r = st.request(st.paths.supervisor, "kill", {"reason": "test"})
    assert r["halted"] is True
    wait_for(lambda: is_flat(sim.state()), 60, "the account flat, SOLUSDT included")
    s = wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"] and s, 60,
                 "HALTED with the flatten verified")
    assert s["halt"]["trigger"] == "command"
    sol = [e for e in sim.control("orders") if e.get("symbol") == "SOLUSDT"
           and e["method"] == "POST" and e.get("reduceOnly") == "true"]
    assert sol and all(e["side"] == "SELL" for e in sol)
