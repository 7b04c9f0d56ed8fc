"""Errors of the risk package.

The guards themselves never raise on market or account data: a breach is a ``Rejection`` (the
order is not sent) or a ``RiskEvent`` (the engine acts on it). The only error is a malformed
order built by strategy code.
"""

from __future__ import annotations

from trader.kernel.errors import FlatguardError


class InvalidOrder(FlatguardError, ValueError):
    """An order intent is malformed (bad side/type, amount <= 0, NaN, price on a market order).

    Recovery: reject the order, never send it; the strategy call that built it returns None and
    the message is logged. Trading continues.
    """
