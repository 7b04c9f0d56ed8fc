"""The strategy sees the engine only through ``StrategyContext``: the documented names, nothing
else, and through them it still trades (in-process: a real engine, a stub connector)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import tempfile
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio

from trader.engine.context import StrategyContext
from trader.engine.loop import Engine
from trader.engine.strategy import CONTEXT_API, Context, MarketData, Strategy
from trader.kernel import bus, config, proc, runpaths
from trader.kernel.protocol import ACCOUNT, MD, ORDER, RUNNING
from trader.kernel.wire import Message

BTC = "BTC/USDT:USDT"


def test_the_api_is_the_protocol() -> None:
    documented = {n for n, v in vars(Context).items()
                  if not n.startswith("_") and inspect.isfunction(v)}
    documented |= set(Context.__annotations__)
    assert set(CONTEXT_API) == documented


class Seen(Strategy):
    """Records the context it is given; buys on the first tick, cancels it on the second."""

    name = "seen"

    def on_start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cid: str | None = None
        self.positions: list[float] = []

    def on_stop(self, ctx: Context) -> None:
        self.stopped_with = ctx

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        self.positions.append(ctx.position(md.symbol))
        if self.cid is None:
            self.cid = ctx.buy(md.symbol, 0.01, price=md.bid)
        else:
            ctx.cancel(md.symbol, self.cid)


class StubConn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.last_reply = 0.0

    async def request(self, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 0.0) -> Any:
        self.calls.append((str(op), dict(args or {})))
        if str(op) == "account":
            return {"equity": 10_000.0, "balance": 10_000.0, "open_orders": [], "fresh": 9e18,
                    "positions": [{"symbol": BTC, "contracts": 0.5, "entry_price": 100.0}]}
        return {"status": "open"}

    async def send_oneway(self, op: str, args: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("trader.engine.loop.load_strategy", lambda name: Seen)
    cfg = config.from_mapping({"exchange": {"symbols": [BTC]},
                               "risk": {"max_orders_per_second": 100}})
    with tempfile.TemporaryDirectory(prefix="fg", dir="/tmp") as d:
        paths = runpaths.RunPaths(Path(d))
        ctx = zmq.asyncio.Context()
        child = proc.Child("trader", paths, cfg, ctx, bus.Requester(ctx, paths.supervisor, "t"))
        e = Engine(child)
        conn = StubConn()
        e.conn.close()
        e.conn = e.orders.conn = conn  # type: ignore[assignment]
        e._restore_risk_day = lambda: None  # type: ignore[method-assign]  # no journal here
        e._save_risk_day = lambda: None  # type: ignore[method-assign]
        try:
            yield e
        finally:
            e.close()
            child.close()


def tick(mark: float) -> Message:
    return Message(MD + BTC, "connector", 1, 0.0,
                   {"symbol": BTC, "mark": mark, "bid": mark - 0.1, "ask": mark + 0.1, "ts": 1.0})


def test_the_strategy_gets_the_narrow_context_and_trades_through_it(engine: Engine) -> None:
    async def go() -> None:
        await engine.start()
        assert engine.state == RUNNING
        s = engine.strategy
        assert isinstance(s, Seen) and isinstance(s.ctx, StrategyContext)
        engine.handle(tick(100.0))
        await asyncio.sleep(0.01)  # the send runs as a task
        assert s.cid is not None
        assert s.ctx.open_orders(BTC)[0].client_id == s.cid
        engine.handle(tick(100.5))
        await asyncio.sleep(0.01)
        ops = [op for op, _ in engine.conn.calls]  # type: ignore[attr-defined]
        assert ops.count("order.create") == 1 and ops.count("order.cancel") == 1
        assert s.positions == [0.5, 0.5]  # read through ctx.position
        assert s.ctx.mark(BTC) is not None and s.ctx.mark(BTC).mark == 100.5  # type: ignore[union-attr]
        assert s.ctx.symbols == (BTC,)
        engine.strategy_stop()  # the trader's commands stop it with the same context
        assert s.stopped_with is s.ctx

    asyncio.run(go())


def test_nothing_but_the_documented_names(engine: Engine) -> None:
    ctx = engine.strategy_ctx
    public = {n for n in dir(ctx) if not n.startswith("__")}
    assert public == set(CONTEXT_API)
    for internal in ("_view", "journal", "bus", "conn", "orders", "risk", "inv", "child",
                     "cfg", "strategy", "commands", "set_state", "_engine"):
        with pytest.raises(AttributeError):
            getattr(ctx, internal)
    with pytest.raises(AttributeError):
        ctx.buy = lambda *a: None  # type: ignore[method-assign]
    with pytest.raises(AttributeError):
        ctx.journal = object()  # type: ignore[attr-defined]


def test_built_in_and_test_strategies_use_only_the_documented_names() -> None:
    """Every ``ctx.<name>`` in the strategies we ship (and test with) is in the Context."""
    root = Path(__file__).resolve().parents[3]
    files = [*(root / "trader/engine/strategies").glob("*.py"), root / "tests/strategies.py",
             root / "tests/integration/test_risk_e2e.py"]
    used = {(f.name, n.attr) for f in files for n in ast.walk(ast.parse(f.read_text()))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "ctx"}
    assert len(used) > 10
    assert {u for u in used if u[1] not in CONTEXT_API} == set()


def test_strategies_named_by_their_old_module_path_still_load() -> None:
    # configs written before the engine layer name the built-ins by their old package
    from trader.engine.strategies.demo import Demo
    from trader.strategy import load_strategy
    assert load_strategy("trader.strategies.demo:Demo") is Demo
    assert load_strategy("demo") is Demo


def test_a_malformed_event_is_dropped_and_counted_not_the_end_of_the_engine(
        engine: Engine) -> None:
    async def go() -> None:
        await engine.start()
        before = bus.STATS.dropped["malformed"]
        bad = [Message(MD + BTC, "connector", 2, 0.0, {"symbol": BTC, "mark": "x", "ts": 1.0}),
               Message(ACCOUNT, "connector", 3, 0.0, {"positions": "none"}),
               Message(ORDER + BTC, "connector", 4, 0.0, {"client_id": "c", "symbol": 7})]
        for m in bad:
            engine.handle(m)  # raises nothing
        assert bus.STATS.dropped["malformed"] == before + 3
        assert engine.inv.contracts(BTC) == 0.5  # the account the engine started from
        engine.handle(tick(100.0))  # and the next good one is handled
        assert engine.inv.marks[BTC].mark == 100.0

    asyncio.run(go())
