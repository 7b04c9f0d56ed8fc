"""Property: whatever a strategy does, no accepted order takes exposure past the caps.

Hypothesis drives random sequences of orders (side, size, type, reduce-only, on two symbols,
alone or in bursts checked against one view), partial and full fills, cancels, price moves,
state changes and the passing of time through a RiskEngine in front of a small exchange model
(market orders fill at once, limits rest, reduce-only fills are clipped like the exchange does).
An oracle computes the worst case from the *exchange's* true state, independently of the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.engine.risk import AccountView, Mark, OpenOrder, OrderIntent, Position, RiskEngine
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
SYMBOLS = (BTC, ETH)
SCALE = {BTC: 1.0, ETH: 10.0}  # ETH trades 10x the contracts at a tenth of the price
CFG = RiskConfig(
    max_order_notional=1000.0,
    max_position_notional=2000.0,
    max_gross_exposure=3000.0,
    max_leverage=2.0,
    max_orders_per_second=3,
    max_orders_per_minute=20,
    price_band=0.05,
    loop_window=60.0,
    loop_max_round_trips=6,
    loop_max_cost=30.0,
    stale_pause=5.0,
    stale_halt=60.0,
)
EXPOSURE_CHECKS = {"order_notional", "position_notional", "gross_exposure", "leverage"}
TOL = 1 + 1e-7


@dataclass
class Exchange:
    """The true state: what the exchange holds, not what the engine believes."""

    pos: dict[str, float]
    marks: dict[str, float]
    equity: float
    resting: list[list] = field(default_factory=list)  # [OrderIntent, remaining]

    def view(self, now: float) -> AccountView:
        return AccountView(
            equity=self.equity,
            positions={s: Position(c, self.marks[s]) for s, c in self.pos.items()},
            marks={s: Mark(m, now) for s, m in self.marks.items()},
            open_orders=tuple(
                OpenOrder(o.client_id, o.symbol, o.side, rem, o.price, o.reduce_only)
                for o, rem in self.resting
            ),
            confirmed=now,
        )

    def range(self, s: str, extra: OrderIntent | None = None) -> tuple[float, float]:
        """True extremes: reduce-only fills stop at flat (what ``fill`` below does), so the
        lowest is reached by filling reduce-only sells first, then the plain ones."""
        p = self.pos[s]
        orders = [(o, rem) for o, rem in self.resting if o.symbol == s]
        if extra is not None and extra.symbol == s:
            orders.append((extra, extra.amount))
        lo = hi = p
        for o, rem in sorted(orders, key=lambda x: not x[0].reduce_only):
            if o.side == "sell":
                lo = max(lo - rem, 0.0) if o.reduce_only else lo - rem
        for o, rem in sorted(orders, key=lambda x: not x[0].reduce_only):
            if o.side == "buy":
                hi = min(hi + rem, 0.0) if o.reduce_only else hi + rem
        if p <= 0:
            lo = p - sum(r for o, r in orders if o.side == "sell" and not o.reduce_only)
        if p >= 0:
            hi = p + sum(r for o, r in orders if o.side == "buy" and not o.reduce_only)
        return lo, hi

    def worst(self, s: str, extra: OrderIntent | None = None) -> float:
        lo, hi = self.range(s, extra)
        return max(hi, -lo, 0.0)

    def gross(self, extra: OrderIntent | None = None) -> float:
        return sum(self.worst(s, extra) * self.marks[s] for s in SYMBOLS)

    def fill(self, risk: RiskEngine, idx: int, frac: float, now: float) -> None:
        o, rem = self.resting[idx]
        q = rem * frac
        p = self.pos[o.symbol]
        if o.reduce_only:  # the exchange never lets a reduce-only order increase the position
            room = max(-p, 0.0) if o.side == "buy" else max(p, 0.0)
            q = min(q, room)
            if q <= 0:
                del self.resting[idx]
                return
        self.pos[o.symbol] = p + (q if o.side == "buy" else -q)
        price = o.price if o.price is not None else self.marks[o.symbol]
        risk.on_fill(o.symbol, o.side, q, price, q * price * 0.0005, now)
        if rem - q <= 1e-12 or q == rem * frac and frac == 1.0:
            del self.resting[idx]
        else:
            self.resting[idx][1] = rem - q


order_st = st.tuples(
    st.sampled_from(SYMBOLS),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["market", "limit"]),
    st.one_of(st.floats(0.01, 4.0), st.floats(4.0, 14.0)),  # BTC contracts; x10 on ETH
    st.floats(-0.07, 0.07),  # limit price offset from the mark
    st.booleans(),  # reduce_only
)
action_st = st.one_of(
    st.tuples(st.just("order"), order_st),
    st.tuples(st.just("burst"), st.lists(order_st, min_size=2, max_size=6)),
    st.tuples(st.just("fill"), st.integers(0, 50), st.sampled_from([0.3, 0.5, 1.0])),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("move"), st.sampled_from(SYMBOLS), st.floats(0.9, 1.1)),
    st.tuples(st.just("time"), st.sampled_from([0.0, 0.1, 0.4, 1.0, 3.0, 30.0])),
    st.tuples(st.just("state"), st.sampled_from([P.RUNNING, P.RUNNING, P.REDUCING, P.PAUSED])),
)


class Run:
    def __init__(self, start: dict[str, float], equity: float, moves: bool) -> None:
        self.ex = Exchange(dict(start), {BTC: 100.0, ETH: 10.0}, equity)
        self.risk = RiskEngine(CFG, SYMBOLS)
        self.risk.set_trading_state(P.RUNNING)
        self.now = 1_000_000.0
        self.sent: list[float] = []
        self.n = 0
        self.allow_moves = moves
        self.moved = False
        # what was there before any order: adopted exposure above a cap is not the engine's doing
        self.start_worst = {s: self.ex.worst(s) * self.ex.marks[s] for s in SYMBOLS}
        self.start_gross = self.ex.gross()
        self.accepted = 0

    def intent(self, spec) -> OrderIntent:
        sym, side, typ, amount, off, ro = spec
        self.n += 1
        amount = round(amount * SCALE[sym], 4) or 0.01
        price = None if typ == "market" else self.ex.marks[sym] * (1 + off)
        return OrderIntent(f"p{self.n}", sym, side, typ, amount, price, ro)

    def submit(self, o: OrderIntent, view: AccountView, fresh: bool) -> None:
        ex = self.ex
        rej = self.risk.check(o, view, self.now)
        lo, hi = ex.range(o.symbol)
        lo2, hi2 = ex.range(o.symbol, o)
        # no new reachable state on its side: a reduction
        if o.side == "buy":
            reduces = max(hi2, 0.0) <= max(hi, 0.0) * TOL
        else:
            reduces = max(-lo2, 0.0) <= max(-lo, 0.0) * TOL
        if rej is not None:
            if fresh and reduces:
                assert rej.check not in EXPOSURE_CHECKS, f"a reduction was refused: {rej}"
            return
        self.accepted += 1
        mark = ex.marks[o.symbol]
        if not reduces:
            ref = o.price if o.price is not None else mark
            assert o.amount * ref <= CFG.max_order_notional * TOL, o
            side_ext = max(hi2, 0.0) if o.side == "buy" else max(-lo2, 0.0)
            assert side_ext * mark <= CFG.max_position_notional * TOL, (o, ex.pos, ex.resting)
            # every newly reachable state (this symbol beyond its old extreme) is within the
            # gross and leverage caps, the other symbols at their worst
            others = sum(ex.worst(s) * ex.marks[s] for s in SYMBOLS if s != o.symbol)
            g = others + side_ext * mark
            assert g <= CFG.max_gross_exposure * TOL, (o, g, ex.pos, ex.resting)
            assert g <= CFG.max_leverage * ex.equity * TOL, (o, g, ex.equity)
        # sent: the throttle holds in every window
        self.risk.record_sent(o, self.now)
        self.sent.append(self.now)
        t = self.now
        assert sum(1 for x in self.sent if t - 1.0 < x <= t) <= CFG.max_orders_per_second
        assert sum(1 for x in self.sent if t - 60.0 < x <= t) <= CFG.max_orders_per_minute
        ex.resting.append([o, o.amount])
        if o.type == "market":
            ex.fill(self.risk, len(ex.resting) - 1, 1.0, self.now)

    def step(self, action) -> None:
        kind = action[0]
        ex = self.ex
        if kind == "order":
            self.submit(self.intent(action[1]), ex.view(self.now), fresh=True)
        elif kind == "burst":
            v = ex.view(self.now)  # one view for the whole burst, as within one engine turn
            for spec in action[1]:
                self.submit(self.intent(spec), v, fresh=False)
        elif kind == "fill" and ex.resting:
            ex.fill(self.risk, action[1] % len(ex.resting), action[2], self.now)
        elif kind == "cancel" and ex.resting:
            del ex.resting[action[1] % len(ex.resting)]
        elif kind == "move" and self.allow_moves:
            ex.marks[action[1]] *= action[2]
            self.moved = True
        elif kind == "time":
            self.now += action[1]
            self.risk.evaluate(ex.view(self.now), self.now)
        elif kind == "state":
            self.risk.set_trading_state(action[1])
        self.invariants()

    def invariants(self) -> None:
        ex = self.ex
        for s in SYMBOLS:
            assert math.isfinite(ex.pos[s])
        if self.moved:
            return  # a price move may lift exposure over a cap: that only makes it REDUCING
        # at constant prices the worst case never grows past a cap (or past what was adopted)
        for s in SYMBOLS:
            w = ex.worst(s) * ex.marks[s]
            assert w <= max(CFG.max_position_notional, self.start_worst[s]) * TOL, (s, w)
        g = ex.gross()
        cap = min(CFG.max_gross_exposure, CFG.max_leverage * ex.equity)
        assert g <= max(cap, self.start_gross) * TOL, (g, ex.pos, ex.resting)


start_st = st.fixed_dictionaries(
    {BTC: st.sampled_from([0.0, 0.0, 5.0, -12.0, 25.0]), ETH: st.sampled_from([0.0, 80.0, -150.0])}
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    start=start_st,
    equity=st.sampled_from([800.0, 1500.0, 5000.0]),
    moves=st.booleans(),
    actions=st.lists(action_st, min_size=1, max_size=80),
)
def test_no_accepted_order_takes_exposure_past_the_caps(start, equity, moves, actions):
    run = Run(start, equity, moves)
    for a in actions:
        run.step(a)


def test_the_model_accepts_orders_at_all():
    """Guard against a vacuous property: a plain sequence gets orders through and fills them."""
    run = Run({BTC: 0.0, ETH: 0.0}, 5000.0, False)
    for _ in range(5):
        run.step(("order", (BTC, "buy", "market", 2.0, 0.0, False)))
        run.step(("time", 1.0))
    assert run.accepted == 5 and run.ex.pos[BTC] == 10.0
    run.step(("order", (BTC, "buy", "market", 9.9, 0.0, False)))  # 19.9 x 100 = 1990
    assert run.accepted == 6
    run.step(("time", 1.0))
    run.step(("order", (BTC, "buy", "market", 0.2, 0.0, False)))  # 2010 > 2000
    assert run.accepted == 6 and run.ex.pos[BTC] == 19.9
