"""The simulator's records: order requests, orders, trades, positions, and the listener the
user-data stream implements. Plain data; the matching lives in ``book.py``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

D = Decimal
FINAL_STATES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED"})


@dataclass
class OrderRequest:
    """A syntactically valid new-order request; the account checks everything else."""

    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    position_side: str | None = None
    client_order_id: str | None = None
    orig_type: str | None = None  # the conditional type when an algo order triggered it


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal  # 0 for market orders, like Binance
    reduce_only: bool
    position_side: str
    time: int
    update_time: int
    status: str = "NEW"
    executed: Decimal = D(0)
    cum_quote: Decimal = D(0)
    orig_type: str | None = None  # STOP_MARKET etc. for an order an algo order placed

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else D(0)

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_STATES


@dataclass
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time: int


@dataclass
class Income:
    """A row of ``GET /fapi/v1/income`` (REALIZED_PNL, COMMISSION; FUNDING_FEE needs funding)."""

    tran_id: int
    symbol: str
    income_type: str
    amount: Decimal
    time: int
    trade_id: int | None = None


@dataclass
class Position:
    symbol: str
    side: str  # BOTH (one-way) | LONG | SHORT (hedge mode)
    amt: Decimal = D(0)  # signed: negative is short
    entry: Decimal = D(0)
    update_time: int = 0


def _decimals(value: Decimal) -> int:
    """Significant digits after the point ("0.0010" has 3)."""
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _closes(pos: Position, side: str) -> bool:
    """Does an order on this side reduce the position? In hedge mode the position side
    decides (SELL closes LONG even when flat), in one-way mode the position's sign."""
    if pos.side == "LONG":
        return side == "SELL"
    if pos.side == "SHORT":
        return side == "BUY"
    return (pos.amt > 0 and side == "SELL") or (pos.amt < 0 and side == "BUY")


class AccountListener(Protocol):
    """Receives what the user-data stream publishes."""

    def on_order(self, order: Order, trade: Trade | None, exec_type: str) -> None: ...

    def on_account(self, reason: str, positions: list[Position]) -> None: ...
