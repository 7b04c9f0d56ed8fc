"""Where feed events land: the account model, the journal (fills) and the bus (events).

Kept synchronous and short: the market-data path is ccxt's callback -> ``on_md`` -> one
non-blocking PUB send, with no extra hop or await (tick-to-order latency).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from trader.exchange.reconcile import OPEN, TERMINAL
from trader.kernel.journal import FillConflict
from trader.kernel.metrics import METRICS
from trader.kernel.protocol import FILL, MD, ORDER

if TYPE_CHECKING:
    from trader.connector.service import Connector

log = logging.getLogger("flatguard.connector")


class FeedSink:
    def __init__(self, c: Connector) -> None:
        self.c = c
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
            self.c.account.mark(symbol, float(mark))
            fresh = True
        if bid:
            q["bid"] = float(bid)
        if ask:
            q["ask"] = float(ask)
        poll = self.c.feed is not None and self.c.feed.kind == "poll"
        if poll and symbol not in self.marks and (bid or ask) and q["bid"] and q["ask"]:
            q["mark"] = (q["bid"] + q["ask"]) / 2
            fresh = True
        if self.c.clock is not None:
            self.c.clock.observe_event(ts)
        if fresh:
            q["ts"] = (ts / 1000.0) if ts else time.time()
            self.c.child.last_md = time.time()
        if q["mark"] is None:
            return  # nothing the trader can price with yet
        self.c.pub.publish(MD + symbol, dict(q))

    def on_order(self, o: dict[str, Any]) -> None:
        row = self.c.account.apply_order(o)
        try:
            j = self.c.journal.order(row["client_id"]) if row["client_id"] else None
            if j is not None and not (row["status"] in OPEN and j["status"] in TERMINAL):
                self.c.journal.update_order(row["client_id"], str(row["status"]),
                                            exchange_id=row["id"], filled=row["filled"])
        except sqlite3.Error as e:  # the update still reaches the trader; the journal says so
            log.error("event=journal_failed call=update_order client_id=%s error=%s",
                      row["client_id"], e)
            METRICS.inc("flatguard_journal_errors_total", process="connector")
        self.c.pub.publish(ORDER + str(row["symbol"]), {**row, "ts": time.time()})
        self.c.publish_account("feed")

    def on_trade(self, t: dict[str, Any]) -> None:
        info = t.get("info") or {}
        oid = str(t.get("order") or "")
        cid = info.get("c") or info.get("clientOrderId") or self._client_id(oid)
        fee = t.get("fee") or {}
        fill = {"trade_id": str(t.get("id")), "client_id": cid, "order_id": oid,
                "symbol": t.get("symbol"), "side": t.get("side"), "amount": float(t["amount"]),
                "price": float(t["price"]), "fee": float(fee.get("cost") or 0.0),
                "fee_currency": str(fee.get("currency") or ""),
                "ts": (t.get("timestamp") or time.time() * 1000) / 1000.0}
        try:
            new = self.c.journal.record_fill(**fill, venue=self.c.cfg.exchange.id)
        except FillConflict as e:  # never silent; the fill is real, so it still goes out
            log.error("event=fill_conflict error=%s", e)
            METRICS.inc("flatguard_fill_conflicts_total")
            new = True
        except sqlite3.Error as e:  # a journal failure must not lose the fill for the strategy
            log.error("event=journal_failed call=record_fill trade_id=%s error=%s",
                      fill["trade_id"], e)
            METRICS.inc("flatguard_journal_errors_total", process="connector")
            new = True
        if new:
            self.c.pub.publish(FILL + str(fill["symbol"]), fill)

    def _client_id(self, oid: str) -> str | None:
        o = self.c.account.orders.get(oid)
        if o is not None:
            return str(o["client_id"])
        row = self.c.journal.db.execute("SELECT client_id FROM orders WHERE exchange_id = ?",
                                        (oid,)).fetchone()
        return row[0] if row else None

    def on_position(self, p: dict[str, Any]) -> None:
        self.c.account.apply_position(p)
        self.c.publish_account("feed")

    def on_balance(self, b: dict[str, Any]) -> None:
        self.c.account.apply_balance(b)
        self.c.publish_account("feed")

    def reconnected(self, why: str) -> None:
        log.info("event=feed_reconnected call=%s action=reconcile", why)
        self.c.reconcile_wanted = True

    def connected(self, ok: bool) -> None:
        log.log(logging.INFO if ok else logging.WARNING, "event=feed_connected ok=%s", ok)
