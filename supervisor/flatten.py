"""Take the account flat through the supervisor's own exchange session, and prove it.

The session is built and proven at start-up (markets loaded, keys checked, exchange time loaded)
because at kill time nothing else may be relied on: not the connector process, not a fresh
``import ccxt`` (0.3-0.5 s), not the local clock. Requests are signed with the exchange's time
and a large ``recvWindow``; a timestamp error (-1021) resyncs the time and retries at once.

One round: cancel every open order on every symbol, close every position with reduce-only market
orders (split by the market's maximum market-order quantity; an aggressive IOC limit when the
market order is refused by price protection), then verify with fresh reads. The caller repeats
rounds until verified.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

log = logging.getLogger("flatguard")

PRICE_PROTECTION = "-4131"
IOC_SLIPPAGE = 0.02  # how far through the mark an IOC close may trade when market is refused
MAX_RESYNCS = 3


@dataclass
class RoundResult:
    flat: bool
    cancelled: int = 0
    closes: int = 0
    open_orders: list[str] = field(default_factory=list)
    positions: list[str] = field(default_factory=list)
    error: str = ""


class Flattener:
    def __init__(self, exchange: Any, symbols: tuple[str, ...], recv_window_ms: int) -> None:
        self.ex = exchange
        self.symbols = symbols
        self.ex.options["recvWindow"] = recv_window_ms
        self.ex.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
        self.ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        self.offset_loaded_at = 0.0

    async def prepare(self) -> None:
        """Markets, exchange time, and a signed read: the kill path is proven before it is needed."""
        await self.ex.load_markets()
        await self.sync_time()
        await self.ex.fetch_balance()

    async def sync_time(self) -> None:
        await self.ex.load_time_difference()
        self.offset_loaded_at = time.monotonic()

    async def prove(self) -> None:
        """Raise unless a signed read with fresh exchange time succeeds (keys valid, clock ok)."""
        await self.sync_time()
        await self.ex.fetch_balance()

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(MAX_RESYNCS + 1):
            try:
                return await fn(*args, **kwargs)
            except ccxt.InvalidNonce:
                if attempt == MAX_RESYNCS:
                    raise
                log.warning("kill path: timestamp rejected, resyncing exchange time")
                await self.sync_time()
        raise AssertionError("unreachable")

    async def open_orders(self) -> list[dict[str, Any]]:
        return await self._call(self.ex.fetch_open_orders)

    async def positions(self) -> list[dict[str, Any]]:
        rows = await self._call(self.ex.fetch_positions)
        return [p for p in rows if abs(float(p.get("contracts") or 0)) > 0]

    async def cancel_all(self) -> int:
        orders = await self.open_orders()
        symbols = set(self.symbols) | {o["symbol"] for o in orders}
        for sym in sorted(symbols):
            try:
                await self._call(self.ex.cancel_all_orders, sym)
            except ccxt.OrderNotFound:
                pass  # nothing to cancel is what we want
        return len(orders)

    async def close_all(self) -> int:
        sent = 0
        for p in await self.positions():
            sent += await self._close(p)
        return sent

    async def _close(self, p: dict[str, Any]) -> int:
        sym = p["symbol"]
        contracts = abs(float(p["contracts"]))
        side = "sell" if p.get("side") == "long" else "buy"
        market = self.ex.market(sym)
        max_q = ((market.get("limits") or {}).get("market") or {}).get("max") or contracts
        params: dict[str, Any] = {}
        pos_side = (p.get("info") or {}).get("positionSide", "BOTH")
        if pos_side in ("LONG", "SHORT"):
            params["positionSide"] = pos_side  # hedge mode: reduceOnly is not accepted there
        else:
            params["reduceOnly"] = True
        sent, left = 0, contracts
        while left > 0:
            qty = float(self.ex.amount_to_precision(sym, min(left, max_q)))
            if qty <= 0:
                break
            try:
                await self._call(self.ex.create_order, sym, "market", side, qty, None, dict(params))
            except ccxt.ExchangeError as e:
                if PRICE_PROTECTION not in str(e):
                    raise
                await self._ioc_close(sym, side, qty, params)
            sent += 1
            left = round(left - qty, 12)
        return sent

    async def _ioc_close(self, sym: str, side: str, qty: float, params: dict[str, Any]) -> None:
        ticker = await self._call(self.ex.fetch_ticker, sym)
        ref = float(ticker.get("last") or ticker.get("close") or ticker.get("bid") or 0)
        px = ref * (1 - IOC_SLIPPAGE if side == "sell" else 1 + IOC_SLIPPAGE)
        log.warning("kill path: market close refused by price protection; IOC limit symbol=%s", sym)
        await self._call(self.ex.create_order, sym, "limit", side, qty,
                         float(self.ex.price_to_precision(sym, px)),
                         {**params, "timeInForce": "IOC"})

    async def verify(self) -> RoundResult:
        orders = await self.open_orders()
        positions = await self.positions()
        return RoundResult(
            flat=not orders and not positions,
            open_orders=[f"{o['symbol']} {o['side']} {o.get('amount')}" for o in orders],
            positions=[f"{p['symbol']} {p.get('side')} {p.get('contracts')}" for p in positions],
        )

    async def round(self, cancel_only: bool = False) -> RoundResult:
        """One cancel-close-verify round. Exchange errors propagate to the caller's retry loop."""
        cancelled = await self.cancel_all()
        closes = 0 if cancel_only else await self.close_all()
        res = await self.verify()
        if cancel_only:
            res.flat = not res.open_orders
        res.cancelled, res.closes = cancelled, closes
        return res

    async def close(self) -> None:
        await self.ex.close()
