"""Where feed events land: the account model, the journal (fills) and the bus (events).

Kept synchronous and short: the market-data path is ccxt's callback -> ``on_md`` -> one
non-blocking PUB send, with no extra hop or await (tick-to-order latency).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol

from trader.exchange.reconcile import Account
from trader.kernel.journal import FillConflict
from trader.kernel.metrics import METRICS
from trader.kernel.payloads import Fill, MarketData
from trader.kernel.protocol import FILL, MD, OPEN, ORDER, TERMINAL

log = logging.getLogger("flatguard.connector")


class FeedJournal(Protocol):
    """The journal's functions the sink uses (``trader/kernel/journal.py``); it may raise
    ``sqlite3.Error`` (logged, counted, and the event still goes out) or ``FillConflict``."""

    def order(self, client_id: str) -> dict[str, Any] | None: ...

    def update_order(self, client_id: str, status: str, exchange_id: str | None = None,
                     filled: float | None = None, error: str | None = None) -> None: ...

    def record_fill(self, trade_id: str, client_id: str | None, order_id: str | None,
                    symbol: str, side: str, amount: float, price: float, fee: float,
                    fee_currency: str, ts: float, *, venue: str) -> bool: ...

    def client_id_of(self, exchange_id: str) -> str | None: ...


class Publishing(Protocol):
    def publish(self, topic: str, data: dict[str, Any]) -> bool: ...


def _nothing(*_: Any) -> None:
    return None


class FeedSink:
    """Gets what it writes to, never the connector: the account model, the publisher, the
    journal's functions, the venue id, and callbacks into the connector's bookkeeping
    (``publish_account``; ``md_fresh``: a real mark arrived; ``event_time``: an exchange
    timestamp for the clock; ``is_poll``: the feed has no mark stream; ``want_reconcile``)."""

    def __init__(self, account: Account, pub: Publishing, journal: FeedJournal, venue: str, *,
                 publish_account: Callable[[str], None] = _nothing,
                 md_fresh: Callable[[], None] = _nothing,
                 event_time: Callable[[float | None], None] = _nothing,
                 is_poll: Callable[[], bool] = lambda: False,
                 want_reconcile: Callable[[], None] = _nothing) -> None:
        self.account = account
        self.pub = pub
        self.journal = journal
        self.venue = venue
        self.publish_account = publish_account
        self.md_fresh = md_fresh
        self.event_time = event_time
        self.is_poll = is_poll
        self.want_reconcile = want_reconcile
        self.marks: dict[str, float] = {}
        self.quotes: dict[str, dict[str, Any]] = {}

    def on_md(self, symbol: str, mark: float | None, bid: float | None, ask: float | None,
              ts: float | None) -> None:
        """Prices arrive checked (``boundary.py``): finite and > 0, or None. Only a real mark
        (or, for the poll feed, which has no mark stream, the mid) refreshes the quote's time
        and the staleness clock: a silent mark stream with quotes flowing is stale, not quiet."""
        q = self.quotes.setdefault(symbol, {"symbol": symbol, "mark": None, "bid": None,
                                            "ask": None, "ts": 0.0})
        fresh = False
        if mark:
            q["mark"] = float(mark)
            self.marks[symbol] = float(mark)
            self.account.mark(symbol, float(mark))
            fresh = True
        if bid:
            q["bid"] = float(bid)
        if ask:
            q["ask"] = float(ask)
        if self.is_poll() and symbol not in self.marks and (bid or ask) and q["bid"] and q["ask"]:
            q["mark"] = (q["bid"] + q["ask"]) / 2
            fresh = True
        self.event_time(ts)
        if fresh:
            q["ts"] = (ts / 1000.0) if ts else time.time()
            self.md_fresh()
        if q["mark"] is None:
            return  # nothing the trader can price with yet
        self.pub.publish(MD + symbol, MarketData(symbol, q["mark"], q["bid"], q["ask"],
                                                 q["ts"]).to_wire())

    def on_order(self, o: dict[str, Any]) -> None:
        row = self.account.apply_order(o)
        try:
            j = self.journal.order(row["client_id"]) if row["client_id"] else None
            if j is not None and not (row["status"] in OPEN and j["status"] in TERMINAL):
                self.journal.update_order(row["client_id"], str(row["status"]),
                                          exchange_id=row["id"], filled=row["filled"])
        except sqlite3.Error as e:  # the update still reaches the trader; the journal says so
            log.error("event=journal_failed call=update_order client_id=%s error=%s",
                      row["client_id"], e)
            METRICS.inc("flatguard_journal_errors_total", process="connector")
        self.pub.publish(ORDER + str(row["symbol"]), {**row, "ts": time.time()})
        self.publish_account("feed")

    def on_trade(self, t: dict[str, Any]) -> None:
        info = t.get("info") or {}
        oid = str(t.get("order") or "")
        cid = info.get("c") or info.get("clientOrderId") or self._client_id(oid)
        fee = t.get("fee") or {}
        fill = Fill(str(t.get("id")), cid, oid, t.get("symbol"), t.get("side"),  # type: ignore[arg-type]
                    float(t["amount"]), float(t["price"]), float(fee.get("cost") or 0.0),
                    str(fee.get("currency") or ""),
                    (t.get("timestamp") or time.time() * 1000) / 1000.0)
        try:
            new = self.journal.record_fill(**fill.to_wire(), venue=self.venue)
        except FillConflict as e:  # never silent; the fill is real, so it still goes out
            log.error("event=fill_conflict error=%s", e)
            METRICS.inc("flatguard_fill_conflicts_total")
            new = True
        except sqlite3.Error as e:  # a journal failure must not lose the fill for the strategy
            log.error("event=journal_failed call=record_fill trade_id=%s error=%s",
                      fill.trade_id, e)
            METRICS.inc("flatguard_journal_errors_total", process="connector")
            new = True
        if new:
            self.pub.publish(FILL + str(fill.symbol), fill.to_wire())

    def _client_id(self, oid: str) -> str | None:
        o = self.account.orders.get(oid)
        if o is not None:
            return str(o["client_id"])
        return self.journal.client_id_of(oid)

    def on_position(self, p: dict[str, Any]) -> None:
        self.account.apply_position(p)
        self.publish_account("feed")

    def on_balance(self, b: dict[str, Any]) -> None:
        self.account.apply_balance(b)
        self.publish_account("feed")

    def reconnected(self, why: str) -> None:
        log.info("event=feed_reconnected call=%s action=reconcile", why)
        self.want_reconcile()

    def connected(self, ok: bool) -> None:
        log.log(logging.INFO if ok else logging.WARNING, "event=feed_connected ok=%s", ok)
