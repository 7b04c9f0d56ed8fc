"""The simulator's market model: finite depth and slippage, last price, funding, liquidation,
and the accelerated market (``speed``). In-process and driven by ``SimState.advance`` (no
sleeping), except one test that checks ``--speed`` on a live server against the real clock."""

from __future__ import annotations

import time
from decimal import Decimal as D
from typing import Any

import aiohttp
import pytest

from tests.sim_harness import SimHarness, wait_until
from trader.sim import events, margin
from trader.sim.book import Account, OrderRequest
from trader.sim.clock import SimClock
from trader.sim.market import PriceFeed
from trader.sim.records import Order, Position, Trade
from trader.sim.state import SimConfig, SimState


class Recorder:
    """The user-data stream as the hub would render it (Binance's payloads)."""

    def __init__(self, acct: Account) -> None:
        self.acct = acct
        self.events: list[dict[str, Any]] = []

    def on_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        self.events.append(events.order_trade_update(self.acct, order, trade, exec_type, 0))

    def on_account(self, reason: str, positions: list[Position]) -> None:
        self.events.append(events.account_update(self.acct, reason, positions, 0))

    def kinds(self) -> list[str]:
        return [e["e"] for e in self.events]


def account(liquidity: str = "realistic") -> Account:
    clock = SimClock()
    feed = PriceFeed(clock, seed=1, liquidity=liquidity)
    return Account(feed, clock, wallet=D(1_000_000))


def state(**config: Any) -> tuple[SimState, Recorder]:
    s = SimState.build(SimConfig(**config))
    rec = Recorder(s.account)
    s.account.listeners.append(rec)
    return s, rec


def test_market_order_larger_than_the_top_level_fills_at_several_prices() -> None:
    acct = account()
    q = acct.feed.quotes["BTCUSDT"]
    ask, gap = q.ask, q.gap()
    order = acct.place(OrderRequest("BTCUSDT", "BUY", "MARKET", D("2")))
    fills = [(t.price, t.qty) for t in acct.trades]
    # realistic BTC: 1 at the touch, 1.5 one gap (0.5 bp, 3 USDT) out
    assert gap == D(3) and fills == [(ask, D(1)), (ask + gap, D(1))]
    assert order.status == "FILLED" and order.avg_price == ask + gap / 2
    assert q.last == ask + gap != q.mark  # the last price is the last trade's
    # the book shows what was eaten until it refills (half-life 1 s of market time)
    assert q.levels("BUY")[0] == (ask + gap, D("0.5"))
    q.refill(1.0, half_life=1.0)
    assert q.levels("BUY")[0] == (ask + gap, D("1.5"))  # half of the 2 eaten is back
    q.refill(10.0, half_life=1.0)
    assert q.levels("BUY")[0] == (ask, D(1))


def test_the_first_levels_are_the_whole_walk_cut_short() -> None:
    acct = account()
    q = acct.feed.quotes["BTCUSDT"]
    acct.place(OrderRequest("BTCUSDT", "BUY", "MARKET", D("1.5")))  # eats into the second level
    for side in ("BUY", "SELL"):
        whole = q.levels(side)
        assert len(whole) > 5
        for top in (1, 2, 5):
            assert q.levels(side, top=top) == whole[:top]
        assert q.levels(side, top=0) == []
        assert q.levels(side, D("2"), top=5) == q.levels(side, D("2"))[:5]


def test_ioc_beyond_the_ladder_fills_partially_and_fok_not_at_all() -> None:
    acct = account()
    q = acct.feed.quotes["ETHUSDT"]
    limit = q.ask + q.gap()  # two levels within the limit: 10 + 15 ETH
    fok = acct.place(OrderRequest("ETHUSDT", "BUY", "LIMIT", D(40), limit, "FOK"))
    assert (fok.status, fok.executed) == ("EXPIRED", 0)
    ioc = acct.place(OrderRequest("ETHUSDT", "BUY", "LIMIT", D(40), limit, "IOC"))
    assert (ioc.status, ioc.executed) == ("EXPIRED", D(25))
    assert len([t for t in acct.trades if t.order_id == ioc.order_id]) == 2
    assert acct.position("ETHUSDT", "BOTH").amt == D(25)


def test_deep_profile_fills_everything_at_the_touch() -> None:
    acct = account("deep")
    ask = acct.feed.quotes["BTCUSDT"].ask
    for _ in range(3):
        acct.place(OrderRequest("BTCUSDT", "BUY", "MARKET", D(2)))
    assert {t.price for t in acct.trades} == {ask}


def test_the_markets_own_trades_move_the_last_price_and_volume() -> None:
    s, _ = state(volatility=0.0)
    q = s.feed.quotes["BTCUSDT"]
    before = q.trades
    s.advance(0.1)
    assert q.trades == before + 1 and q.last in (q.bid, q.ask) and q.volume > 0


def test_funding_posts_an_income_row_moves_the_wallet_and_pushes_account_update() -> None:
    s, rec = state(volatility=0.0, speed=3600, funding_interval=3600)
    s.account.seed_position("BTCUSDT", D("0.5"), None)
    wallet, mark = s.account.wallet, s.account.mark("BTCUSDT")
    s.advance(1.0)  # one market hour: exactly one settlement
    [row] = [i for i in s.account.income if i.income_type == "FUNDING_FEE"]
    [hist] = [r for r in s.funding.history if r.symbol == "BTCUSDT"]
    # a flat market: the interest rate, 0.01 % per 8 h scaled to the 1 h interval
    assert hist.rate == D("0.0000125") == s.funding.interest
    assert row.symbol == "BTCUSDT" and row.amount == -D("0.5") * mark * hist.rate
    assert s.account.wallet == wallet + row.amount
    [update] = [e for e in rec.events if e["e"] == "ACCOUNT_UPDATE"
                and e["a"]["m"] == "FUNDING_FEE"]
    assert update["a"]["P"] == [] and update["a"]["B"][0]["wb"] == f"{s.account.wallet:.8f}"


def test_funding_rate_follows_the_premium_and_is_capped() -> None:
    s, _ = state(volatility=0.0, speed=3600, funding_interval=3600)
    s.account.seed_position("ETHUSDT", D("-2"), None)
    # The perp trades 1 % over a lagging index: the premium is about +1 %, the rate its cap.
    s.feed.set_price("ETHUSDT", D("3030"))
    s.funding.on_tick(10.0, s.market_ms, s.clock.now_ms(), 3600)
    assert s.feed.quotes["ETHUSDT"].funding_rate == margin.FUNDING_CAP == D("0.003")
    wallet = s.account.wallet
    s.funding.settle(s.clock.now_ms())
    assert s.account.wallet > wallet  # the short receives


def test_margin_call_then_liquidation_with_binances_events() -> None:
    s, rec = state(volatility=0.0, start_balance=D(10000))
    published: list[dict[str, Any]] = []
    forced: list[tuple[str, dict[str, Any]]] = []
    s.liquidator.publish_user = published.append
    s.liquidator.publish_force = lambda sym, p: forced.append((sym, p))
    s.feed.set_price("BTCUSDT", D(60000))
    s.account.seed_position("BTCUSDT", D(1), D(60000))
    s.account.place(OrderRequest("BTCUSDT", "SELL", "LIMIT", D("0.1"), D(61000), "GTC"))
    s.feed.set_price("BTCUSDT", D(50230))  # margin balance 230 vs maintenance ~201: a call
    s.tick(["BTCUSDT"])
    [call] = published
    assert call["e"] == "MARGIN_CALL" and call["p"][0]["s"] == "BTCUSDT"
    assert s.account.open_positions()
    s.feed.set_price("BTCUSDT", D(50150))  # balance 150 < maintenance: liquidated
    s.tick(["BTCUSDT"])
    assert not s.account.open_positions() and not s.account.open_orders()
    assert s.account.wallet >= 0
    updates = [e["o"] for e in rec.events if e["e"] == "ORDER_TRADE_UPDATE"]
    assert any(u["x"] == "EXPIRED" and u["c"] != "" and not u["c"].startswith("autoclose-")
               for u in updates)  # the resting order expired first
    liq = [u for u in updates if u["c"].startswith("autoclose-")]
    assert liq[0]["x"] == "NEW" and liq[0]["X"] == "NEW" and liq[0]["o"] == "LIQUIDATION"
    assert liq[-1]["X"] == "FILLED" and all(u["S"] == "SELL" and u["f"] == "IOC" for u in liq)
    kinds = {i.income_type for i in s.account.income}
    assert "INSURANCE_CLEAR" in kinds
    assert any(e["e"] == "ACCOUNT_UPDATE" and e["a"]["m"] == "INSURANCE_CLEAR"
               for e in rec.events)
    [(sym, force)] = forced
    assert sym == "BTCUSDT" and force["e"] == "forceOrder" and force["o"]["X"] == "FILLED"
    assert s.liquidator.liquidations == 1


def test_maintenance_margin_follows_the_brackets() -> None:
    assert margin.maint_margin(D(40000)) == D(160)  # 0.4 %
    assert margin.maint_margin(D(100000)) == D(450)  # 0.5 % - 50
    assert margin.maint_margin(D(-100000)) == D(450)


def test_speed_3600_posts_funding_within_seconds_while_server_time_stays_real() -> None:
    h = SimHarness(speed=3600, funding_interval=3600)
    try:
        async def body() -> None:
            await h.control.call("position", symbol="BTCUSDT", amount="0.01")
            ex = h.exchange(pro=False)
            await wait_until(lambda: _has_funding(h), timeout=5.0)
            rows = await ex.fetch_funding_history("BTC/USDT:USDT")
            assert rows and rows[0]["amount"] != 0
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{h.sim.url}/fapi/v1/time") as r:
                    server = (await r.json())["serverTime"]
                async with http.get(f"{h.sim.url}/fapi/v1/fundingRate",
                                    params={"symbol": "BTCUSDT"}) as r:
                    assert (await r.json())[0]["symbol"] == "BTCUSDT"
                async with http.get(f"{h.sim.url}/fapi/v1/premiumIndex",
                                    params={"symbol": "BTCUSDT"}) as r:
                    nxt = (await r.json())["nextFundingTime"]
            now = time.time() * 1000
            assert abs(server - now) < 1000  # the API clock is real time
            assert now - 100 <= nxt <= now + 1500  # the next market hour is a wall second away
            # The market runs ahead of the wall clock (how far at the funding depends on where in
            # the market hour the sim started: wait for a margin no 1x clock could ever show).

            async def ahead() -> bool:
                return h.sim.state.market_ms > time.time() * 1000 + 600_000

            await wait_until(ahead, timeout=5.0)

        h.run(body())
    finally:
        bugs = h.sim.state.bugs
        h.close()
    assert bugs == 0


async def _has_funding(h: SimHarness) -> bool:
    return any(i.income_type == "FUNDING_FEE" for i in h.sim.state.account.income)


@pytest.mark.parametrize("body", [{"profile": "deep"}, {"symbol": "BTCUSDT", "qty": "0.3"}])
def test_liquidity_control(h: SimHarness, body: dict[str, Any]) -> None:
    view = h.run(h.control.call("liquidity", **body))
    if "profile" in body:
        assert view == {"profile": "deep", "thin": {}}
        assert h.sim.state.feed.quotes["BTCUSDT"].ladder.top == D(1_000_000)
    else:
        assert view["thin"] == {"BTCUSDT": "0.3"}
        assert h.run(h.control.call("liquidity", symbol="BTCUSDT", qty=None))["thin"] == {}
