"""Point 8 of the operations issue: endings that say what happened, in-process.

The ending texts (``supervisor.endings``) and the SIGTERM rule of children
(``trader.kernel.sigterm.obeyed``). End to end (tests/integration/test_endings.py and
test_supervisor_lifecycle.py): SIGTERM to every process still stops in order with the notifier
delivering "flatguard stopped"; an unverified stop's last line and alert.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from supervisor import endings
from supervisor.children import Child
from supervisor.flatten import RoundResult
from trader.kernel import config, sigterm
from trader.kernel.journal import HaltState
from trader.kernel.protocol import CHILDREN


def fake_sup(shutdown: str = "flatten", halt: HaltState | None = None,
             last: RoundResult | None = None) -> Any:
    cfg = config.from_mapping({"supervisor": {"shutdown": shutdown, "shutdown_timeout": 7}})
    sup = SimpleNamespace(cfg=cfg, halt=halt or HaltState(False), refused=set(),
                          killswitch=SimpleNamespace(last_round=last))
    sup.children = {n: Child(n, Path("/tmp"), {}, lambda c, code: None) for n in CHILDREN}
    return sup


def test_verified_and_left_endings() -> None:
    e = endings.after_stop(fake_sup(last=RoundResult(True)), 0)
    assert (e.kind, e.level) == ("verified", "info")
    assert e.line() == "flatguard stopped exit=0: account verified flat on the exchange"
    e = endings.after_stop(fake_sup("cancel", last=RoundResult(True, positions=["BTC +0.01"])), 0)
    assert "no open orders, verified" in e.text and "positions left: BTC +0.01" in e.text
    e = endings.after_stop(fake_sup("leave"), 0)
    assert e.kind == "left" and 'shutdown = "leave"' in e.text
    abort = HaltState(True, "abort command", "abort", time.time(), False)
    assert "HALTED (abort)" in endings.after_stop(fake_sup(halt=abort), 0).text
    killed = HaltState(True, "trader hung", "trader_hang", time.time(), True)
    e = endings.after_stop(fake_sup(halt=killed, last=RoundResult(True)), 0)
    assert "verified flat" in e.text and "still HALTED (trader_hang)" in e.text


def test_not_verified_says_what_is_open_and_what_next_up_does() -> None:
    last = RoundResult(False, positions=["ETH/USDT:USDT +0.3"], open_orders=["BTC buy 0.002"],
                       error="create_order POST /fapi/v1/order?timestamp=1&signature=ab: "
                             "transient, HTTP 503")
    e = endings.after_stop(fake_sup(last=last), 1)
    assert (e.code, e.kind, e.level) == (1, "not_verified", "critical")
    assert "NOT verified flat within supervisor.shutdown_timeout = 7 s" in e.text
    assert "positions ETH/USDT:USDT +0.3" in e.text and "orders BTC buy 0.002" in e.text
    assert "HTTP 503" in e.text and "signature" not in e.text
    assert "starts HALTED and resumes the flatten" in e.text
    assert "no flatten round completed" in endings.after_stop(fake_sup(), 1).text


def test_refused_not_started_and_crashed() -> None:
    sup = fake_sup()
    sup.refused = {"connector"}
    e = endings.not_started(sup, "process connector refused to start (exit 78): "
                            "exchange.symbols: DOGE/USDT:USDT not listed", 78)
    assert e.kind == "refused" and e.line().startswith("flatguard stopped exit=78: refused by "
                                                       "connector: ")
    assert "nothing traded" in e.text
    e = endings.not_started(fake_sup(), "the kill path's exchange session could not be prepared",
                            1)
    assert e.kind == "not_started" and "did not start" in e.text
    e = endings.crashed(KeyError("x"))
    assert e.code == 1 and "crashed (KeyError" in e.text and "starts HALTED" in e.text


def test_children_obey_sigterm_only_from_the_supervisor_or_once_it_is_gone() -> None:
    parent = os.getppid()
    assert sigterm.obeyed(parent, parent)  # the supervisor stopping us in order
    assert not sigterm.obeyed(1, parent)  # systemd / kill -- -PGID while the supervisor lives
    assert sigterm.obeyed(1, parent + 1_000_000)  # our parent changed: the supervisor is gone
