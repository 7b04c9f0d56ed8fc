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
import time
from dataclasses import dataclass
from typing import Any

from trader import bus
from trader.metrics import METRICS
from trader.risk.view import OpenOrder, OrderIntent
from trader.strategy import OrderUpdate

log = logging.getLogger("flatguard")

DONE = {"closed", "canceled", "cancelled", "rejected", "expired", "filled"}
ORDER_TIMEOUT = 10.0


@dataclass
class Tracked:
    intent: OrderIntent
    status: str = "pending"
    filled: float = 0.0
    sent_at: float = 0.0
    error: str = ""

    def update(self) -> OrderUpdate:
        i = self.intent
        return OrderUpdate(i.client_id, i.symbol, i.side, self.status, i.amount, self.filled,
                           i.price, i.reduce_only)


class OrderManager:
    def __init__(self, conn: bus.Requester, risk: Any, view_fn: Any) -> None:
        self.conn = conn
        self.risk = risk
        self.view_fn = view_fn  # () -> AccountView including our open orders
        self.orders: dict[str, Tracked] = {}
        # Binance allows 36 chars of [.A-Z:/a-z0-9_-]: prefix, pid and a counter keep ids unique
        # across restarts of the trader without any shared state.
        self._prefix = f"fg{os.getpid():x}{int(time.time()) % 100000:x}"
        self._n = itertools.count(1)
        self.connector_ok = True
        self.rejections = 0

    def open_orders(self) -> tuple[OpenOrder, ...]:
        return tuple(
            OpenOrder(t.intent.client_id, t.intent.symbol, t.intent.side,
                      max(0.0, t.intent.amount - t.filled), t.intent.price, t.intent.reduce_only)
            for t in self.orders.values() if t.status not in DONE
        )

    def submit(self, symbol: str, side: str, amount: float, price: float | None,
               reduce_only: bool, tif: str | None = None) -> str | None:
        cid = f"{self._prefix}-{next(self._n)}"
        try:
            intent = OrderIntent(cid, symbol, side, "limit" if price is not None else "market",  # type: ignore[arg-type]
                                 amount, price, reduce_only)
        except ValueError as e:
            log.warning("order refused: invalid intent symbol=%s side=%s: %s", symbol, side, e)
            METRICS.inc("flatguard_risk_rejections_total", check="invalid")
            return None
        now = time.time()
        if not self.connector_ok:
            METRICS.inc("flatguard_risk_rejections_total", check="connector_down")
            return None
        rej = self.risk.check(intent, self.view_fn(), now)
        if rej is not None:
            self.rejections += 1
            METRICS.inc("flatguard_risk_rejections_total", check=rej.check)
            log.info("%s", rej)
            return None
        self.risk.record_sent(intent, now)
        self.orders[cid] = Tracked(intent, sent_at=time.monotonic())
        METRICS.inc("flatguard_orders_total", symbol=symbol, side=side)
        args: dict[str, Any] = {"client_id": cid, "symbol": symbol, "side": side,
                                "type": intent.type, "amount": amount, "price": price,
                                "reduce_only": reduce_only}
        if tif:
            args["tif"] = tif
        asyncio.get_running_loop().create_task(self._send(cid, args))
        return cid

    async def _send(self, cid: str, args: dict[str, Any]) -> None:
        t = self.orders[cid]
        try:
            res = await self.conn.request("order.create", args, timeout=ORDER_TIMEOUT)
        except bus.RequestError as e:
            # rejected: the exchange refused this order. timeout: unknown; the connector resolves
            # it by client id and the order/account events tell the truth either way.
            if e.kind != "timeout":
                t.status, t.error = "rejected", e.message
            log.warning("order %s cid=%s kind=%s: %s", args["side"], cid, e.kind, e.message)
            return
        if isinstance(res, dict) and t.status == "pending":
            t.status = str(res.get("status") or "open")
            t.filled = max(t.filled, float(res.get("filled") or 0.0))

    def on_order(self, data: dict[str, Any]) -> OrderUpdate | None:
        t = self.orders.get(str(data.get("client_id")))
        if t is None:
            return None
        t.status = str(data.get("status") or t.status)
        t.filled = max(t.filled, float(data.get("filled") or 0.0))
        return t.update()

    def cancel(self, symbol: str, cid: str) -> None:
        t = self.orders.get(cid)
        if t is None or t.status in DONE:
            return
        asyncio.get_running_loop().create_task(self._cancel(symbol, cid))

    async def _cancel(self, symbol: str, cid: str) -> None:
        try:
            await self.conn.request("order.cancel", {"symbol": symbol, "client_id": cid},
                                    timeout=ORDER_TIMEOUT)
            t = self.orders.get(cid)
            if t is not None and t.status not in DONE:
                t.status = "canceled"
        except bus.RequestError as e:
            log.warning("cancel cid=%s kind=%s: %s", cid, e.kind, e.message)

    async def cancel_all(self, symbols: tuple[str, ...] | list[str]) -> None:
        await asyncio.gather(*(self.conn.request("order.cancel_all", {"symbol": s},
                                                 timeout=ORDER_TIMEOUT) for s in symbols))
        for t in self.orders.values():
            if t.intent.symbol in symbols and t.status not in DONE:
                t.status = "canceled"

    def prune(self, keep: float = 300.0) -> None:
        """Forget finished orders after a while; memory stays bounded on a long run."""
        now = time.monotonic()
        for cid in [c for c, t in self.orders.items() if t.status in DONE and now - t.sent_at > keep]:
            del self.orders[cid]
