"""Exchange time: the offset between the exchange's clock and ours, kept fresh.

ccxt signs Binance requests with ``nonce() = local ms - options['timeDifference']`` where
``timeDifference = local - server`` (``load_time_difference``). We refresh it at start-up, every
``interval`` seconds, on -1021 (the guarded-call wrapper asks), and when event timestamps from
the feed disagree with it by more than ``DRIFT_S`` (a clock step between refreshes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard.clock")

WARN_S = 1.0  # |offset| above this is worth a person's attention
DRIFT_S = 1.0  # event-time disagreement that triggers a resync


class ExchangeClock:
    def __init__(self, ex: Any, warn: Callable[[str, str], None] | None = None) -> None:
        self.ex = ex
        self.offset_s = 0.0  # exchange minus local, seconds
        self.synced_at = 0.0  # monotonic
        self._warn = warn
        self._warned = False
        self.resync_wanted = False

    async def sync(self) -> float:
        diff_ms = await self.ex.load_time_difference()  # local - server
        self.offset_s = -float(diff_ms) / 1000.0
        self.synced_at = time.monotonic()
        self.resync_wanted = False
        METRICS.set("flatguard_clock_offset_seconds", self.offset_s)
        big = abs(self.offset_s) > WARN_S
        if big and not self._warned and self._warn is not None:
            self._warn("clock offset", f"local clock is {self.offset_s:+.3f} s off the exchange's; "
                       "requests are signed with exchange time, but fix NTP on this host")
        self._warned = big
        log.info("event=clock_sync offset_s=%.3f", self.offset_s)
        return self.offset_s

    def due(self, interval: float) -> bool:
        return self.resync_wanted or time.monotonic() - self.synced_at >= interval

    def observe_event(self, exchange_ts_ms: float | None) -> None:
        """An event stamped by the exchange arrived now: the offset can't be below ts - now."""
        if not exchange_ts_ms:
            return
        seen = exchange_ts_ms / 1000.0 - time.time()  # offset minus delivery latency
        if seen - self.offset_s > DRIFT_S:
            self.resync_wanted = True

    def now_ms(self) -> int:
        return int((time.time() + self.offset_s) * 1000)
