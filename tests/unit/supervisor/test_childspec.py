"""The ChildSpec table: one row per child process, the only place the supervisor's policy
depends on which process it is."""

from __future__ import annotations

import ast
from pathlib import Path

from supervisor.childspec import (
    EX_CONFIG,
    SPECS,
    OnExit,
    account_readers,
    session_holder,
    stop_order,
)
from trader.kernel.protocol import CHILDREN, COMMANDER, CONNECTOR, NOTIFIER, TRADER

SUPERVISOR = Path(__file__).resolve().parents[3] / "supervisor"


def test_every_child_has_one_row_in_start_up_order() -> None:
    assert tuple(SPECS) == CHILDREN  # the trader last: it needs the connector ready
    assert {n: s.module for n, s in SPECS.items()} == {
        TRADER: "trader", CONNECTOR: "trader.connector", NOTIFIER: "notifier",
        COMMANDER: "commander"}


def test_what_an_unexpected_exit_means() -> None:
    assert SPECS[TRADER].on_exit is OnExit.KILL_SWITCH  # never restarted on its own
    assert SPECS[TRADER].exit_trigger == "trader_exit"
    assert SPECS[TRADER].hang_trigger == "trader_hang"
    assert SPECS[CONNECTOR].on_exit is OnExit.RESTART_THEN_GIVE_UP
    assert SPECS[CONNECTOR].down_trigger == "connector_down"
    assert SPECS[NOTIFIER].on_exit is SPECS[COMMANDER].on_exit is OnExit.RESTART_FOREVER
    assert SPECS[TRADER].refusal_code is None  # the trader's exit is always the kill switch's
    assert all(SPECS[n].refusal_code == EX_CONFIG for n in (CONNECTOR, NOTIFIER, COMMANDER))


def test_the_oom_killer_picks_the_trader_first_and_helpers_get_hang_slack() -> None:
    oom = {n: s.oom_score_adj for n, s in SPECS.items()}
    assert oom[TRADER] == max(oom.values()) and oom[CONNECTOR] == min(oom.values())
    assert SPECS[TRADER].hang_factor == SPECS[CONNECTOR].hang_factor == 1.0
    assert SPECS[NOTIFIER].hang_factor == SPECS[COMMANDER].hang_factor == 5.0


def test_orders_and_roles() -> None:
    assert stop_order() == [CONNECTOR, COMMANDER, NOTIFIER]  # the notifier delivers the ending
    assert account_readers() == [TRADER, CONNECTOR]
    assert session_holder() == CONNECTOR
    assert [n for n, s in SPECS.items() if not s.start_when_halted] == [TRADER]
    assert [n for n, s in SPECS.items() if s.carries_alerts] == [NOTIFIER]


def test_no_supervisor_policy_module_compares_process_names() -> None:
    """``name == TRADER`` and the like live in the table, not in the policy modules."""
    names = {"TRADER", "CONNECTOR", "NOTIFIER", "COMMANDER"}
    bad = []
    for mod in ("app", "policy", "restarts", "metrics_truth", "lifecycle", "children"):
        tree = ast.parse((SUPERVISOR / f"{mod}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                flat = [e for s in sides for e in (s.elts if isinstance(s, ast.Tuple) else [s])]
                if any(isinstance(e, ast.Name) and e.id in names for e in flat):
                    bad.append(f"{mod}.py:{node.lineno}")
    assert not bad, bad
