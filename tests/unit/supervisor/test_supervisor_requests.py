"""What the supervisor answers on its ROUTER, in-process on the fake supervisor: heartbeats and
halts read through their payloads (a malformed one refused by field), stale pids ignored, the
risk gate, and the dispatch table's answer to an op it does not have."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from supervisor.errors import SupervisorRefused
from supervisor.requests import RequestHandlers
from tests.unit.supervisor.fakesup import FakeSup
from trader.kernel import bus
from trader.kernel.journal import HaltState
from trader.kernel.payloads import Halt, Heartbeat, PayloadError
from trader.kernel.protocol import SupervisorOp
from trader.kernel.wire import Message

MSG = Message("x", "trader", 1, 0.0, {})


def ask(h: RequestHandlers, op: str, args: dict[str, Any]) -> Any:
    return asyncio.run(h.handle(op, args, MSG))


def test_a_heartbeat_updates_its_child_and_a_stale_pid_is_ignored() -> None:
    sup = FakeSup()
    h = RequestHandlers(sup)  # type: ignore[arg-type]
    ch = sup.run("trader")
    beat = Heartbeat("trader", ch.pid or 0, "RUNNING", 7, 1.5, 2.5,
                     [["flatguard_equity", [], 1.0], ["bad"]])
    assert ask(h, SupervisorOp.HB, beat.to_wire()) is None
    assert (ch.hb.loop, ch.hb.state, ch.hb.last_md, ch.hb.last_ok) == (7, "RUNNING", 1.5, 2.5)
    assert ch.hb.metrics == [["flatguard_equity", [], 1.0]]  # rows of the wrong shape dropped
    old = Heartbeat("trader", 1, "RUNNING", 99).to_wire()  # a previous generation's pid
    ask(h, SupervisorOp.HB, old)
    assert ch.hb.loop == 7


def test_a_malformed_heartbeat_is_refused_by_field_not_half_applied() -> None:
    sup = FakeSup()
    h = RequestHandlers(sup)  # type: ignore[arg-type]
    ch = sup.run("connector")
    with pytest.raises(PayloadError, match="hb: field 'loop' must be an integer"):
        ask(h, SupervisorOp.HB, {"proc": "connector", "pid": ch.pid, "loop": "7"})
    assert ch.hb.loop == 0


def test_halt_and_kill_run_the_kill_switch_with_the_payload_fields() -> None:
    sup = FakeSup()
    h = RequestHandlers(sup)  # type: ignore[arg-type]
    r = ask(h, SupervisorOp.HALT, Halt("exchange_fatal", "404", "connector").to_wire())
    assert r == {"started": True, "halted": True}
    ask(h, SupervisorOp.HALT, {})  # every field has its default, as before the payload type
    ask(h, SupervisorOp.KILL, {"reason": "phone"})
    assert sup.killswitch.triggers == [("exchange_fatal", "404 (from connector)"),
                                       ("request", "halt requested (from ?)"),
                                       ("command", "phone (from command)")]
    with pytest.raises(PayloadError, match="halt: field 'trigger' must be a string"):
        ask(h, SupervisorOp.HALT, {"trigger": 1})


def test_risk_gate_refuses_while_halted() -> None:
    sup = FakeSup()
    sup.stop_requested = asyncio.Event()
    sup.killswitch.flattening = False
    h = RequestHandlers(sup)  # type: ignore[arg-type]
    assert ask(h, SupervisorOp.RISK_GATE, {"command": "unpause"}) == {"ok": True}
    sup.halt = HaltState(True, "x", "command", 1.0)
    with pytest.raises(SupervisorRefused, match="unpause refused: trading is HALTED") as e:
        ask(h, SupervisorOp.RISK_GATE, {"command": "unpause"})
    assert e.value.kind == "refused"


def test_an_unknown_op_is_a_bad_request_naming_the_known_ones() -> None:
    h = RequestHandlers(FakeSup())  # type: ignore[arg-type]
    with pytest.raises(bus.UnknownOp, match="unknown op 'pause' for the supervisor; known ops: "
                                            "abort, halt, hb"):
        ask(h, "pause", {})
