"""Pre-trade checks of trader.engine.risk, one by one, with numbers."""

from __future__ import annotations

import pytest

from trader.engine.risk import (
    AccountView,
    InvalidOrder,
    Mark,
    OpenOrder,
    OrderIntent,
    Position,
    RiskEngine,
)
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

T = 1_000_000.0
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
CFG = RiskConfig(
    max_order_notional=1000.0,
    max_position_notional=2000.0,
    max_gross_exposure=3000.0,
    max_leverage=2.0,
    max_orders_per_second=3,
    max_orders_per_minute=10,
    price_band=0.05,
    stale_pause=5.0,
    stale_halt=60.0,
)


def view(pos=None, orders=(), equity=10_000.0, marks=None, ts=T, confirmed=T, margin=None):
    marks = marks or {BTC: 100.0, ETH: 10.0}
    return AccountView(
        equity=equity,
        positions={s: Position(c, 100.0) for s, c in (pos or {}).items()},
        marks={s: Mark(p, ts) for s, p in marks.items()},
        open_orders=tuple(orders),
        margin_ratio=margin,
        confirmed=confirmed,
    )


_n = 0


def order(side="buy", amount=1.0, symbol=BTC, price=None, ro=False):
    global _n
    _n += 1
    typ = "market" if price is None else "limit"
    return OrderIntent(f"c{_n}", symbol, side, typ, amount, price, ro)


def engine(cfg=CFG) -> RiskEngine:
    r = RiskEngine(cfg, (BTC, ETH))
    r.set_trading_state(P.RUNNING)
    return r


def check(r, o, v, now=T):
    rej = r.check(o, v, now)
    return rej.check if rej else None


def test_order_intent_validation():
    for bad in [
        dict(side="hold"),
        dict(type="stop"),
        dict(amount=0),
        dict(amount=-1),
        dict(amount=float("nan")),
        dict(type="limit", price=None),
        dict(type="limit", price=float("inf")),
        dict(type="market", price=100.0),
        dict(symbol=""),
    ]:
        kw = dict(client_id="c", symbol=BTC, side="buy", type="market", amount=1.0, price=None)
        kw.update(bad)
        with pytest.raises(InvalidOrder):
            OrderIntent(**kw)


def test_starting_state_sends_nothing_until_running():
    r = RiskEngine(CFG, (BTC, ETH))
    assert check(r, order(), view()) == "state"
    r.set_trading_state(P.RUNNING)
    assert check(r, order(), view()) is None


@pytest.mark.parametrize("state", [P.PAUSED, P.HALTED, P.STOPPED])
def test_silent_states_send_nothing_not_even_reduce_only(state):
    r = engine()
    r.set_trading_state(state)
    rej = r.check(order("sell", 1, ro=True), view({BTC: 2}), T)
    assert rej is not None and rej.check == "state" and state in rej.message


def test_unknown_state_is_an_error():
    with pytest.raises(ValueError, match="unknown trading state"):
        engine().set_trading_state("SLEEPING")


@pytest.mark.parametrize("state", [P.REDUCING, P.STOPPING])
def test_reducing_and_stopping_let_only_reduce_only_through(state):
    r = engine()
    r.set_trading_state(state)
    v = view({BTC: 2})
    rej = r.check(order("sell", 1), v, T)
    assert rej is not None and rej.check == "reducing" and state in rej.message
    assert check(r, order("buy", 1), v) == "reducing"
    assert check(r, order("sell", 1, ro=True), v) is None


def test_unknown_symbol():
    rej = engine().check(order(symbol="DOGE/USDT:USDT"), view(), T)
    assert rej is not None and rej.check == "symbol"


def test_banned_symbol_allows_reduce_only_only():
    r = engine()
    r.ban(BTC)
    v = view({BTC: 2})
    assert check(r, order("buy", 1), v) == "banned"
    assert check(r, order("sell", 1, ro=True), v) is None
    assert check(r, order("buy", 1, symbol=ETH), v) is None
    assert r.symbol_state(BTC) == "banned"
    r.unban(BTC)
    assert check(r, order("buy", 1), v) is None


def test_max_order_notional():
    r = engine()
    assert check(r, order("buy", 10), view()) is None  # 10 x 100 = 1000, at the cap
    rej = r.check(order("buy", 10.01), view(), T)
    assert rej is not None and rej.check == "order_notional"
    assert "1001.00 > max_order_notional 1000" in rej.message
    # a limit order is valued at its price
    assert check(r, order("buy", 9.6, price=104.9), view()) == "order_notional"


def test_order_notional_does_not_block_a_reduction():
    # long 15 (1500, adopted): closing it in one order is 1500 > 1000, and it is allowed
    assert check(engine(), order("sell", 15, ro=True), view({BTC: 15})) is None


def test_max_position_counts_the_position_and_resting_orders():
    r = engine()
    # long 12 (1200) + resting buy 5 (500) + buy 4 (400) = 2100 > 2000
    v = view({BTC: 12}, [OpenOrder("o1", BTC, "buy", 5.0, 99.0)])
    rej = r.check(order("buy", 4), v, T)
    assert rej is not None and rej.check == "position_notional"
    assert "21 contracts = 2100.00 > max_position_notional 2000" in rej.message
    assert check(r, order("buy", 3), v) is None  # exactly 2000
    # long 12 with a resting sell 25 can reach -13; a sell 8 more reaches -21 (2100 > 2000)
    v2 = view({BTC: 12}, [OpenOrder("o2", BTC, "sell", 25.0, 101.0)])
    assert check(r, order("sell", 8), v2) == "position_notional"
    assert check(r, order("sell", 7), v2) is None  # -20: exactly 2000


def test_orders_sent_on_the_same_view_count_as_resting():
    r = engine()
    v = view()
    for _ in range(2):
        o = order("buy", 9)
        assert r.check(o, v, T) is None
        r.record_sent(o, T)
    # 18 contracts pending on the same view object: 2 more = 2000 ok, 3 more = 2100 not
    assert check(r, order("buy", 3), v) == "position_notional"
    assert check(r, order("buy", 2), v) is None


def test_position_over_cap_allows_reduction_even_without_reduce_only():
    r = engine()
    v = view({BTC: 30})  # 3000, over the 2000 cap (adopted)
    assert check(r, order("buy", 1), v) == "position_notional"
    assert check(r, order("sell", 5), v) is None  # plain sell that only reduces
    assert check(r, order("sell", 5, ro=True), v) is None
    # a flip that would end short 25 (2500) is refused on its short side
    assert check(r, order("sell", 55), v) == "order_notional"


def test_reduce_only_that_would_flip_is_held_to_the_caps():
    r = engine()
    # long 1, resting plain sell 20.5 (-19.5 reachable, 1950): a reduce-only sell could fill
    # first (to flat) and leave the plain sell to take the position to -20.5 (2050 > 2000)
    v = view({BTC: 1}, [OpenOrder("o1", BTC, "sell", 20.5, 100.0)])
    rej = r.check(order("sell", 5, ro=True), v, T)
    assert rej is not None and rej.check == "position_notional" and "20.5 contracts" in rej.message


def test_stacked_reduce_only_exits_are_reductions():
    # an orderly stop re-prices its exit: the old reduce-only exit is still resting (its cancel
    # not yet confirmed) when the new one is checked. Both together cannot cross flat.
    r = engine()
    r.set_trading_state(P.STOPPING)
    v = view({BTC: 30}, [OpenOrder("x1", BTC, "sell", 30.0, 100.5, reduce_only=True)])
    assert check(r, order("sell", 30, price=100.4, ro=True), v) is None  # 3000 > order cap
    # a plain order behind them is held to the caps from flat: sell 21 reaches -21 (2100)
    r.set_trading_state(P.RUNNING)
    assert check(r, order("sell", 10), v) is None
    assert check(r, order("sell", 21, price=100.0), v) == "order_notional"


def test_max_gross_exposure():
    r = engine()
    # BTC long 12 (1200) + ETH short 150 (1500) = 2700; buying 4 BTC -> 3100 > 3000
    v = view({BTC: 12, ETH: -150})
    rej = r.check(order("buy", 4), v, T)
    assert rej is not None and rej.check == "gross_exposure"
    assert "3100.00 (now 2700.00) > max_gross_exposure 3000" in rej.message
    assert check(r, order("buy", 3), v) is None
    assert check(r, order("buy", 10, symbol=ETH), v) is None  # ETH short reduction


def test_gross_over_cap_still_allows_orders_that_do_not_raise_the_worst_case():
    r = engine()
    v = view({BTC: 19, ETH: -150})  # 1900 + 1500 = 3400 > 3000
    assert check(r, order("buy", 1, symbol=ETH), v) is None
    assert check(r, order("sell", 10), v) is None
    assert check(r, order("sell", 1, symbol=ETH), v) == "gross_exposure"


def test_max_leverage():
    r = engine()
    v = view({BTC: 10, ETH: -50}, equity=1000.0)  # 1500 / 1000 = 1.5x
    rej = r.check(order("buy", 6), v, T)  # 2100 / 1000 = 2.1x > 2
    assert rej is not None and rej.check == "leverage" and "2.10" in rej.message
    assert check(r, order("buy", 5), v) is None  # 2.0x
    assert check(r, order("buy", 1), view(equity=0.0)) == "leverage"
    assert check(r, order("sell", 1), view({BTC: 3}, equity=-5.0)) is None  # reduction


def test_throttle_per_second_and_per_minute():
    r = engine()
    v = view({BTC: 0})
    sent = []
    t = T
    while len(sent) < 10:
        o = order("buy", 0.01)
        if r.check(o, v, t) is None:
            r.record_sent(o, t)
            sent.append(t)
        t += 0.1
    # never more than 3 in any 1 s window
    assert all(sum(1 for x in sent if s - 1 < x <= s) <= 3 for s in sent)
    rej = r.check(order("buy", 0.01), v, t)
    assert (
        rej is not None and rej.check == "throttle" and "10 orders in the last 60 s" in rej.message
    )
    assert sent[-1] - sent[0] >= 3.0
    # a minute after the first, one more is allowed
    t2 = sent[0] + 60.0
    assert r.check(order("buy", 0.01), view(ts=t2, confirmed=t2), t2) is None


def test_throttle_message_per_second():
    r = engine()
    v = view()
    for _ in range(3):
        o = order("buy", 0.01)
        assert r.check(o, v, T) is None
        r.record_sent(o, T)
    rej = r.check(order("sell", 0.01, ro=True), view({BTC: 1}), T + 0.5)
    assert rej is not None and rej.check == "throttle"
    assert "3 orders in the last 1 s, limit 3/s" in rej.message
    assert r.check(order("buy", 0.01), v, T + 1.0) is None


def test_price_band():
    r = engine()
    assert check(r, order("buy", 1, price=105.0), view()) is None
    rej = r.check(order("buy", 1, price=105.5), view(), T)
    assert rej is not None and rej.check == "price_band" and "5.50% from mark 100" in rej.message
    assert check(r, order("sell", 1, price=94.0), view()) == "price_band"
    assert check(r, order("buy", 1, price=100.0), view(marks={ETH: 10.0})) == "price_band"


def test_market_order_needs_a_fresh_mark():
    r = engine()
    v = view(ts=T - 6, confirmed=T)  # marks 6 s old > stale_pause 5
    rej = r.check(order("sell", 1, ro=True), view({BTC: 2}, ts=T - 6), T)
    assert rej is not None and rej.check == "price_band" and "6.0 s old" in rej.message
    assert check(r, order("sell", 1, price=100.0, ro=True), view({BTC: 2}, ts=T - 6)) is None
    assert check(r, order("buy", 1, price=100.0), v) == "stale"


def test_stale_account_blocks_new_risk_not_reductions():
    r = engine()
    v = view({BTC: 2}, confirmed=T - 5.5)
    rej = r.check(order("buy", 1), v, T)
    assert rej is not None and rej.check == "stale" and "account 5.5 s" in rej.message
    assert check(r, order("sell", 1, ro=True), v) is None


def test_never_seen_counts_from_first_use():
    r = engine()
    v = view(ts=0.0, confirmed=0.0)  # nothing received yet
    assert check(r, order("buy", 1, price=100.0), v, now=T) is None
    assert check(r, order("buy", 1, price=100.0), v, now=T + 5.5) == "stale"


def test_status_between_checks_does_not_lose_pending_orders():
    r = engine()
    v = view()
    o = order("buy", 9)
    assert r.check(o, v, T) is None
    r.record_sent(o, T)
    r.status(view(), T)  # another view object, for ctl info
    o = order("buy", 9)
    assert r.check(o, v, T) is None
    r.record_sent(o, T)
    assert check(r, order("buy", 3), v) == "position_notional"  # 18 + 3 = 21 > 20


def test_far_extreme_does_not_license_new_risk_while_over_cap():
    # Found by the property test. Adopted: BTC long 5 (500) + ETH short 150 (1500) = 2000 on
    # equity 800 (leverage cap 1600). Sell 3 (a reduction) goes out; then, on the same view,
    # sell 5 would leave BTC anywhere in [-3, 5]. The worst case "5 long" does not grow, but it
    # may vanish (the sell 3 fills) and leave the new "3 short": 300 + 1500 = 1800 > 1600.
    r = engine()
    v = view({BTC: 5, ETH: -150}, equity=800.0)
    o = order("sell", 3)
    assert r.check(o, v, T) is None
    r.record_sent(o, T)
    rej = r.check(order("sell", 5), v, T)
    assert rej is not None and rej.check == "leverage"
    assert "1800.00" in rej.message
    assert check(r, order("sell", 2), v) is None  # still only a reduction: down to 0
