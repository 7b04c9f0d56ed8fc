"""Take the account flat through the supervisor's own exchange session, and prove it.

The session is built and proven at start-up (markets loaded, keys checked, exchange time loaded)
because at kill time nothing else may be relied on: not the connector process, not a fresh
``import ccxt`` (0.3-0.5 s), not the local clock. Requests are signed with the exchange's time
and a large ``recvWindow``; a timestamp error (-1021) resyncs the time and retries at once.

One round: cancel every open order on every symbol (the configured ones and any other that has
orders: flatguard owns the whole account), close every position with reduce-only market orders
(hedge mode: each side with its ``positionSide``, where Binance refuses ``reduceOnly``), split by
the market's maximum market-order quantity (MARKET_LOT_SIZE), an aggressive IOC limit inside the
PERCENT_PRICE band when a market order is refused by price protection (-4131); then re-read the
positions and close what is left (partial fills), a few passes while they make progress; then
verify with fresh reads. The caller repeats rounds until verified.

The order responses are never trusted for what was filled (Binance answers a futures order with
an ACK by default): only a fresh position read says what is left.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt

log = logging.getLogger("flatguard")

PRICE_PROTECTION = "-4131"
REDUCE_ONLY_REJECTED = "-2022"
IOC_SLIPPAGE = 0.02  # through the mark, when the market publishes no PERCENT_PRICE band
BAND_USE = 0.9  # how much of the PERCENT_PRICE band an IOC close may use (mark moves meanwhile)
MAX_RESYNCS = 3
CLOSE_PASSES = 5  # re-read and close again while the positions shrink (partial fills)


@dataclass
class RoundResult:
    flat: bool
    cancelled: int = 0
    closes: int = 0
    open_orders: list[str] = field(default_factory=list)
    positions: list[str] = field(default_factory=list)
    error: str = ""


def _key(p: dict[str, Any]) -> tuple[str, str]:
    return p["symbol"], str((p.get("info") or {}).get("positionSide") or p.get("side") or "")


def _size(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    return {_key(p): abs(float(p.get("contracts") or 0)) for p in rows}


class Flattener:
    def __init__(self, exchange: Any, symbols: tuple[str, ...], recv_window_ms: int) -> None:
        self.ex = exchange
        self.symbols = symbols
        self.ex.options["recvWindow"] = recv_window_ms
        self.ex.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
        self.ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        self.offset_loaded_at = 0.0
        self.hedged: bool | None = None  # position mode, when the exchange can tell

    async def prepare(self) -> None:
        """Markets, exchange time, and a signed read: the kill path is proven before it is needed.

        Also the position-mode pre-flight: the flatten works in either mode (hedge: each side
        closed with its positionSide), but the connector trades one-way only, so say it early.
        """
        await self.ex.load_markets()
        await self.prove()
        if self.ex.has.get("fetchPositionMode"):
            sym = next((s for s in self.symbols if s in self.ex.markets), None)
            mode = await self._call(self.ex.fetch_position_mode, sym)
            self.hedged = bool(mode.get("hedged"))
            if self.hedged:
                log.warning("kill path: the account is in hedge (dual-side) position mode; the "
                            "kill switch closes each side with its positionSide")

    async def sync_time(self) -> None:
        await self.ex.load_time_difference()
        self.offset_loaded_at = time.monotonic()

    async def prove(self) -> None:
        """Raise unless the signed reads a flatten needs succeed with fresh exchange time (keys
        valid, clock ok). Not the balance: an account endpoint retired (the seed incident) must
        not make a kill path that does not use it look broken."""
        await self.sync_time()
        await self._call(self.ex.fetch_positions)
        await self._call(self.ex.fetch_open_orders)

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
        """Cancel on every symbol that has orders (and every configured one, even if the read of
        open orders failed); one failing symbol does not stop the others. Raises the first error
        after trying them all."""
        errors: list[Exception] = []
        orders: list[dict[str, Any]] = []
        try:
            orders = await self.open_orders()
        except Exception as e:
            errors.append(e)
        # A configured symbol the exchange does not list must not fail every round forever.
        symbols = {s for s in self.symbols if s in self.ex.markets} | {o["symbol"] for o in orders}
        for sym in sorted(symbols):
            try:
                await self._call(self.ex.cancel_all_orders, sym)
            except ccxt.OrderNotFound:
                pass  # nothing to cancel is what we want
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]
        return len(orders)

    async def close_all(self) -> int:
        """Close every position; re-read and close the rest while a pass makes progress."""
        sent = 0
        rows = await self.positions()
        for _ in range(CLOSE_PASSES):
            if not rows:
                break
            errors: list[Exception] = []
            for p in rows:  # one position that cannot be closed must not keep the others open
                try:
                    sent += await self._close(p)
                except Exception as e:
                    errors.append(e)
            if errors:
                raise errors[0]
            before, rows = _size(rows), await self.positions()
            after = _size(rows)
            if not any(after.get(k, 0.0) < v for k, v in before.items()):
                break  # nothing filled: the round's verify reports it, the next round retries
            if rows:
                log.warning("kill path: positions left after closing (partial fills), closing "
                            "the rest: %s", ", ".join(f"{k[0]} {k[1]} {v:g}"
                                                      for k, v in after.items()))
        return sent

    def _max_market_qty(self, market: dict[str, Any], fallback: float) -> float:
        return float(((market.get("limits") or {}).get("market") or {}).get("max") or fallback)

    async def _close(self, p: dict[str, Any]) -> int:
        sym = p["symbol"]
        contracts = abs(float(p["contracts"]))
        pos_side = str((p.get("info") or {}).get("positionSide") or "BOTH").upper()
        if pos_side in ("LONG", "SHORT"):
            # Hedge mode: the side closes itself; Binance refuses reduceOnly there (-1106).
            side = "sell" if pos_side == "LONG" else "buy"
            params: dict[str, Any] = {"positionSide": pos_side}
        else:
            side = "sell" if p.get("side") == "long" else "buy"
            params = {"reduceOnly": True}
        max_q = self._max_market_qty(self.ex.market(sym), contracts)
        sent, left = 0, contracts
        while left > 0:
            try:
                qty = float(self.ex.amount_to_precision(sym, min(left, max_q)))
            except ccxt.InvalidOrder:
                qty = 0.0  # below one lot step
            if qty <= 0:
                log.error("kill path: %s %s %g is below the lot step and cannot be closed",
                          sym, pos_side, left)
                break
            try:
                await self._call(self.ex.create_order, sym, "market", side, qty, None, dict(params))
            except ccxt.ExchangeError as e:
                if REDUCE_ONLY_REJECTED in str(e):
                    # Smaller than we read (closed meanwhile): the re-read decides what is left.
                    log.warning("kill path: close of %s %s rejected as not reducing (-2022); "
                                "re-reading", sym, pos_side)
                    break
                if PRICE_PROTECTION not in str(e):
                    raise
                await self._ioc_close(sym, side, qty, params)
            sent += 1
            left = round(left - qty, 12)
        return sent

    async def _ioc_price(self, sym: str, side: str) -> float:
        """The most aggressive price the PERCENT_PRICE band accepts, less a margin."""
        market = self.ex.market(sym)
        mark = 0.0
        try:
            mark = float((await self._call(self.ex.fetch_mark_price, sym)).get("markPrice") or 0)
        except ccxt.NotSupported:
            pass
        if not mark:
            ticker = await self._call(self.ex.fetch_ticker, sym)
            mark = float(ticker.get("last") or ticker.get("close") or ticker.get("bid") or 0)
        band = next((f for f in (market.get("info") or {}).get("filters") or []
                     if f.get("filterType") == "PERCENT_PRICE"), None)
        if band is not None:
            up, down = float(band["multiplierUp"]), float(band["multiplierDown"])
            factor = 1 - (1 - down) * BAND_USE if side == "sell" else 1 + (up - 1) * BAND_USE
        else:
            factor = 1 - IOC_SLIPPAGE if side == "sell" else 1 + IOC_SLIPPAGE
        return float(self.ex.price_to_precision(sym, mark * factor))

    async def _ioc_close(self, sym: str, side: str, qty: float, params: dict[str, Any]) -> None:
        px = await self._ioc_price(sym, side)
        log.warning("kill path: market close refused by price protection; IOC limit symbol=%s "
                    "side=%s qty=%g price=%g", sym, side, qty, px)
        await self._call(self.ex.create_order, sym, "limit", side, qty, px,
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
        """One cancel-close-verify round.

        A failed cancel does not stop the closes (closing positions matters most), and the
        verify decides: an error on the way only matters if the account is not flat, and then it
        is reported in ``error``. A failed verify read propagates to the caller's retry loop.
        """
        failures: list[Exception] = []
        cancelled = closes = 0
        try:
            cancelled = await self.cancel_all()
        except Exception as e:
            failures.append(e)
        if not cancel_only:
            try:
                closes = await self.close_all()
            except Exception as e:
                failures.append(e)
        res = await self.verify()
        if cancel_only:
            res.flat = not res.open_orders
        res.cancelled, res.closes = cancelled, closes
        if failures and not res.flat:
            res.error = "; ".join(f"{type(e).__name__}: {e}" for e in failures)[:1000]
        elif failures:
            log.warning("kill path: verified despite errors on the way: %s",
                        "; ".join(f"{type(e).__name__}: {e}" for e in failures)[:500])
        return res

    async def close(self) -> None:
        await self.ex.close()
