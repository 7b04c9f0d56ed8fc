"""Request weight and bans: fixed shares of the IP's budget, the kill path's reserve untouchable.

The venue's weight header (Binance: ``X-MBX-USED-WEIGHT-1M``, read by ``Venue.weight_used``) is
the IP's total for the current minute, whichever process spent it, so every process reads the
same number from its own responses (``calls.install_recorder``). The budget
``weight_limit`` is split into **fixed shares**; no process asks another for permission (the
trader must still reach the connector when the supervisor is gone):

* the kill path (the supervisor's own session) may use up to the whole ``weight_limit``;
* the connector never uses the top ``weight_reserve`` of it: its essential calls (orders,
  cancels, the dead-man switch, the feed) wait for the next minute window once the IP's weight
  reaches ``(1 - weight_reserve) x weight_limit``, its non-essential calls (polling,
  reconciles, refreshes) already at ``weight_headroom x (1 - weight_reserve) x weight_limit``.

So however hard the connector runs, a quarter of the minute's weight (by default) is left for
the flatten. A ban (HTTP 418/429) is not a share: it stops every process until it ends, through
the ban board (``ban.py``), which this class consults so a waiting call sleeps instead of
failing (the board's ``fetch`` wrapper is the backstop that never lets a request out).
"""

from __future__ import annotations

import asyncio
import logging
import time

from trader.exchange.ban import BanBoard
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard.ratelimit")

WINDOW_MARGIN_S = 0.05  # past the minute boundary before the weight counts as reset
BAN_POLL_S = 1.0  # a waiting call re-reads the board this often (another process may extend it)


class RateLimits:
    def __init__(self, limit: int = 2400, headroom: float = 0.8, reserve: float = 0.0,
                 board: BanBoard | None = None) -> None:
        self.limit = limit
        self.headroom = headroom
        self.reserve = reserve
        self.board = board if board is not None else BanBoard()
        self.used = 0
        self._minute = 0  # wall-clock minute the weight was read in (Binance's window)
        self.waits = 0

    @property
    def share(self) -> float:
        """The weight this process may use in a minute (essential calls)."""
        return (1.0 - self.reserve) * self.limit

    def weight_used(self) -> int:
        return self.used if int(time.time() // 60) == self._minute else 0

    def banned_for(self) -> float:
        return self.board.banned_for()

    def observe(self, used: int) -> None:
        """The weight a response reported used this minute (bans are recorded by the board's
        hook)."""
        self.used, self._minute = used, int(time.time() // 60)
        METRICS.set("flatguard_exchange_weight_used", self.used)

    def delay(self, essential: bool) -> float:
        """Seconds this call should wait now (0 = go)."""
        wait = self.board.banned_for()
        cap = self.share if essential else self.headroom * self.share
        if self.weight_used() >= cap:
            wait = max(wait, 60.0 - time.time() % 60 + WINDOW_MARGIN_S)
        return wait

    async def wait(self, essential: bool) -> float:
        """Sleep until this call may go; returns the seconds waited."""
        waited = 0.0
        while (d := self.delay(essential)) > 0:
            if waited == 0.0:
                self.waits += 1
                log.info("event=rate_wait essential=%s seconds=%.1f weight=%d banned_s=%.0f",
                         essential, d, self.weight_used(), self.board.banned_for())
            step = min(d, BAN_POLL_S)
            await asyncio.sleep(step)
            waited += step
        return waited
