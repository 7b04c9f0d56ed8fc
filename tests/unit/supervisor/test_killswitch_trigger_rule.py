"""Which trigger a kill-switch run (and HALTED) is named after is a rule, not a race.

The first trigger wins while a run is in progress; an orderly stop that flattens owns the account
from the moment it is asked for: a trigger during it (the connector's ``exchange_fatal`` when the
exchange refuses the stop's closes, a person's ``kill``) fences the trader but starts no second
flatten and never replaces ``shutdown``. Issue 11: test_unverified_stop_halts_and_next_up_resumes
_the_flatten saw ``exchange_fatal`` instead of ``shutdown`` under load, depending on which came
first. Here with the real KillSwitch, journal and ``orderly_stop``, a fake flattener and no
processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from supervisor.app import Supervisor
from supervisor.flatten import RoundResult
from supervisor.killswitch import KillSwitch
from supervisor.lifecycle import orderly_stop
from trader.kernel import config
from trader.kernel.journal import HaltState, Journal
from trader.kernel.metrics import Registry

pytestmark = pytest.mark.usefixtures("no_order_in_flight")


class Flattener:
    """Rounds that are flat or not, as the test says; ``during`` runs inside each round."""

    def __init__(self, flat: bool, during: Callable[[], None] = lambda: None) -> None:
        self.flat, self.during, self.rounds = flat, during, 0
        self.ex = None
        self.hedged = False

    async def round(self, cancel_only: bool = False) -> RoundResult:
        self.rounds += 1
        self.during()
        await asyncio.sleep(0)
        if self.flat:
            return RoundResult(True)
        return RoundResult(False, positions=["ETH/USDT:USDT +0.3"],
                           error="create_order: transient, HTTP 503", failure="transient")

    async def verify(self) -> RoundResult:
        return RoundResult(self.flat)




def killswitch(journal: Journal, flattener: Any, fenced: list[str]) -> KillSwitch:
    async def fence() -> None:
        fenced.append("trader")

    return KillSwitch(journal, flattener, 0.001, lambda *a, **k: None, Registry(), fence)


def test_a_trigger_while_held_is_deferred_then_halts_by_it_when_the_stop_was_flat(
        journal: Journal) -> None:
    fenced: list[str] = []
    ks = killswitch(journal, Flattener(True), fenced)

    async def go() -> None:
        ks.hold("orderly stop")
        assert ks.trigger("exchange_fatal", "fetch_positions: 404") is False
        assert ks.trigger("command", "kill command") is False  # the first one is kept
        assert not ks.running and ks.task is None  # no second flatten
        await asyncio.sleep(0)
        assert fenced  # but the trader is fenced at once
        assert ks.settle(flat=True)

    asyncio.run(go())
    h = journal.halt_state()
    assert (h.halted, h.trigger, h.verified_flat) == (True, "exchange_fatal", True)
    assert h.reason == "fetch_positions: 404"


def test_halted_already_written_by_the_stop_stands(journal: Journal) -> None:
    ks = killswitch(journal, Flattener(False), [])

    async def go() -> None:
        ks.hold("orderly stop")
        ks.trigger("exchange_fatal", "create_order: retry budget spent")
        journal.set_halt(HaltState(True, "orderly stop could not verify", "shutdown", 1.0, False))
        assert not ks.settle(flat=False)

    asyncio.run(go())
    assert journal.halt_state().trigger == "shutdown"


def test_nothing_deferred_settles_nothing(journal: Journal) -> None:
    ks = killswitch(journal, Flattener(True), [])
    ks.hold("orderly stop")
    assert not ks.settle(flat=True) and not journal.halt_state().halted


def test_unheld_the_first_trigger_names_the_run(journal: Journal) -> None:
    ks = killswitch(journal, Flattener(True), [])

    async def go() -> None:
        assert ks.trigger("trader_exit", "the trader exited")
        assert not ks.trigger("exchange_fatal", "later")
        await ks.task  # type: ignore[misc]

    asyncio.run(go())
    assert journal.halt_state().trigger == "trader_exit"


# --- through orderly_stop: the race of issue 11, now decided by the rule ---------------------

def supervisor(journal: Journal, flattener: Flattener, **cfg: Any) -> Supervisor:
    sup = Supervisor(config.from_mapping({"supervisor": {"shutdown_timeout": 0.05, **cfg}}),
                     None)  # type: ignore[arg-type]
    sup.journal, sup.flattener = journal, flattener  # type: ignore[assignment]
    sup.killswitch = killswitch(journal, flattener, [])
    return sup




def stop(sup: Supervisor) -> int:
    async def go() -> int:
        sup.request_stop()  # what SIGTERM does
        try:
            return await orderly_stop(sup)
        finally:
            sup.ctx.destroy(0)

    return asyncio.run(go())


def test_exchange_fatal_during_an_unverified_stop_leaves_the_trigger_shutdown(
        journal: Journal) -> None:
    holder: list[Supervisor] = []
    fl = Flattener(False, during=lambda: holder[0].killswitch.trigger(  # type: ignore[union-attr]
        "exchange_fatal", "create_order: transient beyond the retry budget"))
    sup = supervisor(journal, fl)
    holder.append(sup)
    assert stop(sup) == 1
    h = journal.halt_state()
    assert (h.halted, h.trigger, h.verified_flat) == (True, "shutdown", False)
    assert sup.ending is not None and sup.ending.kind == "not_verified"
    assert sup.killswitch is not None and sup.killswitch.task is None  # never a second flatten


def test_exchange_fatal_between_the_signal_and_the_stop_is_the_stops_too(
        journal: Journal) -> None:
    sup = supervisor(journal, Flattener(False))
    assert sup.killswitch is not None

    async def go() -> int:
        sup.request_stop()
        assert sup.killswitch.trigger("exchange_fatal", "x") is False  # before orderly_stop
        try:
            return await orderly_stop(sup)
        finally:
            sup.ctx.destroy(0)

    assert asyncio.run(go()) == 1
    assert journal.halt_state().trigger == "shutdown"


def test_a_trigger_during_a_verified_stop_ends_halted_by_it_and_flat(journal: Journal) -> None:
    holder: list[Supervisor] = []
    fl = Flattener(True, during=lambda: holder[0].killswitch.trigger(  # type: ignore[union-attr]
        "command", "kill command (from telegram)"))
    sup = supervisor(journal, fl, shutdown_timeout=5)
    holder.append(sup)
    assert stop(sup) == 0
    h = journal.halt_state()
    assert (h.halted, h.trigger, h.verified_flat) == (True, "command", True)
    assert sup.ending is not None and "still HALTED (command)" in sup.ending.text


def test_a_leave_stop_holds_nothing(journal: Journal) -> None:
    sup = supervisor(journal, Flattener(True), shutdown="leave")
    sup.request_stop()
    assert sup.killswitch is not None and sup.killswitch.owner == ""
    sup.ctx.destroy(0)


def test_a_stop_while_halted_by_abort_holds_nothing(journal: Journal) -> None:
    """``abort`` left the account as it is on purpose: the stop does not flatten, so it owns
    nothing and a trigger keeps its usual meaning."""
    journal.set_halt(HaltState(True, "aborted by a person", "abort", 1.0, False))
    sup = supervisor(journal, Flattener(True))
    sup.request_stop()
    assert sup.killswitch is not None and sup.killswitch.owner == ""
    sup.ctx.destroy(0)


# --- the watchdog: a run that ended unverified starts again -----------------------------------

def test_the_watchdog_restarts_a_run_that_ended_unverified(journal: Journal) -> None:
    from supervisor.policy import ChildPolicy
    from tests.unit.supervisor.fakesup import FakeSup

    fl = Flattener(True)
    ks = killswitch(journal, fl, [])
    sup = FakeSup()
    sup.killswitch = ks
    policy = ChildPolicy(sup)  # type: ignore[arg-type]

    async def go() -> None:
        async def died() -> Any:  # a run that raised outside the loop's own catch (our bug)
            raise RuntimeError("our own bug")

        journal.set_halt(HaltState(True, "the trader exited", "trader_exit", 1.0, False))
        ks.task = asyncio.get_running_loop().create_task(died())
        await asyncio.sleep(0)
        assert ks.needs_restart()
        sup.shutting_down = True
        policy.kill_switch_watchdog()  # never during an orderly stop
        assert ks.task is not None and ks.task.done()
        sup.shutting_down = False
        policy.kill_switch_watchdog()
        assert ks.task is None  # handed to resume_pending
        for _ in range(5):
            await asyncio.sleep(0)
        assert ks.task is not None
        outcome = await ks.task
        assert outcome.verified and fl.rounds == 1

    asyncio.run(go())
    assert journal.halt_state().verified_flat


def test_the_watchdog_leaves_an_abort_alone(journal: Journal) -> None:
    from supervisor.policy import ChildPolicy
    from tests.unit.supervisor.fakesup import FakeSup

    ks = killswitch(journal, Flattener(True), [])
    sup = FakeSup()
    sup.killswitch = ks
    sup.halt = HaltState(True, "aborted", "abort", 1.0, False)

    async def go() -> None:
        async def died() -> Any:
            raise RuntimeError("x")

        ks.task = asyncio.get_running_loop().create_task(died())
        await asyncio.sleep(0)
        ChildPolicy(sup).kill_switch_watchdog()  # type: ignore[arg-type]
        assert ks.task is not None and ks.task.done()

    asyncio.run(go())
