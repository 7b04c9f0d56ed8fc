"""Numbers at the boundary: nothing non-finite or nonsensical from the exchange gets through.

ccxt turns ``"NaN"`` and ``"Infinity"`` strings into floats, and NaN slips past every
comparison downstream: a NaN equity passes the leverage cap, NaN contracts look "flat" to the
inventory, the reconcile and the kill path's filter. So every price, amount and equity the
connector takes from the exchange (REST reconcile rows, feed events, fills) is converted here,
strictly: a value that is present but not a finite number, a price that is not positive, an
amount or equity that is not finite, is refused with :class:`BadExchangeData`, counted in
``flatguard_exchange_bad_numbers_total{field}`` and logged. Missing values stay ``None``: what a
missing value means is the caller's business (a missing mark is simply no mark).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from trader.kernel.errors import FlatguardError
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard.numbers")


class BadExchangeData(FlatguardError, ValueError):
    """The exchange sent a number that cannot be true. Policy: the value never leaves the
    connector. A REST reconcile carrying one fails (the account stays unconfirmed, which is
    fatal after ``exchange.max_unconfirmed``); a feed event carrying one is dropped and a
    reconcile asked for. Reply kind ``bad_data``."""

    kind = "bad_data"

    def __init__(self, field: str, value: Any, where: str) -> None:
        super().__init__(f"bad number from the exchange: {where} {field}={value!r}")
        self.field = field
        self.value = value
        self.where = where


LOG_EVERY = 10.0  # s: a NaN mark stream must not flood the log (the counter counts them all)
_logged: dict[str, tuple[float, int]] = {}  # field -> (last logged, refused since)


def refuse(field: str, value: Any, where: str) -> BadExchangeData:
    METRICS.inc("flatguard_exchange_bad_numbers_total", field=field)
    last, since = _logged.get(field, (float("-inf"), 0))
    now = time.monotonic()
    if now - last >= LOG_EVERY:
        log.error("event=bad_exchange_number field=%s value=%r where=%s also_refused=%d",
                  field, value, where, since)
        _logged[field] = (now, 0)
    else:
        _logged[field] = (last, since + 1)
    return BadExchangeData(field, value, where)


def number(v: Any, field: str, where: str) -> float | None:
    """A finite float, or None when missing; anything else is refused (an empty string too:
    a field the exchange sent empty is not a field it left out)."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise refuse(field, v, where)
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise refuse(field, v, where) from None
    if not math.isfinite(f):
        raise refuse(field, v, where)
    return f


def amount(v: Any, field: str, where: str, default: float | None = 0.0) -> float | None:
    """A finite amount (any sign); missing is ``default``."""
    f = number(v, field, where)
    return default if f is None else f


def price(v: Any, field: str, where: str, *, zero_is_missing: bool = False) -> float | None:
    """A finite price > 0, or None when missing (and, with ``zero_is_missing``, when 0: a
    market order's price, a position row without a mark)."""
    f = number(v, field, where)
    if f is None or (f == 0 and zero_is_missing):
        return None
    if f <= 0:
        raise refuse(field, v, where)
    return f


def fill(t: dict[str, Any]) -> None:
    """A ccxt trade (own fill): price > 0, amount > 0, fee finite."""
    where = f"fill {t.get('symbol')} {t.get('id')}"
    if price(t.get("price"), "fill_price", where) is None:
        raise refuse("fill_price", t.get("price"), where)
    a = number(t.get("amount"), "fill_amount", where)
    if a is None or a <= 0:
        raise refuse("fill_amount", t.get("amount"), where)
    number((t.get("fee") or {}).get("cost"), "fee", where)
