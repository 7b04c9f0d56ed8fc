"""The trader's order manager: client order ids, risk checks, sending, tracking.

Every order gets a client order id here, passes every risk check, and only then is handed to the
connector as a request (never by pub/sub: an order must not be lost silently). The send runs as
a task so the strategy's tick handler returns at once; the order counts as open (for exposure)
from the moment it is accepted by the checks until an update says it is done.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from trader.engine.risk import CHECKS, CONNECTOR_DOWN, INVALID, InvalidOrder, Rejection
from trader.engine.risk.view import OpenOrder, OrderIntent
from trader.engine.strategy import OrderUpdate
from trader.kernel import bus
from trader.kernel.metrics import METRICS
from trader.kernel.payloads import OrderCreate
from trader.kernel.protocol import TERMINAL, ConnectorOp
from trader.kernel.protocol import OrderStatus as S

log = logging.getLogger("flatguard")

DONE = TERMINAL  # the protocol's one set of order statuses that can no longer fill
ORDER_TIMEOUT = 10.0
# s a sent order may stay without any news (no reply, no update, not among the account's open
# orders) before it is taken as never placed; until then it counts as open (it may fill)
PENDING_EXPIRY = 3 * ORDER_TIMEOUT
LOG_EVERY = 5.0  # s between log lines for one (check, symbol) rejection; the metric counts all


@dataclass
class Tracked:
    intent: OrderIntent
    status: str = S.PENDING
    filled: float = 0.0  # as the exchange reports it (order updates)
    fill_seen: float = 0.0  # as applied to the inventory (fill events)
    sent_at: float = 0.0  # monotonic
    news_at: float = 0.0  # monotonic time of the last reply or update
    error: str = ""
    final: bool = False  # the exchange said it is done (with ``filled``), not only we did

    def update(self) -> OrderUpdate:
        i = self.intent
        return OrderUpdate(i.client_id, i.symbol, i.side, self.status, i.amount, self.filled,
                           i.price, i.reduce_only)

    @property
    def remaining(self) -> float:
        """What may still fill, as far as the inventory knows: fills are taken off only when
        their fill event has moved the position, so the order and the position never both
        miss a fill (they may both count it for a moment: conservative)."""
        return 0.0 if self.status in DONE else max(0.0, self.intent.amount - self.fill_seen)


class OrderManager:
    def __init__(self, conn: bus.Requester, risk: Any, view_fn: Any) -> None:
        self.conn = conn
        self.risk = risk
        self.view_fn = view_fn  # () -> AccountView including our open orders
        self.orders: dict[str, Tracked] = {}
        # The orders that may still be open: ``open_orders`` (every risk check, on the tick
        # path) walks these, not every order of the last ``prune`` period. A done one leaves
        # at the next walk; one an update reopens comes back (``_live``).
        self._live: dict[str, Tracked] = {}
        # Binance allows 36 chars of [.A-Z:/a-z0-9_-]: prefix (pid, time, random) and a counter
        # keep ids unique across restarts of the trader without any shared state.
        self._prefix = (f"fg{os.getpid():x}{int(time.time()) % 100000:x}"
                        f"{secrets.token_hex(2)}")
        self._n = itertools.count(1)
        self.connector_ok = True
        self.rejections = 0
        self.rejected_by: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}  # (check, sym) -> (t, muted)
        for check in CHECKS:  # every label on /metrics from the start, at 0
            METRICS.inc("flatguard_risk_rejections_total", 0.0, check=check)

    def open_orders(self) -> tuple[OpenOrder, ...]:
        """Every order sent and not known to be done, pending ones included."""
        out = []
        for cid, t in list(self._live.items()):
            if t.status in DONE or self.orders.get(cid) is not t:
                del self._live[cid]
            elif t.remaining > 0:
                out.append(OpenOrder(t.intent.client_id, t.intent.symbol, t.intent.side,
                                     t.remaining, t.intent.price, t.intent.reduce_only))
        return tuple(out)

    def _reopened(self, cid: str, t: Tracked) -> None:
        """A status was set from the exchange: back among the live ones unless done."""
        if t.status not in DONE and self.orders.get(cid) is t:
            self._live[cid] = t

    def fills_to_come(self) -> dict[str, tuple[float, float]]:
        """Per symbol, the (buy, sell) contracts our orders may still deliver as fill events:
        a live order's unfilled rest, and what a finished one filled beyond the fill events
        seen (the inventory bounds its "ahead" by this: see ``inventory``)."""
        out: dict[str, tuple[float, float]] = {}
        for t in self.orders.values():
            i = t.intent
            cap = t.filled if t.final else max(i.amount, t.filled)
            rest = max(0.0, cap - t.fill_seen)
            if rest > 0:
                buy, sell = out.get(i.symbol, (0.0, 0.0))
                out[i.symbol] = (buy + rest, sell) if i.side == "buy" else (buy, sell + rest)
        return out

    def _reject(self, rej: Rejection) -> None:
        self.rejections += 1
        self.rejected_by[rej.check] += 1
        METRICS.inc("flatguard_risk_rejections_total", check=rej.check)
        key, now = (rej.check, rej.symbol), time.monotonic()
        last, muted = self._logged.get(key, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:  # a runaway strategy must not flood the log
            self._logged[key] = (last, muted + 1)
            return
        self._logged[key] = (now, 0)
        log.info("%s%s", rej, f" (+{muted} more like it)" if muted else "")

    def submit(self, symbol: str, side: str, amount: float, price: float | None,
               reduce_only: bool, tif: str | None = None) -> str | None:
        """Check and send one order; its client id, or None if a check refused it."""
        cid = f"{self._prefix}-{next(self._n)}"
        try:
            intent = OrderIntent(cid, symbol, side, "limit" if price is not None else "market",  # type: ignore[arg-type]
                                 amount, price, reduce_only)
        except InvalidOrder as e:
            self._reject(Rejection(INVALID, f"invalid order {side} {amount!r}: {e}", symbol, cid))
            return None
        if not self.connector_ok:
            self._reject(Rejection(CONNECTOR_DOWN, "the connector does not answer", symbol, cid))
            return None
        now = time.time()
        rej = self.risk.check(intent, self.view_fn(), now)
        if rej is not None:
            self._reject(rej)
            return None
        self.risk.record_sent(intent, now)
        mono = time.monotonic()
        self.orders[cid] = self._live[cid] = Tracked(intent, sent_at=mono, news_at=mono)
        METRICS.inc("flatguard_orders_total", symbol=symbol, side=side)
        args = OrderCreate(cid, symbol, side, intent.type, amount, price, reduce_only,
                           tif).to_wire()
        now_fn = getattr(self.conn, "request_now", None)  # sent here, before the tick returns
        reply = (now_fn(ConnectorOp.ORDER_CREATE, args, timeout=ORDER_TIMEOUT) if now_fn
                 else self.conn.request(ConnectorOp.ORDER_CREATE, args, timeout=ORDER_TIMEOUT))
        asyncio.get_running_loop().create_task(self._send(cid, args, reply))
        return cid

    async def _send(self, cid: str, args: dict[str, Any], reply: Awaitable[Any]) -> None:
        t = self.orders[cid]
        try:
            res = await reply
        except bus.RequestError as e:
            # rejected: the exchange refused this order. timeout: unknown; the connector resolves
            # it by client id and the order/account events tell the truth either way.
            if e.kind != "timeout":
                t.status, t.error, t.final = S.REJECTED, e.message, True
            log.warning("order %s cid=%s kind=%s: %s", args["side"], cid, e.kind, e.message)
            return
        t.news_at = time.monotonic()
        if isinstance(res, dict) and t.status == S.PENDING:
            t.status = str(res.get("status") or S.OPEN)
            t.filled = max(t.filled, float(res.get("filled") or 0.0))
            self._reopened(cid, t)
            t.final = t.status in DONE

    def on_order(self, data: dict[str, Any]) -> OrderUpdate | None:
        cid = str(data.get("client_id"))
        t = self.orders.get(cid)
        if t is None:
            return None
        t.status = str(data.get("status") or t.status)
        t.filled = max(t.filled, float(data.get("filled") or 0.0))
        t.final = t.status in DONE
        t.news_at = time.monotonic()
        self._reopened(cid, t)
        return t.update()

    def on_fill(self, client_id: str, amount: float) -> bool:
        """A fill event of ours was applied to the inventory; False if not our order."""
        t = self.orders.get(client_id)
        if t is None:
            return False
        t.fill_seen += amount
        t.news_at = time.monotonic()
        return True

    def cancel(self, symbol: str, cid: str) -> None:
        t = self.orders.get(cid)
        if t is None or t.status in DONE:
            return
        asyncio.get_running_loop().create_task(self._cancel(symbol, cid))

    async def _cancel(self, symbol: str, cid: str) -> None:
        try:
            await self.conn.request(ConnectorOp.ORDER_CANCEL, {"symbol": symbol, "client_id": cid},
                                    timeout=ORDER_TIMEOUT)
            t = self.orders.get(cid)
            if t is not None and t.status not in DONE:
                t.status = S.CANCELED
        except bus.RequestError as e:
            log.warning("cancel cid=%s kind=%s: %s", cid, e.kind, e.message)

    async def cancel_all(self, symbols: tuple[str, ...] | list[str]) -> None:
        await asyncio.gather(*(self.conn.request(ConnectorOp.ORDER_CANCEL_ALL, {"symbol": s},
                                                 timeout=ORDER_TIMEOUT) for s in symbols))
        for t in self.orders.values():
            if t.intent.symbol in symbols and t.status not in DONE:
                t.status = S.CANCELED

    def prune(self, known_open: set[str] | None = None, keep: float = 300.0) -> None:
        """Forget finished orders after a while; memory stays bounded on a long run. A pending
        order with no news for ``PENDING_EXPIRY`` that the account does not list as open
        (``known_open``: client ids in the connector's last snapshot) was never placed."""
        now = time.monotonic()
        for cid, t in list(self.orders.items()):
            if t.status in DONE:
                if now - t.sent_at > keep:
                    del self.orders[cid]
            elif (t.status == S.PENDING and known_open is not None and cid not in known_open
                  and now - t.news_at > PENDING_EXPIRY):
                log.warning("order cid=%s pending %.0f s with no news and not open on the "
                            "exchange: taken as never placed", cid, now - t.sent_at)
                t.status = S.EXPIRED
