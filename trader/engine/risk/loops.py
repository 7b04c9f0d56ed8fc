"""Buy-sell loop detector: round trips and the fees plus spread they burn, per symbol.

A *leg* is a run of fills on one side. When the side changes, the new leg is matched against the
previous one: once it has undone at least ``SIMILAR`` of it, that is one round trip -- counted
only if it did not make money net of both legs' fees. A market maker whose quotes fill on both sides
earns the spread: that is trading, not a loop; a loop pays the spread and the fees. Each matched
contract is charged the round trip's loss (buy price above sell price) — profits are not netted,
so a loop cannot hide behind a lucky trade. Fees are charged as they are paid.

A breach (round trips above ``max_round_trips`` or cost above ``max_cost`` within ``window``)
resets the counts: the second breach is measured on fills after the first, so the reductions that
follow a first breach do not count as a second one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SIMILAR = 0.5  # an opposite leg that undoes half the previous one closes a round trip


@dataclass
class _Leg:
    side: str
    amount: float = 0.0
    notional: float = 0.0  # sum(amount x price), for the volume-weighted price
    fees: float = 0.0

    @property
    def vwap(self) -> float:
        return self.notional / self.amount if self.amount > 0 else 0.0


@dataclass
class SymbolLoops:
    """The sliding-window record of one symbol."""

    trips: deque[float] = field(default_factory=deque)  # times of counted round trips
    costs: deque[tuple[float, float]] = field(default_factory=deque)  # (time, fee or loss)
    prev: _Leg | None = None  # the leg being undone
    cur: _Leg | None = None
    matched: float = 0.0  # contracts of ``prev`` undone by ``cur``
    matched_pnl: float = 0.0  # price PnL of the matched contracts (sell - buy)
    counted: bool = False  # ``cur`` already closed a round trip against ``prev``

    def expire(self, now: float, window: float) -> None:
        while self.trips and self.trips[0] <= now - window:
            self.trips.popleft()
        while self.costs and self.costs[0][0] <= now - window:
            self.costs.popleft()

    def cost(self) -> float:
        return sum(c for _, c in self.costs)

    def reset_counts(self) -> None:
        self.trips.clear()
        self.costs.clear()


class LoopDetector:
    def __init__(self, window: float, max_round_trips: int, max_cost: float) -> None:
        self.window = window
        self.max_round_trips = max_round_trips
        self.max_cost = max_cost
        self._sym: dict[str, SymbolLoops] = {}

    def symbol(self, symbol: str) -> SymbolLoops:
        s = self._sym.get(symbol)
        if s is None:
            s = self._sym[symbol] = SymbolLoops()
        return s

    def counts(self, symbol: str, now: float) -> tuple[int, float]:
        """(round trips, cost) within the window."""
        s = self.symbol(symbol)
        s.expire(now, self.window)
        return len(s.trips), s.cost()

    def on_fill(
        self, symbol: str, side: str, amount: float, price: float, fee: float, now: float
    ) -> str | None:
        """Record one own fill; return a description of the breach, or None."""
        s = self.symbol(symbol)
        s.expire(now, self.window)
        if fee > 0:
            s.costs.append((now, fee))
        if s.cur is None or s.cur.side != side:
            s.prev, s.cur, s.matched, s.counted = s.cur, _Leg(side), 0.0, False
            s.matched_pnl = 0.0
        leg = s.cur
        leg.fees += max(fee, 0.0)
        if s.prev is not None:
            q = min(amount, s.prev.amount - s.matched)
            if q > 0:
                buy, sell = (price, s.prev.vwap) if side == "buy" else (s.prev.vwap, price)
                loss = (buy - sell) * q
                if loss > 0:
                    s.costs.append((now, loss))
                s.matched += q
                s.matched_pnl -= loss
            if not s.counted and s.matched >= SIMILAR * s.prev.amount:
                s.counted = True
                # fees of the matched share of the previous leg, and all of this leg's so far
                fees = s.prev.fees * s.matched / s.prev.amount + leg.fees
                if s.matched_pnl - fees <= 0:  # break-even or worse: a loop's round trip
                    s.trips.append(now)
        leg.amount += amount
        leg.notional += amount * price
        trips, cost = len(s.trips), s.cost()
        # Cost alone is no loop: one big closing fill pays fees too. A breach needs round trips.
        if trips > self.max_round_trips or (trips > 0 and cost > self.max_cost):
            s.reset_counts()
            return (
                f"{trips} round trips (limit {self.max_round_trips}) and cost {cost:.2f} "
                f"(limit {self.max_cost:g}) within {self.window:g} s"
            )
        return None
