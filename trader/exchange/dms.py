"""The exchange-side dead-man switch: orders are cancelled by the exchange if we go silent.

How it is armed is the venue's (``Venue.dms_mode``/``dms_set``; Binance USDⓈ-M:
``countdownCancelAll`` per symbol); a venue without one has mode "none". It is refreshed every
``dms_interval`` only while the trader's ``alive`` is fresh: a hung trader stops the refresh and
the exchange cancels its orders after ``dms_timeout`` (it does not close positions; the
supervisor's kill switch does).

It is disarmed (countdownTime = 0) only when the supervisor says so (``dms.disarm``: after a
verified flat at an orderly stop, and on ``resume``); refreshing then stays off until a trader
is alive again. A connector that stops for any other reason (SIGTERM, supervisor lost) stops
refreshing and leaves it armed: the exchange cancels every order when it runs out. Refresh and
disarm are serialised, so a refresh in flight can never re-arm it after a disarm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from trader.exchange.calls import Guard
from trader.exchange.venues.base import Venue
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard.dms")


class DeadManSwitch:
    def __init__(self, ex: Any, guard: Guard, symbols: list[str], interval: float,
                 timeout: float, *, venue: Venue) -> None:
        self.ex = ex
        self.venue = venue
        self.guard = guard
        self.symbols = list(symbols)
        self.interval = interval
        self.timeout_ms = int(round(timeout * 1000))
        self.armed: set[str] = set()
        self.next_at = 0.0  # monotonic
        self.mode = venue.dms_mode(ex)
        self.stopped = False
        self.disarmed_at: float | None = None  # monotonic; refresh resumes at the next alive
        self.set_at = 0.0  # monotonic time of the last countdown sent
        self._lock = asyncio.Lock()

    def due(self) -> bool:
        return not self.stopped and self.mode != "none" and time.monotonic() >= self.next_at

    def fires_in(self) -> float:
        """Seconds until the exchange's countdown runs out (if nobody refreshes it)."""
        return max(0.0, self.set_at + self.timeout_ms / 1000.0 - time.monotonic())

    def trader_alive(self) -> None:
        """A trader is alive: a countdown disarmed by the supervisor may be refreshed again."""
        if self.disarmed_at is not None and time.monotonic() > self.disarmed_at:
            self.disarmed_at = None
            self.stopped = False
            log.info("event=dms_refresh_resumed")

    async def refresh(self) -> None:
        self.next_at = time.monotonic() + self.interval
        async with self._lock:
            if self.stopped:
                return  # disarmed (or stopping) while this refresh waited
            self.set_at = time.monotonic()
            await self._set(self.timeout_ms)

    async def disarm(self) -> None:
        self.stopped = True  # no refresh may re-arm it after this
        self.disarmed_at = time.monotonic()
        async with self._lock:
            await self._set(0)  # even if not armed by us: a connector before us may have

    async def _set(self, ms: int) -> None:
        for sym in self.symbols if self.mode != "none" else ():
            # one at a time: a symbol is marked armed once the exchange has it
            await self.venue.dms_set(self.ex, self.guard.call, [sym], ms)
            self._mark(sym, ms > 0)
        log.info("event=dms_%s timeout_ms=%d symbols=%d", "armed" if ms else "disarmed", ms,
                 len(self.symbols))

    def _mark(self, sym: str, armed: bool) -> None:
        (self.armed.add if armed else self.armed.discard)(sym)
        METRICS.set("flatguard_dms_armed", 1.0 if armed else 0.0, symbol=sym)
