"""Maintenance margin from Binance's leverage brackets (``GET /fapi/v1/leverageBracket``).

A position's maintenance margin is ``notional × maintMarginRatio − cum`` of the bracket its
notional falls in (``cum`` makes the function continuous across brackets). The same table is
served by ``leverageBracket`` and drives liquidation (``liquidation.py``), so what a client reads
is what the exchange enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

D = Decimal


@dataclass(frozen=True)
class Bracket:
    bracket: int
    initial_leverage: int
    floor: int
    cap: int
    mmr: Decimal
    cum: int

    def row(self) -> dict[str, object]:
        # cum as an integer: the official SDK models it as int (Binance's doc example)
        return {"bracket": self.bracket, "initialLeverage": self.initial_leverage,
                "notionalCap": self.cap, "notionalFloor": self.floor,
                "maintMarginRatio": float(self.mmr), "cum": self.cum}


BRACKETS: tuple[Bracket, ...] = (
    Bracket(1, 125, 0, 50_000, D("0.004"), 0),
    Bracket(2, 100, 50_000, 600_000, D("0.005"), 50),
    Bracket(3, 20, 600_000, 10_000_000, D("0.025"), 12_050),
    Bracket(4, 10, 10_000_000, 100_000_000, D("0.05"), 262_050),
    Bracket(5, 5, 100_000_000, 500_000_000, D("0.1"), 5_262_050),
)
# exchangeInfo's liquidationFee: the clearance fee on the notional a liquidation closes.
LIQUIDATION_FEE = D("0.0125")
# Binance caps a symbol's funding rate at 0.75 × the first bracket's maintenance margin ratio.
FUNDING_CAP = D("0.75") * BRACKETS[0].mmr
# Binance's impact margin notional: 200 USDT over the initial margin rate at max leverage.
IMPACT_NOTIONAL = D(200) * BRACKETS[0].initial_leverage


def bracket(notional: Decimal) -> Bracket:
    value = abs(notional)
    for b in BRACKETS:
        if value < b.cap:
            return b
    return BRACKETS[-1]


def maint_margin(notional: Decimal) -> Decimal:
    b = bracket(notional)
    return max(abs(notional) * b.mmr - b.cum, D(0))


def liquidation_price(amt: Decimal, entry: Decimal, wallet: Decimal,
                      notional: Decimal) -> Decimal:
    """Where wallet + PnL meets maintenance margin for one cross position, using the
    bracket of its current notional."""
    if not amt:
        return D(0)
    b = bracket(notional)
    qty = abs(amt)
    if amt > 0:
        price = (entry * qty - wallet - b.cum) / (qty * (1 - b.mmr))
    else:
        price = (entry * qty + wallet + b.cum) / (qty * (1 + b.mmr))
    return max(price, D(0))
