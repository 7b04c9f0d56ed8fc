"""The feed's boundary: every event is checked (``exchange/numbers.py``) before the sink sees it.

Sits between the feed (WebSocket or polling, and the REST fill catch-up) and the ``FeedSink``:

* a mark, bid or ask that is not a finite price > 0 is counted and dropped (that field only):
  no NaN mark ever reaches the trader, and a bad or zero mark never refreshes the market-data
  staleness clock (``FeedSink.on_md`` refreshes it only for a real mark);
* an order, position, balance or fill event with a bad number is dropped whole (the row
  converters raise before the account changes), a REST reconcile is asked for, and the feed
  stops vouching for the account (``tainted_at``) until a REST read that began later succeeds:
  if the exchange keeps sending nonsense, the account goes unconfirmed and
  ``exchange.max_unconfirmed`` makes it fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from trader.exchange import numbers as N
from trader.exchange.feed import Sink

log = logging.getLogger("flatguard.connector")


class Boundary:
    def __init__(self, sink: Sink, on_bad: Callable[[N.BadExchangeData], None]) -> None:
        self.sink = sink
        self.on_bad = on_bad
        self.tainted_at = 0.0  # wall time of the last event dropped for a bad number

    def bad(self, e: N.BadExchangeData) -> None:
        """An event was lost to a bad number (here, in ccxt's parser, or a REST snapshot)."""
        self.tainted_at = time.time()
        self.on_bad(e)

    def _price(self, v: float | None, field: str, symbol: str) -> float | None:
        try:
            return N.price(v, field, f"md {symbol}")
        except N.BadExchangeData:
            return None  # counted and logged; only this field is dropped

    def on_md(self, symbol: str, mark: float | None, bid: float | None, ask: float | None,
              ts: float | None) -> None:
        mark = self._price(mark, "mark", symbol)
        bid = self._price(bid, "bid", symbol)
        ask = self._price(ask, "ask", symbol)
        if mark is None and bid is None and ask is None:
            return
        self.sink.on_md(symbol, mark, bid, ask, ts)

    def _guarded(self, fn: Callable[[Any], None], event: Any) -> None:
        try:
            fn(event)
        except N.BadExchangeData as e:
            self.bad(e)

    def on_order(self, o: dict[str, Any]) -> None:
        self._guarded(self.sink.on_order, o)

    def on_position(self, p: dict[str, Any]) -> None:
        self._guarded(self.sink.on_position, p)

    def on_balance(self, b: dict[str, Any]) -> None:
        self._guarded(self.sink.on_balance, b)

    def on_trade(self, t: dict[str, Any]) -> None:
        try:
            N.fill(t)
        except N.BadExchangeData as e:
            self.bad(e)  # the REST catch-up brings it back once the exchange makes sense
            return
        self.sink.on_trade(t)

    def reconnected(self, why: str) -> None:
        self.sink.reconnected(why)

    def connected(self, ok: bool) -> None:
        self.sink.connected(ok)
