"""The simulated account's bookkeeping, without a server."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.sim.book import MAKER_FEE, TAKER_FEE, Account, OrderRequest
from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError
from trader.sim.market import PriceFeed


def account(spread: str = "0") -> Account:
    clock = SimClock()
    feed = PriceFeed(clock, seed=1, spread=0.0)
    acct = Account(feed, clock)
    for sym in feed.quotes:
        feed.quotes[sym].spread = D(spread)
    return acct


def market(acct: Account, side: str, qty: str, **kw: object) -> None:
    acct.place(OrderRequest("ETHUSDT", side, "MARKET", D(qty), **kw))  # type: ignore[arg-type]


def test_entry_price_averages_and_realised_pnl_on_close() -> None:
    acct = account()
    quote = acct.feed.quotes["ETHUSDT"]
    acct.feed.set_price("ETHUSDT", D(3000))
    a1 = quote.ask
    market(acct, "BUY", "1")
    acct.feed.set_price("ETHUSDT", D(3100))
    a2 = quote.ask
    market(acct, "BUY", "1")
    pos = acct.position("ETHUSDT", "BOTH")
    assert (pos.amt, pos.entry) == (D(2), (a1 + a2) / 2)
    acct.feed.set_price("ETHUSDT", D(3200))
    b3 = quote.bid
    market(acct, "SELL", "3")  # closes the 2 long and opens a 1 short at the bid
    assert (pos.amt, pos.entry) == (D(-1), b3)
    realised = 2 * b3 - (a1 + a2)
    fees = (a1 + a2 + 3 * b3) * TAKER_FEE
    assert acct.wallet == D(10000) + realised - fees


def test_reduce_only_is_clipped_to_the_position_and_never_flips() -> None:
    acct = account()
    market(acct, "BUY", "0.5")
    market(acct, "SELL", "2", reduce_only=True)
    assert acct.position("ETHUSDT", "BOTH").amt == 0
    [_, close] = acct.orders.values()
    assert (close.executed, close.status) == (D("0.5"), "EXPIRED")
    with pytest.raises(BinanceError) as err:
        market(acct, "SELL", "1", reduce_only=True)
    assert err.value.code == -2022


def test_resting_limit_is_maker_and_post_only_crossing_is_rejected() -> None:
    acct = account(spread="0.001")
    acct.feed.set_price("ETHUSDT", D(3000))
    order = acct.place(OrderRequest("ETHUSDT", "SELL", "LIMIT", D(1), D(3010), "GTC"))
    with pytest.raises(BinanceError) as err:
        acct.place(OrderRequest("ETHUSDT", "BUY", "LIMIT", D(1), D(3010), "GTX"))
    assert err.value.code == -5022
    acct.feed.set_price("ETHUSDT", D(3020))
    acct.on_prices(["ETHUSDT"])
    assert order.status == "FILLED" and acct.trades[-1].maker
    assert acct.wallet == D(10000) - D(3010) * MAKER_FEE
    ioc = acct.place(OrderRequest("ETHUSDT", "BUY", "LIMIT", D(1), D(2900), "IOC"))
    assert ioc.status == "EXPIRED"


@pytest.mark.parametrize(("qty", "price", "code"), [
    ("0", None, -4003), ("0.0001", None, -1111), ("0.005", "3000.001", -1111),
    ("0.005", None, -4164), ("51", None, -4005), ("1", "3200", -4016), ("1", "2800", -4024),
])
def test_filters(qty: str, price: str | None, code: int) -> None:
    acct = account()
    acct.feed.set_price("ETHUSDT", D(3000))
    kind = "MARKET" if price is None else "LIMIT"
    side = "SELL" if price == "2800" else "BUY"
    with pytest.raises(BinanceError) as err:
        acct.place(OrderRequest("ETHUSDT", side, kind, D(qty), D(price) if price else None,
                                "GTC" if price else None))
    assert err.value.code == code


fills = st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]),
                           st.integers(1, 20), st.integers(2900, 3100)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(fills)
def test_wallet_equals_cash_flow_minus_fees_once_flat(trades: list[tuple[str, int, int]]) -> None:
    """Entry-price and realised-PnL bookkeeping conserves money: after closing everything,
    the wallet moved by the traded cash flow minus fees."""
    acct = account(spread="0.001")
    for side, lots, price in trades:
        acct.feed.set_price("ETHUSDT", D(price))
        acct.place(OrderRequest("ETHUSDT", side, "MARKET", D(lots) / 10))
    amt = acct.position("ETHUSDT", "BOTH").amt
    if amt:
        acct.place(OrderRequest("ETHUSDT", "SELL" if amt > 0 else "BUY", "MARKET", abs(amt)))
    cash = sum((t.qty * t.price * (-1 if t.side == "BUY" else 1) for t in acct.trades), D(0))
    fees = sum((t.commission for t in acct.trades), D(0))
    assert acct.position("ETHUSDT", "BOTH").amt == 0
    # equal up to the 28-digit rounding of average entry prices
    assert abs(acct.wallet - (D(10000) + cash - fees)) < D("1e-12")
