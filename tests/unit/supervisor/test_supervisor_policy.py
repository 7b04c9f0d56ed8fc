"""What an exit, a hang or an absence of a child means (supervisor/policy.py), read from the
ChildSpec table; heartbeats judged with a fake clock and a fake /proc, in milliseconds."""

from __future__ import annotations

import pytest

from supervisor.children import FAILED, STARTING
from supervisor.policy import ChildPolicy, ProofSchedule
from tests.unit.supervisor.fakesup import FakeSup, ProcFS
from trader.kernel.journal import HaltState
from trader.kernel.protocol import COMMANDER, CONNECTOR, NOTIFIER, TRADER

TICK = 0.05  # the watch loop's interval with the default heartbeat_interval (0.2 s / 4)


def make(**cfg: object) -> tuple[FakeSup, ChildPolicy, ProcFS]:
    s, fs = FakeSup(**cfg), ProcFS()
    return s, ChildPolicy(s, read=fs.read), fs  # type: ignore[arg-type]


def watch(s: FakeSup, p: ChildPolicy, seconds: float, beating: tuple[str, ...] = ()) -> None:
    """The watch loop for ``seconds`` of fake time; ``beating`` children beat each tick."""
    for _ in range(round(seconds / TICK)):
        s.clock.advance(TICK)
        for name in beating:
            ch = s.children[name]
            s.beat(name, ch.hb.loop + 1)
        p.check()


def all_up(s: FakeSup, p: ChildPolicy) -> None:
    for name in s.children:
        s.run(name, loop=1)
    watch(s, p, 0.2, beating=tuple(s.children))  # past the start-up grace: working beats


# --- exits ---------------------------------------------------------------------------------

def test_trader_exit_is_the_kill_switch_never_a_restart() -> None:
    s, p, _ = make()
    p.on_exit(s.run(TRADER), -9)
    assert s.killswitch.triggers == [("trader_exit",
                                      "the trader exited unexpectedly (signal 9)")]
    assert s.restarted == []


def test_a_trader_whose_engine_died_of_an_exception_names_that_trigger_by_its_exit_code() -> None:
    # The trader asks for a halt ("trader_exception") and exits 70; whichever the supervisor
    # sees first, the trigger is the same (it used to be "trader_exit" when the exit won).
    from trader.kernel.protocol import EX_SOFTWARE
    s, p, _ = make()
    p.on_exit(s.run(TRADER), EX_SOFTWARE)
    assert [t for t, _ in s.killswitch.triggers] == ["trader_exception"]
    s, p, _ = make()
    p.on_exit(s.run(TRADER), 1)
    assert [t for t, _ in s.killswitch.triggers] == ["trader_exit"]


def test_trader_exit_while_halted_and_flattening_starts_nothing_new() -> None:
    s, p, _ = make()
    s.halt = HaltState(True, "x", "command", 1.0, False)
    s.killswitch.running = True
    p.on_exit(s.run(TRADER), 1)
    assert s.killswitch.triggers == []


@pytest.mark.parametrize("name", [CONNECTOR, NOTIFIER, COMMANDER])
def test_other_exits_go_to_the_restart_policy(name: str) -> None:
    s, p, _ = make()
    p.on_exit(s.run(name), 1)
    assert s.restarted == [(name, "exited with code 1")] and s.killswitch.triggers == []


def test_exit_78_is_a_refusal_never_restarted_except_for_the_trader() -> None:
    s, p, _ = make()
    conn = s.run(CONNECTOR)
    p.on_exit(conn, 78)
    assert conn.state == FAILED and s.refused == {CONNECTOR} and s.restarted == []
    assert s.titles() == ["connector refused to start"]
    p.on_exit(s.run(TRADER), 78)  # the trader has no refusal code: its exit is a kill
    assert s.killswitch.triggers[0][0] == "trader_exit"


def test_expected_exits_and_exits_during_a_stop_are_only_logged() -> None:
    s, p, _ = make()
    ch = s.run(TRADER)
    ch.expected_exit = True
    p.on_exit(ch, -9)
    s.shutting_down = True
    p.on_exit(s.run(CONNECTOR), 1)
    assert s.killswitch.triggers == [] and s.restarted == []


# --- hangs -----------------------------------------------------------------------------------

def test_a_trader_asleep_past_the_bound_is_a_hang_trigger() -> None:
    """heartbeat_interval 0.2 x liveness 4 = 0.8 s; asleep with no run-queue wait: hung."""
    s, p, fs = make()
    all_up(s, p)
    others = (CONNECTOR, NOTIFIER, COMMANDER)
    watch(s, p, 0.8, beating=others)
    assert s.killswitch.triggers == []
    watch(s, p, 0.05, beating=others)
    assert [t for t, _ in s.killswitch.triggers] == ["trader_hang"]
    assert "the trader is hung: no heartbeat for 0.85 s (limit 0.8 s); state=S" in \
        s.killswitch.triggers[0][1]
    assert s.killed == []  # the kill switch fences it, not the restart policy


def test_helpers_get_five_times_the_slack_then_are_killed_and_restarted() -> None:
    s, p, fs = make()
    all_up(s, p)
    assert p.hang_limit(TRADER) == p.hang_limit(CONNECTOR) == 0.8
    assert p.hang_limit(NOTIFIER) == p.hang_limit(COMMANDER) == 4.0
    watch(s, p, 3.9, beating=(TRADER, CONNECTOR, COMMANDER))
    assert s.killed == []
    watch(s, p, 0.15, beating=(TRADER, CONNECTOR, COMMANDER))
    assert s.killed == [NOTIFIER] and s.restarted[0][0] == NOTIFIER
    assert s.restarted[0][1].startswith("hung (no heartbeat for 4.0")
    assert s.killswitch.triggers == []


def test_a_starved_trader_is_extended_not_killed() -> None:
    """Runnable, waiting for a CPU: the bound is extended (up to the cap) and a beat ends it."""
    s, p, fs = make()
    all_up(s, p)
    fs.state = "R"  # runnable, no CPU time moving: waiting for a CPU now
    watch(s, p, 1.5, beating=(CONNECTOR, NOTIFIER, COMMANDER))
    assert s.killswitch.triggers == []
    assert s.children[TRADER].summary(p.hang_limit(TRADER))["up"]  # extended: still up
    watch(s, p, 1.7, beating=(CONNECTOR, NOTIFIER, COMMANDER))  # 3.2 s: the cap
    assert s.killswitch.triggers == []
    watch(s, p, 0.05, beating=(CONNECTOR, NOTIFIER, COMMANDER))
    assert [t for t, _ in s.killswitch.triggers] == ["trader_hang"]
    assert "still late at the cap" in s.killswitch.triggers[0][1]


def test_starting_children_are_left_to_ready_timeout() -> None:
    s, p, _ = make()
    s.run(TRADER).state = STARTING
    watch(s, p, 5.0)
    assert s.killswitch.triggers == []


def test_beats_without_market_data_are_a_hang_after_the_stale_backstop() -> None:
    """risk.stale_halt + 2 x 0.8 s + 1 s: the trader's own guard acts first."""
    s, p, _ = make(risk={"stale_halt": 30.0})
    all_up(s, p)
    assert p.stale_backstop == pytest.approx(32.6)
    s.beat(TRADER, 100, last_md=s.wall() - 32.5)
    p.check()
    assert s.killswitch.triggers == []
    s.wall.advance(0.2)
    p.check()
    assert s.killswitch.triggers == [("trader_hang", "the trader is hung: no market data "
                                      "processed for 32.7 s")]
    s.beat(CONNECTOR, 100, last_md=1.0)  # only the trader's beats carry market-data progress
    s.killswitch.triggers.clear()
    p.check()
    assert all(t != "connector" for t, _ in s.killswitch.triggers)


# --- absences --------------------------------------------------------------------------------

def test_connector_down_longer_than_the_grace_runs_the_kill_switch() -> None:
    s, p, _ = make(supervisor={"connector_grace": 3.0})
    all_up(s, p)
    s.children[CONNECTOR].state = FAILED  # given up on by the restart policy
    others = (TRADER, NOTIFIER, COMMANDER)
    watch(s, p, 3.0, beating=others)
    assert s.killswitch.triggers == []
    watch(s, p, 0.1, beating=others)
    assert s.killswitch.triggers[0] == ("connector_down",
                                        "the connector has been down for more than 3 s")


def test_connector_back_within_the_grace_resets_the_timer() -> None:
    s, p, _ = make(supervisor={"connector_grace": 3.0})
    all_up(s, p)
    s.die(CONNECTOR)
    watch(s, p, 2.5, beating=(TRADER, NOTIFIER, COMMANDER))
    s.run(CONNECTOR, loop=1)
    watch(s, p, 0.1, beating=tuple(s.children))
    s.die(CONNECTOR)
    watch(s, p, 2.5, beating=(TRADER, NOTIFIER, COMMANDER))
    assert s.killswitch.triggers == []


def test_connector_down_while_halted_or_stopping_is_no_trigger() -> None:
    s, p, _ = make(supervisor={"connector_grace": 1.0})
    all_up(s, p)
    s.halt = HaltState(True, "x", "command", 1.0, True)
    s.die(CONNECTOR)
    watch(s, p, 2.0, beating=(NOTIFIER, COMMANDER))
    s.shutting_down = True
    s.halt = HaltState(False)
    watch(s, p, 2.0, beating=(NOTIFIER, COMMANDER))
    assert [t for t, _ in s.killswitch.triggers if t == "connector_down"] == []


# --- when the kill path is proved ------------------------------------------------------------

def test_the_kill_path_is_proved_every_check_interval_and_within_backoff_of_trouble() -> None:
    sched = ProofSchedule(0.0, check_interval=60.0, backoff=1.0)
    assert not sched.due(0.5, False) and not sched.due(59.9, False)
    assert sched.due(60.0, False)  # the regular proof
    assert not sched.due(60.5, True)  # trouble: at most once per backoff after the last
    assert sched.due(61.0, True)
    assert not sched.due(61.5, False)  # trouble gone (a proof is running or it passed)
    assert not sched.due(120.9, False) and sched.due(121.0, False)


def test_trouble_long_after_the_last_proof_proves_at_once() -> None:
    """The connector's exchange errors rose (an outage): /metrics says it within seconds."""
    sched = ProofSchedule(0.0, check_interval=60.0, backoff=1.0)
    assert sched.due(20.0, True)
    assert not sched.due(20.5, True) and sched.due(21.0, True)
