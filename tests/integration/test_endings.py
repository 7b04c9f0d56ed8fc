"""Point 8 of the operations issue, end to end (processes matter here): SIGTERM to every process
of the stack at once still ends in order with the notifier delivering "flatguard stopped". The
ending texts are checked in-process (tests/unit/supervisor/test_endings.py); an unverified stop's
last line and alert with the halt it leaves (test_supervisor_lifecycle.py).
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.stack import Sim, Stack, positions_of, wait_for

pytestmark = pytest.mark.integration


def make(sim: Sim, stacks: list[Stack], extra: str = "") -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n[killswitch]\nbackoff = 0.5\n{extra}')
    stacks.append(st)
    return st


def test_sigterm_to_every_process_still_stops_in_order(sim: Sim, stacks: list[Stack]) -> None:
    st = make(sim, stacks).start()
    wait_for(lambda: positions_of(sim.state()) or sim.state()["open_orders"], 60, "exposure")
    procs = st.status()["processes"]
    children = [int(procs[n]["pid"]) for n in ("notifier", "commander", "connector", "trader")]
    assert st.proc is not None
    for pid in [*children, st.proc.pid]:  # the notifier first: the worst order for the alert
        os.kill(pid, signal.SIGTERM)
    assert st.wait_exit() == 0, st.output()
    out = st.output()
    assert "event=sigterm_deferred" in out
    assert "did not stop within" not in out  # each child stopped in order, none SIGKILLed
    assert st.lines[-1].endswith("flatguard stopped exit=0: account verified flat on the "
                                 "exchange"), out
    delivered = [ln for ln in st.lines if "notifier" in ln and "event=notification" in ln
                 and 'title="flatguard stopped"' in ln]
    assert delivered, out  # the notifier was still there to send it
    s = sim.state()
    assert not positions_of(s) and not s["open_orders"]
