"""Supervisor lifecycle with real processes: restarts, orderly-stop modes, SIGHUP, start-up errors.

The restart policy itself (intensity, backoff, giving up on the connector, flapping) and what an
exit or a hang means are decided in-process with a fake clock: tests/unit/supervisor/
test_supervisor_restarts.py and test_supervisor_policy.py.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.stack import Sim, Stack, is_flat, positions_of, wait_for

pytestmark = pytest.mark.integration


def make(sim: Sim, stacks: list[Stack], extra: str = "", run_dir=None) -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n[killswitch]\nbackoff = 0.5\n{extra}',
               run_dir=run_dir)
    stacks.append(st)
    return st


def pid_of(st: Stack, name: str) -> int:
    return int(st.status()["processes"][name]["pid"])


def test_notifier_and_commander_are_restarted(sim: Sim, stacks: list[Stack]) -> None:
    st = make(sim, stacks).start()
    for name in ("notifier", "commander"):
        old = pid_of(st, name)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda n=name, o=old: (p := st.status()["processes"][n])["pid"] not in (None, o)
                 and p["up"], 60, f"{name} restarted and up")
        assert st.status()["processes"][name]["restarts"] == 1
        st.pids.add(pid_of(st, name))
    assert st.status()["halted"] is False  # losing a notifier or commander is not a kill
    assert st.ctl("ping").returncode == 0
    assert 'flatguard_process_restarts_total{process="notifier"} 1.0' in st.metrics()


def test_shutdown_leave_leaves_the_account(sim: Sim, stacks: list[Stack]) -> None:
    """A real stack's stop with shutdown = "leave" (the trader's own stop included) touches no
    position. The modes' logic (cancel: orders gone, positions kept; leave; flatten) is
    tests/unit/supervisor/test_orderly_stop.py's, against the in-process sim."""
    sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})
    st = make(sim, stacks, '[supervisor]\nshutdown = "leave"\n').start()
    before = positions_of(sim.state())
    assert before.get("BTCUSDT")
    assert st.stop() == 0, st.output()
    assert positions_of(sim.state()).get("BTCUSDT") == before.get("BTCUSDT")


def test_unverified_stop_halts_and_next_up_resumes_the_flatten(sim: Sim, stacks: list[Stack]) -> None:
    st = make(sim, stacks, "[supervisor]\nshutdown_timeout = 3\n").start()
    sim.control("position", {"symbol": "ETHUSDT", "amount": "0.3"})
    sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 100_000,
                         "status": 503})
    try:
        assert st.stop() == 1, st.output()
        assert positions_of(sim.state())
    finally:
        sim.control("clear")
    # up's last line and alert say what is open and what the next up does (the texts:
    # tests/unit/supervisor/test_endings.py); the notifier was still there to deliver it.
    last = st.lines[-1]
    assert "flatguard stopped exit=1: NOT verified flat" in last, st.output()
    assert "ETH/USDT:USDT" in last and "starts HALTED and resumes the flatten" in last
    assert any('title="Stop NOT verified: HALTED"' in ln and "notifier" in ln
               for ln in st.lines), st.output()
    st2 = make(sim, stacks, run_dir=st.run_dir).start()
    wait_for(lambda: is_flat(sim.state()), 60, "the resumed flatten")
    s = wait_for(lambda: (x := st2.status())["halt"]["verified_flat"] and x, 30, "verified")
    assert s["halted"] is True and s["halt"]["trigger"] == "shutdown"


def test_unknown_strategy_and_bad_keys_fail_before_trading(sim: Sim, stacks: list[Stack],
                                                           tmp_path) -> None:
    st = make(sim, stacks, '[strategy]\nname = "nope"\n')
    st.start(wait_ready=False)
    assert st.wait_exit(60) == 2  # found before anything starts (supervisor/preflight.py)
    assert "strategy" in st.output() and "nope" in st.output()
    key = tmp_path / "keys"
    key.write_text("k\ns\n")
    os.chmod(key, 0o644)
    st2 = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\nkey_file = "{key}"\n')
    stacks.append(st2)
    st2.start(wait_ready=False)
    assert st2.wait_exit(60) == 2
    assert "chmod 600" in st2.output()
    assert sim.state()["orders_received"] == 0
