"""The exchange-side dead-man switch: orders are cancelled by the exchange if we go silent.

Binance USDⓈ-M: ``POST /fapi/v1/countdownCancelAll {symbol, countdownTime(ms)}`` per symbol
(ccxt has no unified call for it: ``fapiPrivatePostCountdownCancelAll``); elsewhere ccxt's
``cancel_all_orders_after(timeout_ms)`` where the exchange supports it. It is refreshed every
``dms_interval`` only while the trader's ``alive`` is fresh: a hung trader stops the refresh and
the exchange cancels its orders after ``dms_timeout`` (it does not close positions; the
supervisor's kill switch does). On an orderly stop the refresh stops first, then it is disarmed
(countdownTime = 0).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from trader.exchange.calls import Guard
from trader.metrics import METRICS

log = logging.getLogger("flatguard.dms")


class DeadManSwitch:
    def __init__(self, ex: Any, guard: Guard, symbols: list[str], interval: float,
                 timeout: float) -> None:
        self.ex = ex
        self.guard = guard
        self.symbols = list(symbols)
        self.interval = interval
        self.timeout_ms = int(round(timeout * 1000))
        self.armed: set[str] = set()
        self.next_at = 0.0  # monotonic
        self.mode = self._mode()
        self.stopped = False

    def _mode(self) -> str:
        if hasattr(self.ex, "fapiPrivatePostCountdownCancelAll") and self.ex.id.startswith("binance"):
            return "countdown"
        if self.ex.has.get("cancelAllOrdersAfter"):
            return "after"
        return "none"

    def due(self) -> bool:
        return not self.stopped and self.mode != "none" and time.monotonic() >= self.next_at

    async def refresh(self) -> None:
        self.next_at = time.monotonic() + self.interval
        await self._set(self.timeout_ms)

    async def disarm(self) -> None:
        self.stopped = True  # no refresh may re-arm it after this
        if self.armed:
            await self._set(0)

    async def _set(self, ms: int) -> None:
        if self.mode == "countdown":
            for sym in self.symbols:
                mid = self.ex.market(sym)["id"]
                await self.guard.call("countdown_cancel_all", self.ex.fapiPrivatePostCountdownCancelAll,
                                      {"symbol": mid, "countdownTime": ms}, essential=True)
                self._mark(sym, ms > 0)
        elif self.mode == "after":
            await self.guard.call("cancel_all_orders_after", self.ex.cancel_all_orders_after, ms,
                                  essential=True)
            for sym in self.symbols:
                self._mark(sym, ms > 0)
        log.info("event=dms_%s timeout_ms=%d symbols=%d", "armed" if ms else "disarmed", ms,
                 len(self.symbols))

    def _mark(self, sym: str, armed: bool) -> None:
        (self.armed.add if armed else self.armed.discard)(sym)
        METRICS.set("flatguard_dms_armed", 1.0 if armed else 0.0, symbol=sym)
