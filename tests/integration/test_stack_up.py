"""The whole stack as real processes: up, trade, inspect, stop flat, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.stack import FLATGUARD, ROOT, Sim, Stack, is_flat, positions_of, wait_for

pytestmark = pytest.mark.integration


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def external_config(sim: Sim, extra: str = "") -> str:
    return f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{extra}'


def test_up_trades_reports_and_stops_flat(sim: Sim, stacks: list[Stack]) -> None:
    st = Stack(external_config(sim))
    stacks.append(st)
    st.start()
    status = st.status()
    assert set(status["processes"]) >= {"trader", "connector", "notifier", "commander"}
    assert status["halted"] is False

    # It trades: the sim receives orders and some fill.
    wait_for(lambda: sim.state()["orders_received"] >= 4, 60, "orders at the sim")
    wait_for(lambda: positions_of(sim.state()) or sim.state()["open_orders"], 60, "exposure")

    info = st.ctl_json("info")
    assert set(info["processes"]) >= {"trader", "connector", "notifier", "commander"}
    for name in ("trader", "connector", "notifier", "commander"):
        p = info["processes"][name]
        assert p["pid"] and p["heartbeat_age_s"] is not None
    assert info["halted"] is False
    assert isinstance(info["positions"], list) and isinstance(info["open_orders"], list)
    assert info["equity"] > 0

    def scraped() -> str:
        text = st.metrics()
        return text if "flatguard_orders_total{" in text else ""

    metrics = wait_for(scraped, 30, "orders in /metrics")
    for name in ("flatguard_up{process=\"trader\"} 1.0", "flatguard_heartbeat_age_seconds",
                 "flatguard_process_restarts_total", "flatguard_halted 0.0",
                 "flatguard_equity", "flatguard_bus_messages_total", "flatguard_position_contracts"):
        assert name in metrics, name

    st.remember_pids()
    assert st.ctl("ping").returncode == 0
    # SIGHUP (a dropped SSH session) is the same orderly stop as SIGTERM (every other test's
    # stop) and SIGINT (test_builtin_sim_make_run_path); which one it obeys: test_supervisor_signals.
    st.signal(signal.SIGHUP)
    code = st.wait_exit()
    assert code == 0, st.output()
    assert is_flat(sim.state()), sim.state()
    for pid in st.pids:
        assert not pid_alive(pid), f"pid {pid} still alive"
    assert not any(p.exists() for p in st.paths.socket_files())


def test_builtin_sim_make_run_path(stacks: list[Stack]) -> None:
    """`up` with no exchange configured starts its own sim, trades, and stops cleanly."""
    st = Stack("")
    stacks.append(st)
    st.start()
    assert st.sim_url
    assert "sim" in st.status()["processes"]
    wait_for(lambda: st.sim_state()["orders_received"] >= 2, 60, "orders at the built-in sim")
    st.signal(signal.SIGINT)  # Ctrl-C
    assert st.wait_exit() == 0, st.output()
    for pid in st.pids:
        assert not pid_alive(pid)


def test_second_up_on_same_run_dir_is_refused(sim: Sim, stacks: list[Stack]) -> None:
    st = Stack(external_config(sim))
    stacks.append(st)
    st.start()
    r = subprocess.run([*FLATGUARD, "up", "--config", str(st.config_path), "--run-dir",
                        str(st.run_dir)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1
    assert "another `flatguard up`" in r.stderr
    assert st.status()["halted"] is False  # the running one is untouched


def test_bad_config_is_refused_before_anything_starts(tmp_path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[exchange]\nleverage = "high"\n')
    r = subprocess.run([*FLATGUARD, "up", "--config", str(cfg), "--run-dir", "/tmp/fg-never"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert "exchange.leverage" in r.stderr and str(cfg) in r.stderr
    cfg.write_text('[exchange]\nbogus = 1\n')
    r = subprocess.run([*FLATGUARD, "config", "show", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode != 0 and "unknown key 'bogus'" in r.stderr
