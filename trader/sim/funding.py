"""Funding: every ``interval`` of market time, positions pay or receive ``rate × notional``.

Binance's formula: each tick samples the premium index
``P = [max(0, impact bid − index) − max(0, index − impact ask)] / index`` (impact prices: the
average fill of the impact margin notional, 25 000 USDT, into the sim's book); at settlement the
rate is ``avg(P) + clamp(I − avg(P), −0.05 %, 0.05 %)`` with the interest ``I`` = 0.01 % per 8 h
(scaled to the interval), capped at ± 0.75 × the first bracket's maintenance margin ratio
(± 0.3 %). A long pays ``amt × mark × rate`` when the rate is positive, a short receives it:
each payment is a FUNDING_FEE income row, moves the wallet and is pushed as ``ACCOUNT_UPDATE``
with reason FUNDING_FEE (cross margin: the balance only, no positions, as Binance does).

Settlement times are multiples of the interval in *market* time (00:00, 08:00, 16:00 UTC at
speed 1, like Binance); ``nextFundingTime`` is given in API time (when it will happen on the
real clock), and income rows carry the API time of the settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from trader.sim import margin
from trader.sim.book import Account
from trader.sim.market import PriceFeed, Quote
from trader.sim.records import Income

D = Decimal
_EIGHT_HOURS_MS = 28_800_000
_CLAMP = D("0.0005")
_RATE = D("0.00000001")


@dataclass
class FundingRow:
    """A row of ``GET /fapi/v1/fundingRate``."""

    symbol: str
    rate: Decimal
    time: int  # API time of the settlement
    mark: Decimal


class Funding:
    def __init__(self, account: Account, feed: PriceFeed, interval_s: float,
                 market_ms: int) -> None:
        if interval_s <= 0:
            raise ValueError("funding interval must be > 0")
        self.account = account
        self.feed = feed
        self.interval_ms = round(interval_s * 1000)
        self.interest = D("0.0001") * self.interval_ms / _EIGHT_HOURS_MS
        self.next_ms = (market_ms // self.interval_ms + 1) * self.interval_ms
        self._sum: dict[str, Decimal] = {s: D(0) for s in feed.quotes}
        self._weight: dict[str, Decimal] = {s: D(0) for s in feed.quotes}
        self.history: list[FundingRow] = []

    def premium(self, q: Quote) -> Decimal:
        index = q.index
        bid = q.impact("SELL", margin.IMPACT_NOTIONAL)
        ask = q.impact("BUY", margin.IMPACT_NOTIONAL)
        return (max(D(0), bid - index) - max(D(0), index - ask)) / index

    def rate(self, symbol: str) -> Decimal:
        """The rate the next settlement would use, from the premiums sampled so far."""
        weight = self._weight[symbol]
        avg = self._sum[symbol] / weight if weight else D(0)
        rate = avg + min(max(self.interest - avg, -_CLAMP), _CLAMP)
        rate = min(max(rate, -margin.FUNDING_CAP), margin.FUNDING_CAP)
        return rate.quantize(_RATE, ROUND_HALF_EVEN)

    def on_tick(self, dt: float, market_ms: int, api_ms: int, speed: float) -> int:
        """Sample the premium over ``dt`` market seconds, settle every funding time reached
        by ``market_ms``; publish the estimate and the next time. Returns settlements made."""
        weight = D(repr(dt))
        for sym, q in self.feed.quotes.items():
            self._sum[sym] += self.premium(q) * weight
            self._weight[sym] += weight
        settled = 0
        while market_ms >= self.next_ms:
            self.settle(api_ms)
            self.next_ms += self.interval_ms
            settled += 1
        for sym, q in self.feed.quotes.items():
            q.funding_rate = self.rate(sym)
            q.next_funding_ms = api_ms + round((self.next_ms - market_ms) / speed)
        return settled

    def settle(self, api_ms: int) -> None:
        acct = self.account
        for sym, q in self.feed.quotes.items():
            rate = self.rate(sym)
            self.history.append(FundingRow(sym, rate, api_ms, q.mark))
            self._sum[sym] = self._weight[sym] = D(0)
            paid = False
            for p in [p for p in acct.open_positions() if p.symbol == sym]:
                amount = -p.amt * q.mark * rate
                if not amount:
                    continue
                acct.wallet += amount
                acct.income.append(Income(acct.income_ids.next(), sym, "FUNDING_FEE", amount,
                                          api_ms))
                paid = True
            if paid:
                acct.wallet_update_time = api_ms
                acct.notify_account("FUNDING_FEE", [])
