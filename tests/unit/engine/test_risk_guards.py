"""Per-turn guards and the loop detector of trader.engine.risk, with numbers."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from trader.engine.risk import AccountView, Mark, OrderIntent, Position, RiskEngine
from trader.engine.risk.loops import LoopDetector
from trader.kernel import config
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

T = 20_000 * 86400.0
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
CFG = RiskConfig(
    max_position_notional=2000.0,
    max_gross_exposure=3000.0,
    max_leverage=2.0,
    loop_window=60.0,
    loop_max_round_trips=3,
    loop_max_cost=5.0,
    max_drawdown=0.10,
    max_daily_loss=500.0,
    margin_warn=0.5,
    margin_reduce=0.8,
    stale_pause=5.0,
    stale_halt=30.0,
)


def view(pos=None, equity=10_000.0, marks=None, ts=None, confirmed=None, margin=None, now=T):
    marks = marks or {BTC: 100.0, ETH: 10.0}
    ts = now if ts is None else ts
    return AccountView(
        equity=equity,
        positions={s: Position(c, 100.0) for s, c in (pos or {}).items()},
        marks={s: Mark(p, ts) for s, p in marks.items()},
        margin_ratio=margin,
        confirmed=now if confirmed is None else confirmed,
    )


def turn(r, t, **kw):
    return r.evaluate(view(now=t, **kw), t)


def engine(cfg=CFG) -> RiskEngine:
    r = RiskEngine(cfg, (BTC, ETH))
    r.set_trading_state(P.RUNNING)
    return r


_ids = itertools.count()


def buy(amount=1.0, symbol=BTC, ro=False):
    return OrderIntent(f"g{next(_ids)}", symbol, "buy", "market", amount, None, ro)


def sell(amount=1.0, symbol=BTC, ro=True):
    return OrderIntent(f"s{next(_ids)}", symbol, "sell", "market", amount, None, ro)


# --- exposure above a cap: REDUCING until back under, never a kill ---------------------------


def test_adopted_position_over_cap_reduces_that_symbol_until_back_under():
    r = engine()
    v = view({BTC: 25})  # 2500 > 2000 (adopted at start-up)
    ev = r.evaluate(v, T)
    assert [(e.guard, e.level, e.action, e.symbol) for e in ev] == [
        ("exposure", "warning", None, BTC)
    ]
    assert "2500.00, limit 2000" in ev[0].text
    assert r.symbol_state(BTC) == "reducing" and r.symbol_state(ETH) == "active"
    assert r.check(buy(0.1, ETH), v, T) is None  # other symbols trade
    assert r.check(sell(1, ro=False), v, T).check == "reducing"
    assert r.check(sell(1), v, T) is None
    assert r.evaluate(v, T + 1) == []  # one event per edge
    ev = r.evaluate(view({BTC: 19}, now=T + 2), T + 2)
    assert [(e.level, e.symbol) for e in ev] == [("info", BTC)]
    assert r.symbol_state(BTC) == "active"


def test_price_move_over_gross_cap_reduces_the_account():
    r = engine()
    assert r.evaluate(view({BTC: 15, ETH: -140}), T) == []  # 1500 + 1400 = 2900
    ev = r.evaluate(view({BTC: 15, ETH: -140}, marks={BTC: 110.0, ETH: 10.0}), T + 1)  # 3050
    assert [e.title for e in ev] == ["account REDUCING: max_gross_exposure"]
    assert all(e.action is None for e in ev)
    assert r.account_state() == P.REDUCING
    assert r.status(view(), T + 1)["state"] == P.REDUCING
    assert r.check(buy(0.1, ETH, ro=True), view({BTC: 15, ETH: -140}, now=T + 1), T + 1) is None
    r.evaluate(view({BTC: 15, ETH: -140}), T + 2)
    assert r.account_state() == P.RUNNING


def test_leverage_over_cap_reduces():
    r = engine()
    ev = r.evaluate(view({BTC: 15}, equity=700.0), T)  # 1500 / 700 = 2.14x > 2
    assert [e.title for e in ev] == ["account REDUCING: max_leverage"]
    assert "leverage 2.14" in ev[0].text


# --- loss circuit breaker -----------------------------------------------------------------------


def test_drawdown_from_the_days_high_stops():
    r = engine()
    assert turn(r, T + 10, equity=4000.0) == []
    assert turn(r, T + 20, equity=4400.0) == []  # the day's high
    assert turn(r, T + 30, equity=3961.0) == []  # 9.98%
    ev = turn(r, T + 40, equity=3959.0)  # 10.02% below 4400
    assert [(e.guard, e.level, e.action) for e in ev] == [("drawdown", "critical", "stop")]
    assert "below the day's high 4400.00" in ev[0].text
    assert turn(r, T + 50, equity=3000.0) == []  # once


def test_daily_loss_stops_and_resets_next_day():
    cfg = dataclasses.replace(CFG, max_drawdown=0.5)
    r = engine(cfg)
    turn(r, T + 1, equity=10_000.0)
    assert turn(r, T + 2, equity=9_501.0) == []
    ev = turn(r, T + 3, equity=9_499.0)
    assert [(e.guard, e.action) for e in ev] == [("daily_loss", "stop")]
    assert "day's loss 501.00" in ev[0].text
    # next UTC day: opens at 9499, so a further 400 is fine
    assert turn(r, T + 86400, equity=9_499.0) == []
    assert turn(r, T + 86401, equity=9_099.0) == []


# --- margin guard -------------------------------------------------------------------------------


def test_margin_guard_warns_reduces_and_recovers():
    r = engine()
    assert r.evaluate(view(margin=0.49), T) == []
    ev = r.evaluate(view(margin=0.55), T + 1)
    assert [(e.guard, e.level, e.action) for e in ev] == [("margin", "warning", None)]
    assert r.account_state() == P.REDUCING
    ev = r.evaluate(view(margin=0.85), T + 2)
    assert [(e.level, e.action) for e in ev] == [("critical", "reduce")]
    assert r.evaluate(view(margin=0.9), T + 3) == []  # once per excursion
    ev = r.evaluate(view(margin=0.3), T + 4)
    assert [e.level for e in ev] == ["info"] and r.account_state() == P.RUNNING
    ev = r.evaluate(view(margin=0.81), T + 5)
    assert [e.action for e in ev] == [None, "reduce"]


# --- stale-state guard --------------------------------------------------------------------------


def test_stale_market_data_pauses_then_halts():
    r = engine()
    r.evaluate(view(), T)
    v = view(ts=T, confirmed=T + 9, now=T + 9)
    rej = r.check(buy(0.1), v, T + 9)
    assert rej.check == "stale" and "BTC/USDT:USDT 9.0 s" in rej.message
    assert r.evaluate(v, T + 9) == []
    ev = r.evaluate(view(ts=T, confirmed=T + 31, now=T + 31), T + 31)
    assert [(e.guard, e.level, e.action) for e in ev] == [("stale", "critical", "halt")]
    assert "30 s" in ev[0].text
    assert r.evaluate(view(ts=T, now=T + 32), T + 32) == []  # once
    assert r.evaluate(view(now=T + 33), T + 33) == []  # fresh again: re-armed
    assert r.check(buy(0.1), view(now=T + 33), T + 33) is None


def test_account_unconfirmed_uses_max_unconfirmed_when_given():
    r = RiskEngine(CFG, (BTC,), max_unconfirmed=120.0)
    r.set_trading_state(P.RUNNING)
    r.evaluate(view(now=T), T)
    assert r.evaluate(view(confirmed=T, now=T + 60), T + 60) == []
    ev = r.evaluate(view(confirmed=T, now=T + 121), T + 121)
    assert [e.action for e in ev] == ["halt"] and "account unconfirmed 121.0 s" in ev[0].text


# --- loop detector ------------------------------------------------------------------------------


def test_loop_detector_counts_round_trips_of_similar_size():
    d = LoopDetector(window=60.0, max_round_trips=100, max_cost=1e9)
    t = T
    for _ in range(3):
        d.on_fill(BTC, "buy", 1.0, 100.0, 0.0, t)
        d.on_fill(BTC, "sell", 0.3, 99.9, 0.0, t + 1)  # 0.3 of 1: not yet a round trip
        d.on_fill(BTC, "sell", 0.3, 99.9, 0.0, t + 2)  # 0.6: a round trip
        t += 3
    # buy, sell, buy, sell, buy, sell: 5 side changes, each undoing >= half the previous leg
    assert d.counts(BTC, t)[0] == 5
    # costs: each matched contract charged buy - sell when positive
    _, cost = d.counts(BTC, t)
    # 5 side changes x 0.6 matched x 0.1 (buys at 100, sells at 99.9)
    assert cost == pytest.approx(5 * 0.6 * 0.1, abs=1e-9)
    assert d.counts(BTC, t + 61)[0] == 0  # slid out of the window
    assert d.counts(ETH, t)[0] == 0


def test_loop_detector_profit_is_not_netted_and_fees_count():
    d = LoopDetector(window=60.0, max_round_trips=100, max_cost=2.0)
    assert d.on_fill(BTC, "buy", 1.0, 100.0, 0.5, T) is None
    assert d.on_fill(BTC, "sell", 1.0, 110.0, 0.5, T + 1) is None  # a profit: cost stays fees
    # ... and a round trip that made money net of fees (a market maker earning the spread) is
    # not a loop: not counted, while its fees still count toward the cost
    assert d.counts(BTC, T + 1) == (0, 1.0)
    breach = d.on_fill(BTC, "buy", 1.0, 111.1, 0.1, T + 2)  # loss 1.1 + fee 0.1 -> 2.2 > 2
    assert breach is not None and "cost 2.20 (limit 2)" in breach


def test_loop_breach_reduces_symbol_then_second_breach_halts():
    r = engine()
    t = T
    events = []
    side = "buy"
    while not events:
        events = r.on_fill(BTC, side, 0.01, 100.0, 0.0, t)
        side = "sell" if side == "buy" else "buy"
        t += 1
    # 4 round trips > 3 on the 5th fill
    assert t == T + 5
    assert [(e.guard, e.level, e.action, e.symbol) for e in events] == [
        ("loop", "warning", None, BTC)
    ]
    assert r.symbol_state(BTC) == "reducing"
    v = view({BTC: 0.01}, now=t)
    assert r.check(buy(0.01), v, t).check == "reducing"
    assert r.check(sell(0.01), v, t) is None  # reduce-only still allowed
    assert r.check(buy(0.01, ETH), v, t) is None
    # the reduction itself is not a second breach
    assert r.on_fill(BTC, "sell", 0.01, 100.0, 0.0, t) == []
    r.set_trading_state(P.RUNNING)  # already RUNNING: not a resume, the hold stays
    assert r.symbol_state(BTC) == "reducing"
    # a person pauses and resumes; the loop carries on and breaches again within the window
    r.set_trading_state(P.PAUSED)
    r.set_trading_state(P.RUNNING)
    assert r.symbol_state(BTC) == "active"
    events = []
    while not events:
        t += 1
        events = r.on_fill(BTC, side, 0.01, 100.0, 0.0, t)
        side = "sell" if side == "buy" else "buy"
    assert [(e.level, e.action) for e in events] == [("critical", "halt")]
    assert t - T < 60 + 5


def test_loop_cooldown_releases_the_symbol():
    r = engine(dataclasses.replace(CFG, loop_cooldown=30.0))
    side, t, events = "buy", T, []
    while not events:
        events = r.on_fill(ETH, side, 1.0, 10.0, 0.0, t)
        side, t = ("sell" if side == "buy" else "buy"), t + 1
    assert r.symbol_state(ETH) == "reducing"
    assert r.evaluate(view(now=t + 10), t + 10) == []
    ev = r.evaluate(view(now=t + 30), t + 30)
    assert [(e.guard, e.level, e.symbol) for e in ev] == [("loop", "info", ETH)]
    assert r.symbol_state(ETH) == "active"


def test_unban_clears_a_loop_hold():
    r = engine()
    side, t, events = "buy", T, []
    while not events:
        events = r.on_fill(BTC, side, 1.0, 100.0, 0.0, t)
        side, t = ("sell" if side == "buy" else "buy"), t + 1
    r.ban(BTC)
    assert r.symbol_state(BTC) == "banned"
    r.unban(BTC)
    assert r.symbol_state(BTC) == "active"


# --- status, config -----------------------------------------------------------------------------


def test_status_shows_every_limit_with_its_use():
    r = engine()
    v = view({BTC: 12, ETH: -50}, equity=2000.0, margin=0.1)
    r.evaluate(v, T)
    o = buy(1.0)
    assert r.check(o, v, T) is None
    r.record_sent(o, T)
    r.on_fill(BTC, "buy", 1.0, 100.0, 0.04, T)
    st = r.status(v, T + 0.5)
    lim = st["limits"]
    assert lim["max_gross_exposure"] == {"limit": 3000.0, "used": 1700.0, "worst_case": 1800.0}
    assert lim["max_position_notional"] == {"limit": 2000.0, "used": 1200.0}
    assert lim["max_leverage"] == {"limit": 2.0, "used": 0.85}
    assert lim["max_orders_per_second"] == {"limit": 5, "used": 1}
    assert lim["max_orders_per_minute"] == {"limit": 120, "used": 1}
    assert lim["margin_warn"]["used"] == 0.1
    assert lim["loop_max_cost"]["used"] == 0.04
    assert st["symbols"][BTC]["state"] == "active"
    assert st["symbols"][ETH]["notional"] == 500.0
    assert st["state"] == P.RUNNING and st["banned"] == []
    for key in [
        "max_order_notional",
        "price_band",
        "max_drawdown",
        "max_daily_loss",
        "margin_reduce",
        "stale_pause",
        "stale_halt",
        "loop_max_round_trips",
    ]:
        assert "limit" in lim[key]


def test_config_rejects_stale_pause_not_below_stale_halt():
    with pytest.raises(config.ConfigError, match="stale_pause must be below"):
        config.from_mapping({"risk": {"stale_pause": 60.0, "stale_halt": 30.0}})
    with pytest.raises(config.ConfigError, match="loop_cooldown"):
        config.from_mapping({"risk": {"loop_cooldown": -1.0}})
    assert config.from_mapping({"risk": {"loop_cooldown": 300}}).risk.loop_cooldown == 300.0


def test_market_making_round_trips_are_not_a_loop_but_paying_the_spread_is():
    mm = LoopDetector(window=600.0, max_round_trips=5, max_cost=1e9)
    t = T
    for _ in range(50):  # buy at the bid, sell at the ask: earns 0.2 per round trip, fees 0.04
        assert mm.on_fill(BTC, "buy", 1.0, 99.9, 0.02, t) is None
        assert mm.on_fill(BTC, "sell", 1.0, 100.1, 0.02, t + 1) is None
        t += 2
    assert mm.counts(BTC, t)[0] == 0
    churn = LoopDetector(window=600.0, max_round_trips=5, max_cost=1e9)
    breach = None
    for i in range(12):  # buy at the ask, sell at the bid: pays the spread every time
        breach = breach or churn.on_fill(BTC, "buy" if i % 2 == 0 else "sell", 1.0,
                                         100.1 if i % 2 == 0 else 99.9, 0.02, T + i)
    assert breach is not None and "round trips" in breach


def test_one_big_fee_without_round_trips_is_not_a_loop():
    d = LoopDetector(window=600.0, max_round_trips=20, max_cost=50.0)
    assert d.on_fill(BTC, "sell", 27.0, 60000.0, 323.0, T) is None  # closing an adopted long
    assert d.counts(BTC, T)[1] == 323.0  # the fee still counts toward a later loop's cost
