"""Risk guards: pre-trade checks, order-rate throttle, buy-sell loop detector, and the
per-turn exposure, loss, margin and stale-state guards. Pure: no I/O, time passed in.

The limits (``[risk]``; notionals in the quote currency, valued at the mark):

- ``max_order_notional`` (2000): one order's amount x price (limit) or mark (market).
- ``max_position_notional`` (5000): a symbol's worst-case position if every resting order on
  the order's side fills, after the order.
- ``max_gross_exposure`` (8000): sum of every symbol's worst-case position notional.
- ``max_leverage`` (3.0): worst-case gross exposure / equity.
- ``max_orders_per_second`` (5), ``max_orders_per_minute`` (120): sliding windows over every
  order sent, reduce-only ones included.
- ``price_band`` (0.05): a limit price within this fraction of the mark; a market order needs a
  mark younger than ``stale_pause``.
- ``loop_window`` (600 s), ``loop_max_round_trips`` (20), ``loop_max_cost`` (50): per symbol,
  round trips and fees + round-trip losses within the window; first breach -> symbol REDUCING
  and a warning; second breach within the window -> halt (kill switch).
- ``loop_cooldown`` (0): seconds before a loop-REDUCING symbol is active again; 0 = until a
  person resumes (any state -> RUNNING) or unbans the symbol.
- ``max_drawdown`` (0.10): equity below the UTC day's high by this fraction -> stop.
- ``max_daily_loss`` (500): equity below the UTC day's opening equity by this much -> stop.
- ``margin_warn`` (0.5): margin ratio at or above -> account REDUCING + warning;
  ``margin_reduce`` (0.8): -> reduce positions.
- ``stale_pause`` (5 s): no mark for the order's symbol or no account confirmation for this long
  -> only reduce-only orders; ``stale_halt`` (60 s): no market data for this long -> halt (the
  account's limit is ``exchange.max_unconfirmed`` when the engine passes it).

Exposure caps never block an order that cannot take its position past zero (a reduction), and
never kill by themselves: held exposure above a cap (adopted, or after a price move) only makes
the account or symbol REDUCING until it is back under.
"""

from trader.engine.risk.engine import CHECKS, CONNECTOR_DOWN, INVALID, RiskEngine
from trader.engine.risk.errors import InvalidOrder
from trader.engine.risk.view import (
    AccountView,
    Mark,
    OpenOrder,
    OrderIntent,
    Position,
    Rejection,
    RiskEvent,
)

__all__ = [
    "CHECKS",
    "CONNECTOR_DOWN",
    "INVALID",
    "AccountView",
    "InvalidOrder",
    "Mark",
    "OpenOrder",
    "OrderIntent",
    "Position",
    "Rejection",
    "RiskEngine",
    "RiskEvent",
]
