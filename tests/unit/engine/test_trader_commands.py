"""The trader's commands in-process, against a small fake of ``EngineControl`` (the seam the
commands depend on): every op, the limit exit, risk events and the self-flatten, in milliseconds.
The real request path is covered by the stack tests (tests/integration/test_e2e_commands.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from trader.engine import commands as commands_mod
from trader.engine.commands import TraderCommandError, TraderCommands
from trader.engine.control import EngineControl
from trader.engine.risk.view import OpenOrder
from trader.engine.strategy import MarketData, OrderUpdate
from trader.kernel import bus, config
from trader.kernel.payloads import Halt, OrderCreate
from trader.kernel.protocol import (
    PAUSED,
    RUNNING,
    STOPPED,
    STOPPING,
    ConnectorOp,
    SupervisorOp,
    TradingState,
)
from trader.kernel.wire import Message

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
MSG = Message("x", "commander", 1, 0.0, {})


class FakeRequester:
    """Records requests; answers from ``answers[op]`` (a value, a list consumed in order, or
    an exception)."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.answers = answers or {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0

    async def request(self, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 5.0) -> Any:
        self.sent.append((str(op), dict(args or {})))
        ans = self.answers.get(str(op), {})
        if isinstance(ans, list):
            ans = ans.pop(0) if len(ans) > 1 else ans[0]
        if isinstance(ans, Exception):
            raise ans
        return ans

    def ops(self) -> list[str]:
        return [op for op, _ in self.sent]


class FakeEngine:
    """Just enough engine for the commands: state, positions, marks, orders, risk bans."""

    def __init__(self) -> None:
        self.cfg = config.from_mapping({"exchange": {"symbols": [BTC, ETH]},
                                        "control": {"stop_timeout": 60.0, "stop_reprice": 3.0}})
        self.symbols = (BTC, ETH)
        self.state: str = RUNNING
        self.connector = FakeRequester()
        self.supervisor = FakeRequester()
        self.positions: dict[str, float] = {}
        self.marks: dict[str, MarketData] = {}
        self.orders: dict[str, tuple[str, str, str]] = {}  # cid -> (symbol, side, status)
        self.banned: set[str] = set()
        self.placed: list[tuple[str, str, float, float | None, bool]] = []
        self.cancelled: list[tuple[str, str]] = []
        self.cancelled_all: list[tuple[str, ...]] = []
        self.notified: list[tuple[str, str]] = []
        self.stopped = False
        self.strategy_stopped = False

    def set_state(self, state: TradingState) -> None:
        self.state = state

    def risk_status(self) -> dict[str, Any]:
        return {"symbols": {s: {"state": "banned" if s in self.banned else "active"}
                            for s in self.symbols}}

    def risk_state(self) -> str:
        return "ACTIVE"

    def ban(self, symbol: str) -> None:
        self.banned.add(symbol)

    def unban(self, symbol: str) -> None:
        self.banned.discard(symbol)

    def strategy_name(self) -> str:
        return "fake"

    def strategy_debug(self) -> Any:
        return {"ticks": 3}

    def strategy_stop(self) -> None:
        self.strategy_stopped = True

    def held(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def quote(self, symbol: str) -> MarketData | None:
        return self.marks.get(symbol)

    def position_rows(self) -> list[dict[str, Any]]:
        return [{"symbol": s, "contracts": c} for s, c in self.positions.items()]

    def equity(self) -> float:
        return 1000.0

    def last_md(self) -> float:
        return 0.0

    def open_order_rows(self) -> tuple[OpenOrder, ...]:
        return tuple(OpenOrder(cid, sym, side, 1.0)  # type: ignore[arg-type]
                     for cid, (sym, side, st) in self.orders.items()
                     if st in ("pending", "open"))

    def live_orders(self, symbol: str) -> list[OrderUpdate]:
        return [OrderUpdate(cid, sym, side, st, 1.0, 0.0, None, False)
                for cid, (sym, side, st) in self.orders.items() if sym == symbol]

    def order_status(self, client_id: str) -> str | None:
        o = self.orders.get(client_id)
        return None if o is None else o[2]

    def pending_orders(self, symbols: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(sym, cid) for cid, (sym, _, st) in self.orders.items()
                if st == "pending" and sym in symbols]

    def orders_tracked(self) -> int:
        return len(self.orders)

    def rejections(self) -> int:
        return 0

    def place(self, symbol: str, side: str, amount: float, price: float | None,
              reduce_only: bool) -> str | None:
        self.placed.append((symbol, side, amount, price, reduce_only))
        cid = f"x{len(self.placed)}"
        self.orders[cid] = (symbol, side, "open")
        return cid

    def cancel_order(self, symbol: str, client_id: str) -> None:
        self.cancelled.append((symbol, client_id))

    async def cancel_all_now(self, symbols: tuple[str, ...]) -> None:
        self.cancelled_all.append(tuple(symbols))

    def exit_client_id(self) -> str:
        return "fg-x1"

    def loops(self) -> int:
        return 42

    def notify(self, level: str, title: str, text: str, key: str | None = None) -> None:
        self.notified.append((level, title))

    def stop_process(self) -> None:
        self.stopped = True


def make() -> tuple[FakeEngine, TraderCommands]:
    e = FakeEngine()
    fake: EngineControl = e  # the fake is an EngineControl (checked by type checkers)
    return e, TraderCommands(fake)


def ask(cmds: TraderCommands, op: str, args: dict[str, Any] | None = None) -> Any:
    async def go() -> Any:
        res = await cmds.handle(op, args or {}, MSG)
        await asyncio.sleep(0)  # let late tasks (halt requests, late cancels) run
        await asyncio.sleep(0)
        return res
    return asyncio.run(go())


# --- the engine implements the seam -----------------------------------------------------------


def test_the_engine_implements_every_member_of_engine_control() -> None:
    from trader.engine.loop import Engine
    members = {n for n in dir(EngineControl) if not n.startswith("_")}
    members |= set(EngineControl.__annotations__)
    instance_attrs = {"cfg", "symbols", "state"}  # set in Engine.__init__
    missing = sorted(m for m in members - instance_attrs if not hasattr(Engine, m))
    assert not missing, f"Engine lacks {missing}"


# --- ops --------------------------------------------------------------------------------------


def test_unknown_op_is_a_bad_request_naming_the_known_ones() -> None:
    _, cmds = make()
    with pytest.raises(bus.UnknownOp, match="unknown op 'record'.*known ops: ban, debug"):
        ask(cmds, "record")


def test_pause_cancels_everything_and_the_creates_still_in_flight() -> None:
    e, cmds = make()
    e.orders["c1"] = (BTC, "buy", "pending")  # sent, no answer yet: may land after the cancel
    assert ask(cmds, "pause") == {"state": PAUSED, "cancelled_symbols": [BTC, ETH]}
    assert e.state == PAUSED and e.cancelled_all == [(BTC, ETH)]
    assert e.connector.sent == [(ConnectorOp.ORDER_CANCEL, {"symbol": BTC, "client_id": "c1"})]
    assert ask(cmds, "pause")["state"] == PAUSED  # again: harmless


def test_pause_and_unpause_are_refused_in_the_wrong_state() -> None:
    e, cmds = make()
    with pytest.raises(TraderCommandError, match="not paused") as err:
        ask(cmds, "unpause")
    assert err.value.kind == "refused"
    e.state = STOPPING
    with pytest.raises(TraderCommandError, match="cannot pause in state STOPPING"):
        ask(cmds, "pause")
    e.state = PAUSED
    assert ask(cmds, "unpause") == {"state": RUNNING}


def test_ban_and_unban_check_the_symbol() -> None:
    e, cmds = make()
    with pytest.raises(TraderCommandError, match="unknown symbol 'DOGE'; traded: BTC"):
        ask(cmds, "ban", {"symbol": "DOGE"})
    assert ask(cmds, "ban", {"symbol": BTC}) == {"banned": BTC}
    assert e.banned == {BTC} and e.cancelled_all == [(BTC,)]
    assert ask(cmds, "info")["symbols"][BTC]["state"] == "banned"
    assert ask(cmds, "unban", {"symbol": BTC}) == {"unbanned": BTC} and not e.banned


def test_info_debug_and_debug_instrument() -> None:
    e, cmds = make()
    e.positions[BTC] = 0.5
    e.marks[BTC] = MarketData(BTC, 100.0, 99.9, 100.1, time.time())
    e.orders["c1"] = (BTC, "sell", "open")
    info = ask(cmds, "info")
    assert info["trading_state"] == RUNNING and info["strategy"] == "fake"
    assert info["symbols"] == {BTC: {"state": "active", "position": 0.5, "mark": 100.0},
                               ETH: {"state": "active", "position": 0.0, "mark": None}}
    assert [o["client_id"] for o in info["open_orders"]] == ["c1"]
    dbg = ask(cmds, "debug")
    assert dbg["loops"] == 42 and dbg["orders_tracked"] == 1 and dbg["last_md_age_s"] is None
    inst = ask(cmds, "debug_instrument", {"symbol": BTC})
    assert inst["position"] == 0.5 and inst["mark"]["bid"] == 99.9
    assert inst["open_orders"][0]["client_id"] == "c1"


# --- stop: the limit exit -----------------------------------------------------------------------


def test_stop_places_reduce_only_exits_at_the_touch_then_halts_when_flat() -> None:
    e, cmds = make()
    e.positions = {BTC: 0.5, ETH: -2.0}
    e.marks = {BTC: MarketData(BTC, 100.0, 99.0, 101.0, 0.0),
               ETH: MarketData(ETH, 10.0, 9.0, 11.0, 0.0)}
    assert ask(cmds, "stop")["state"] == STOPPING
    assert ask(cmds, "stop") == {"state": STOPPING, "already": True}
    cmds.stop_step()
    assert e.placed == [(BTC, "sell", 0.5, 101.0, True), (ETH, "buy", 2.0, 9.0, True)]
    cmds.stop_step()  # resting at a recent touch: nothing new
    assert len(e.placed) == 2

    async def flat() -> None:
        e.positions.clear()
        e.orders.clear()
        cmds.stop_step()
        await asyncio.sleep(0)
    asyncio.run(flat())
    assert e.supervisor.sent == [(SupervisorOp.HALT,
                                  Halt("stop", "limit exit complete", "trader").to_wire())]


def test_stop_that_outlives_stop_timeout_asks_for_the_kill_switch() -> None:
    e, cmds = make()
    e.positions = {BTC: 0.5}
    ask(cmds, "stop")
    cmds.stop_started -= e.cfg.control.stop_timeout + 1

    async def step() -> None:
        cmds.stop_step()
        await asyncio.sleep(0)
    asyncio.run(step())
    assert e.supervisor.sent[0][1]["trigger"] == "stop_timeout"


def test_a_lost_halt_request_stops_the_process_so_the_supervisor_sees_it() -> None:
    e, cmds = make()
    e.supervisor.answers[SupervisorOp.HALT] = bus.RequestTimeout("halt", 2.0)

    async def go() -> None:
        cmds.request_halt("risk_x", "why")
        cmds.request_halt("risk_x", "again")  # one request only
        await asyncio.sleep(0.01)
    asyncio.run(go())
    assert len(e.supervisor.sent) == 1 and e.stopped


# --- risk events and endings ----------------------------------------------------------------


class Ev:
    def __init__(self, action: str, symbol: str | None = None) -> None:
        self.guard, self.level, self.action, self.symbol = "g", "warning", action, symbol
        self.title, self.text = "t", "x"


def test_a_reduce_event_halves_every_position_reduce_only() -> None:
    e, cmds = make()
    e.positions = {BTC: 1.0, ETH: -4.0}
    cmds.risk_event(Ev("reduce"))
    assert e.placed == [(BTC, "sell", 0.5, None, True), (ETH, "buy", 2.0, None, True)]
    assert e.notified == [("warning", "t")]


def test_graceful_stop_tells_the_strategy_and_cancels() -> None:
    e, cmds = make()
    asyncio.run(cmds.graceful_stop())
    assert e.state == STOPPED and e.strategy_stopped and e.cancelled_all == [(BTC, ETH)]


def test_supervisor_lost_closes_positions_through_the_connector_then_exits(
        monkeypatch: pytest.MonkeyPatch) -> None:
    e, cmds = make()
    held = {"positions": [{"symbol": BTC, "contracts": -0.5}], "open_orders": []}
    flat = {"positions": [], "open_orders": []}
    e.connector.answers[ConnectorOp.ACCOUNT] = [held, flat]
    real_sleep = asyncio.sleep
    monkeypatch.setattr(commands_mod.asyncio, "sleep", lambda s: real_sleep(0))
    assert asyncio.run(cmds.supervisor_lost()) == 3
    creates = [a for op, a in e.connector.sent if op == ConnectorOp.ORDER_CREATE]
    assert creates == [OrderCreate("fg-x1", BTC, "buy", "market", 0.5,
                                   reduce_only=True).to_wire()]
    assert e.connector.ops()[:3] == ["order.cancel_all", "sync", "account"]
    assert e.state == STOPPED and e.notified[0][0] == "critical"


def test_supervisor_lost_gives_up_after_the_configured_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancels keep failing: the trader stops trying after ``killswitch.self_flatten_timeout``
    and exits 4 (unverified); the exchange's dead-man switch is left to do its part."""
    e, cmds = make()
    e.cfg = config.from_mapping({"exchange": {"symbols": [BTC, ETH]},
                                 "killswitch": {"self_flatten_timeout": 0.05}})
    e.connector.answers[ConnectorOp.ORDER_CANCEL_ALL] = bus.RequestError("unavailable", "503")
    real_sleep = asyncio.sleep
    monkeypatch.setattr(commands_mod.asyncio, "sleep", lambda s: real_sleep(0.01))
    started = time.monotonic()
    assert asyncio.run(cmds.supervisor_lost()) == 4
    assert time.monotonic() - started < 5.0
    assert set(e.connector.ops()) == {"order.cancel_all"}  # never a close while cancels fail
