"""Bounded per-sink queues, exact accounting, de-duplication and per-sink rate limits.

Nothing here grows without bound: a queue that is full drops the new message and counts it;
the de-duplicator holds at most one entry per key seen within its window (and at most
``MAX_KEYS`` keys; beyond that it stops merging rather than grow).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from notifier.message import Notification
from trader.kernel.metrics import METRICS

OUTCOMES = ("published", "sent", "dropped", "failed")
MAX_KEYS = 10_000


@dataclass
class SinkStats:
    """Counts of one sink over both lanes. Invariant: published = sent + dropped + failed + queued."""

    sink: str
    published: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    queued: int = 0  # waiting in a queue or in flight

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome == "published":
            self.queued += 1
        elif outcome in ("sent", "failed"):
            self.queued -= 1
        METRICS.inc("flatguard_notifications_total", sink=self.sink, outcome=outcome)
        if outcome == "dropped":
            METRICS.inc("flatguard_notifications_dropped_total", sink=self.sink)

    def as_dict(self) -> dict[str, int]:
        return {o: getattr(self, o) for o in (*OUTCOMES, "queued")}


class SinkQueue:
    """A bounded FIFO with an async ``get``; ``offer`` never blocks and never grows past ``size``."""

    def __init__(self, size: int, stats: SinkStats) -> None:
        self.size = size
        self.stats = stats
        self._items: collections.deque[Notification] = collections.deque()
        self._ready = asyncio.Event()

    def offer(self, n: Notification) -> bool:
        self.stats.count("published")
        if len(self._items) >= self.size:
            self.stats.queued -= 1
            self.stats.count("dropped")
            return False
        self._items.append(n)
        self._ready.set()
        return True

    async def get(self) -> Notification:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class RateLimiter:
    """At most ``per_minute`` sends in any 60 s window, and ``min_interval`` s between two sends."""

    def __init__(self, per_minute: int, min_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.min_interval = min_interval
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()

    def delay(self) -> float:
        """Seconds to wait before the next send may go (0 = now)."""
        now = self._clock()
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        wait = 0.0
        if len(self._sent) >= self.per_minute:
            wait = self._sent[0] + 60.0 - now
        if self._sent and self.min_interval:
            wait = max(wait, self._sent[-1] + self.min_interval - now)
        return max(0.0, wait)

    def record(self) -> None:
        self._sent.append(self._clock())

    async def acquire(self) -> None:
        while (d := self.delay()) > 0:
            await asyncio.sleep(d)
        self.record()


@dataclass
class _Window:
    first: Notification
    until: float
    merged: int = 0  # copies suppressed after the first
    last: Notification | None = None


class Deduper:
    """Identical keys within ``window`` s: the first goes out at once, the copies are merged
    into one summary ("title (x12)") sent when the window closes."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._open: dict[str, _Window] = {}
        self.suppressed = 0

    def admit(self, n: Notification) -> bool:
        """True if ``n`` should go out now; False if it was merged into an open window."""
        if self.window <= 0:
            return True
        w = self._open.get(n.key)
        now = self._clock()
        if w is not None and now < w.until:
            w.merged += 1
            w.last = n
            self.suppressed += 1
            return False
        if w is None and len(self._open) >= MAX_KEYS:
            return True  # pathological key churn: stop merging rather than grow
        self._open[n.key] = _Window(n, now + self.window)
        return True

    def flush(self, force: bool = False) -> list[Notification]:
        """Close expired windows; return one summary per window that merged copies."""
        now = self._clock()
        out = []
        for key in [k for k, w in self._open.items() if force or now >= w.until]:
            w = self._open.pop(key)
            if w.merged and w.last is not None:
                out.append(w.last.with_(count=w.merged + 1))
        return out
