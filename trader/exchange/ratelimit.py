"""Request weight: track Binance's ``X-MBX-USED-WEIGHT-1M``, honour Retry-After, keep headroom.

The kill path is the supervisor's own ccxt session but the same IP, so an IP ban (HTTP 418)
earned by this connector would blind it. Above ``headroom`` of the limit, non-essential calls
(polling, reconcile, refreshes) wait for the next minute window; order traffic keeps going.
After a 429/418 every call waits out Retry-After (calling anyway escalates to a ban).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from trader.metrics import METRICS

log = logging.getLogger("flatguard.ratelimit")

WEIGHT_HEADER = "x-mbx-used-weight-1m"
DEFAULT_RETRY_AFTER = 5.0


class RateLimits:
    def __init__(self, limit: int = 2400, headroom: float = 0.8) -> None:
        self.limit = limit
        self.headroom = headroom
        self.used = 0
        self._minute = 0  # wall-clock minute the weight was read in (Binance's window)
        self.blocked_until = 0.0  # monotonic
        self.waits = 0

    def weight_used(self) -> int:
        return self.used if int(time.time() // 60) == self._minute else 0

    def observe(self, headers: Mapping[str, str] | None, status: int | None) -> None:
        if headers:
            low = {k.lower(): v for k, v in headers.items()}
            w = low.get(WEIGHT_HEADER)
            if w is not None and w.isdigit():
                self.used, self._minute = int(w), int(time.time() // 60)
                METRICS.set("flatguard_exchange_weight_used", self.used)
            if status in (418, 429):
                try:
                    after = float(low.get("retry-after", DEFAULT_RETRY_AFTER))
                except ValueError:
                    after = DEFAULT_RETRY_AFTER
                self.blocked_until = max(self.blocked_until, time.monotonic() + after)
                log.warning("event=rate_limited status=%s retry_after_s=%.1f", status, after)

    def delay(self, essential: bool) -> float:
        """Seconds this call should wait now (0 = go)."""
        wait = max(0.0, self.blocked_until - time.monotonic())
        if not essential and self.weight_used() >= self.headroom * self.limit:
            wait = max(wait, 60.0 - time.time() % 60 + 0.05)
        return wait

    async def wait(self, essential: bool) -> None:
        d = self.delay(essential)
        if d > 0:
            self.waits += 1
            await asyncio.sleep(d)
