"""The churn strategy against the risk guards (unit level: a fake context and exchange model;
the run on the real sim is the engine's integration test)."""

from __future__ import annotations

import dataclasses
import types

import pytest

from trader.engine.risk import AccountView, Mark, OrderIntent, Position, RiskEngine
from trader.engine.strategies.churn import Churn
from trader.engine.strategy import Fill, MarketData
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

BTC = "BTC/USDT:USDT"
CFG = RiskConfig(
    max_order_notional=500.0,
    max_position_notional=1000.0,
    max_gross_exposure=1000.0,
    max_orders_per_second=5,
    max_orders_per_minute=120,
    loop_window=60.0,
    loop_max_round_trips=10,
    loop_max_cost=100.0,
)


class Ctx:
    """Just enough of the engine: orders pass the RiskEngine, market orders fill at the touch."""

    def __init__(self, risk: RiskEngine, params: dict) -> None:
        self.risk, self.params, self.symbols = risk, types.MappingProxyType(params), (BTC,)
        self.pos, self.t, self.n = 0.0, 1_000_000.0, 0
        self.bid, self.ask = 99.95, 100.05
        self.sent: list[float] = []
        self.events: list = []
        self.max_notional = 0.0
        self.strategy: Churn | None = None

    def view(self) -> AccountView:
        return AccountView(
            10_000.0, {BTC: Position(self.pos, 100.0)}, {BTC: Mark(100.0, self.t)}, (), None, self.t
        )

    def _order(self, side: str, amount: float, price, reduce_only: bool) -> str | None:
        self.n += 1
        o = OrderIntent(
            f"ch{self.n}",
            BTC,
            side,
            "market" if price is None else "limit",
            amount,
            price,
            reduce_only,
        )
        if self.risk.check(o, self.view(), self.t) is not None:
            return None
        self.risk.record_sent(o, self.t)
        self.sent.append(self.t)
        px = self.ask if side == "buy" else self.bid
        self.pos += amount if side == "buy" else -amount
        self.max_notional = max(self.max_notional, abs(self.pos) * 100.0)
        self.events += self.risk.on_fill(BTC, side, amount, px, amount * px * 0.0005, self.t)
        assert self.strategy is not None
        self.strategy.on_fill(self, Fill("t", o.client_id, BTC, side, amount, px, 0.0, self.t))
        return o.client_id

    def buy(self, symbol, amount, price=None, reduce_only=False):
        return self._order("buy", amount, price, reduce_only)

    def sell(self, symbol, amount, price=None, reduce_only=False):
        return self._order("sell", amount, price, reduce_only)

    def position(self, symbol):
        return self.pos

    def now(self):
        return self.t


def run(cfg: RiskConfig, params: dict, seconds: float) -> Ctx:
    risk = RiskEngine(cfg, (BTC,))
    risk.set_trading_state(P.RUNNING)
    ctx = Ctx(risk, params)
    s = ctx.strategy = Churn()
    s.on_start(ctx)
    end = ctx.t + seconds
    while ctx.t < end:
        s.on_tick(ctx, MarketData(BTC, 100.0, ctx.bid, ctx.ask, ctx.t))
        for e in risk.evaluate(ctx.view(), ctx.t):
            ctx.events.append(e)
            if e.action == "halt":
                risk.set_trading_state(P.HALTED)
        if any(e.action == "halt" for e in ctx.events):
            risk.set_trading_state(P.HALTED)
        ctx.t += 0.05  # a tight loop: 20 ticks a second, 5 orders each
    return ctx


def _windows_hold(sent: list[float], cfg: RiskConfig) -> bool:
    for i, t in enumerate(sent):
        if sum(1 for x in sent[: i + 1] if t - 1.0 < x) > cfg.max_orders_per_second:
            return False
        if sum(1 for x in sent[: i + 1] if t - 60.0 < x) > cfg.max_orders_per_minute:
            return False
    return True


def test_churn_is_throttled_capped_and_stopped_by_the_loop_detector():
    ctx = run(CFG, {"amount": 2.0, "orders_per_tick": 5}, 120.0)
    assert _windows_hold(ctx.sent, CFG)
    assert ctx.max_notional <= CFG.max_position_notional
    loops = [e for e in ctx.events if e.guard == "loop"]
    assert [(e.level, e.action) for e in loops] == [("warning", None)]
    assert ctx.risk.symbol_state(BTC) == "reducing"  # stays reduced: no cooldown configured
    # after the breach only reduce-only orders pass, and churn sends none: the loop is over
    assert ctx.risk.loops.counts(BTC, ctx.t)[0] <= 1
    assert ctx.strategy.refused > 0


def test_churn_with_cooldown_breaches_again_and_halts():
    cfg = dataclasses.replace(CFG, loop_cooldown=5.0)
    ctx = run(cfg, {"amount": 2.0, "orders_per_tick": 5}, 120.0)
    loops = [(e.level, e.action) for e in ctx.events if e.guard == "loop"]
    assert loops[0] == ("warning", None) and loops[-1] == ("critical", "halt")
    assert ctx.risk.state == P.HALTED
    assert _windows_hold(ctx.sent, cfg)


def test_churn_params_are_validated():
    ctx = Ctx(RiskEngine(CFG, (BTC,)), {"amount": 0})
    with pytest.raises(ValueError, match="churn"):
        Churn().on_start(ctx)
