"""The values the risk engine reads and returns: order intents, the account view, verdicts.

All frozen. The engine builds them; the guards never mutate them. Amounts are contracts of a
linear contract whose size is one unit of the base asset, so notional = contracts x price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from trader.engine.risk.errors import InvalidOrder

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
Level = Literal["info", "warning", "critical"]
Action = Literal["reduce", "stop", "halt"]


def _finite_positive(v: float) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@dataclass(frozen=True)
class OrderIntent:
    """An order the strategy (or the engine) wants to send. Validated on construction."""

    client_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: float  # contracts, > 0
    price: float | None = None  # limit price; None for market
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise InvalidOrder(f"side must be buy or sell, got {self.side!r}")
        if self.type not in ("market", "limit"):
            raise InvalidOrder(f"type must be market or limit, got {self.type!r}")
        if not _finite_positive(self.amount):
            raise InvalidOrder(f"amount must be a finite number > 0, got {self.amount!r}")
        if self.type == "limit" and not _finite_positive(self.price):  # type: ignore[arg-type]
            raise InvalidOrder(f"limit order needs a finite price > 0, got {self.price!r}")
        if self.type == "market" and self.price is not None:
            raise InvalidOrder(f"market order must not carry a price, got {self.price!r}")
        if not self.symbol or not self.client_id:
            raise InvalidOrder("symbol and client_id must be non-empty")

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


@dataclass(frozen=True)
class Position:
    contracts: float  # signed: > 0 long, < 0 short
    entry_price: float = 0.0


@dataclass(frozen=True)
class Mark:
    price: float
    ts: float  # wall time of the market data it came from


@dataclass(frozen=True)
class OpenOrder:
    """An order that may still fill. The engine lists every order it has sent that is not known
    to be done, including those not yet acknowledged by the exchange."""

    client_id: str
    symbol: str
    side: Side
    remaining: float  # contracts not yet filled
    price: float | None = None
    reduce_only: bool = False


def _frozen_map(m: Mapping) -> Mapping:
    return m if isinstance(m, MappingProxyType) else MappingProxyType(dict(m))


@dataclass(frozen=True)
class AccountView:
    """What the engine believes about the account at one moment."""

    equity: float
    positions: Mapping[str, Position] = field(default_factory=dict)
    marks: Mapping[str, Mark] = field(default_factory=dict)
    open_orders: tuple[OpenOrder, ...] = ()
    margin_ratio: float | None = None  # maintenance margin / margin balance; 1.0 = liquidation
    confirmed: float = 0.0  # wall time of the last account confirmation (REST or feed)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _frozen_map(self.positions))
        object.__setattr__(self, "marks", _frozen_map(self.marks))
        object.__setattr__(self, "open_orders", tuple(self.open_orders))

    def contracts(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.contracts if p is not None else 0.0

    def price(self, symbol: str) -> float | None:
        """The mark, else the entry price of a held position, else None."""
        m = self.marks.get(symbol)
        if m is not None:
            return m.price
        p = self.positions.get(symbol)
        return p.entry_price if p is not None and p.entry_price > 0 else None

    def with_order(self, order: OrderIntent) -> AccountView:
        """This view with ``order`` resting (use after sending, before checking the next)."""
        extra = OpenOrder(
            order.client_id, order.symbol, order.side, order.amount, order.price, order.reduce_only
        )
        return AccountView(
            self.equity,
            self.positions,
            self.marks,
            (*self.open_orders, extra),
            self.margin_ratio,
            self.confirmed,
        )


@dataclass(frozen=True)
class Rejection:
    """An order refused before it left. ``check`` is the metric label
    (``flatguard_risk_rejections_total{check}``); ``message`` carries the numbers."""

    check: str
    message: str
    symbol: str = ""
    client_id: str = ""

    def __str__(self) -> str:
        return f"risk_reject check={self.check} symbol={self.symbol} cid={self.client_id} {self.message}"


@dataclass(frozen=True)
class RiskEvent:
    """Something the engine must act on or tell a person about.

    ``action``: None = notify only (state changes are already enforced by ``check``);
    "reduce" = reduce positions now; "stop" = orderly stop (limit exit, then halted);
    "halt" = ask the supervisor to run the kill switch.
    """

    guard: str  # exposure, loop, drawdown, daily_loss, margin, stale
    level: Level
    title: str
    text: str
    action: Action | None = None
    symbol: str | None = None
