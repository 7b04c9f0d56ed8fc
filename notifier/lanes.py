"""Two lanes of per-sink workers: ``normal`` (info, warning) and ``emergency`` (critical).

Each (sink, lane) pair has its own bounded queue and its own task, so a sink that hangs delays
only itself, and an info flood fills normal queues (and is dropped there, counted) while the
emergency queues stay empty and their workers idle, ready. Critical alerts go to every emergency
sink (and the console) and are repeated every ``notify.repeat_interval`` until acknowledged
(``ack``, or the sink's own receipt) or ``notify.emergency_expiry``; non-emergency sinks get the
first delivery on their normal lane.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifier.errors import PermanentDelivery, TransientDelivery
from notifier.message import Notification
from notifier.queue import Deduper, RateLimiter, SinkQueue, SinkStats
from notifier.sinks.base import Sink
from trader.kernel.config import NotifyConfig
from trader.kernel.proc import kv
from trader.kernel.protocol import CRITICAL

if TYPE_CHECKING:  # aiohttp costs ~0.5 s to import: only lanes with an HTTP sink load it
    import aiohttp

log = logging.getLogger("flatguard.notifier")
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0  # a server asking for longer than this: count the message failed


class Worker:
    """Delivers one sink's messages of one lane: rate limit, split, retry, count."""

    def __init__(self, sink: Sink, lane: str, stats: SinkStats) -> None:
        self.sink, self.lane, self.stats = sink, lane, stats
        self.queue = SinkQueue(sink.cfg.queue_size, stats)
        self.limiter = RateLimiter(sink.cfg.rate_per_minute, sink.min_interval)
        self.in_flight = False

    @property
    def idle(self) -> bool:
        return not self.queue and not self.in_flight

    async def run(self, http: aiohttp.ClientSession | None) -> None:
        while True:
            n = await self.queue.get()
            self.in_flight = True
            try:
                ok = await self.deliver(http, n)
            finally:
                self.in_flight = False
            self.stats.count("sent" if ok else "failed")

    async def deliver(self, http: aiohttp.ClientSession | None, n: Notification) -> bool:
        try:
            for part in self.sink.parts(n):
                if not await self._send_part(http, n, part):
                    return False
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug in one sink must not stop its worker
            log.error(kv(event="sink_bug", sink=self.sink.name, error=type(e).__name__))
            return False
        return True

    async def _send_part(self, http: aiohttp.ClientSession | None, n: Notification,
                         part: str) -> bool:
        cfg, backoff = self.sink.cfg, self.sink.cfg.backoff
        for attempt in range(cfg.retries + 1):
            await self.limiter.acquire()
            try:
                await self.sink.send(http, n, part)
                return True
            except PermanentDelivery as e:
                log.warning(kv(event="notify_failed", sink=self.sink.name, key=n.key,
                               error=self.sink.scrub(str(e))))
                return False
            except TransientDelivery as e:
                wait = e.retry_after if e.retry_after is not None else backoff
                last = attempt == cfg.retries or wait > MAX_RETRY_AFTER
                log.warning(kv(event="notify_failed" if last else "notify_retry",
                               sink=self.sink.name, key=n.key, attempt=attempt + 1,
                               error=self.sink.scrub(str(e)), wait=round(wait, 3)))
                if last:
                    return False
                backoff = min(backoff * 2, MAX_BACKOFF)
                await asyncio.sleep(wait)
        return False


@dataclass
class Alert:
    n: Notification
    first: float
    next_repeat: float
    repeats: int = 0


class Alerts:
    """Unacknowledged critical alerts by key; pure (the clock is injected)."""

    def __init__(self, repeat_interval: float, expiry: float) -> None:
        self.repeat_interval, self.expiry = repeat_interval, expiry
        self.active: dict[str, Alert] = {}

    def raise_(self, n: Notification, now: float) -> bool:
        """True if ``n`` is a new alert; a copy of an active one only increases its count."""
        a = self.active.get(n.key)
        if a is not None:
            a.n = n.with_(count=a.n.count + 1)
            return False
        self.active[n.key] = Alert(n, now, now + self.repeat_interval)
        return True

    def due(self, now: float) -> list[Notification]:
        out = []
        for key, a in list(self.active.items()):
            if now - a.first >= self.expiry:
                log.warning(kv(event="alert_expired", key=key, repeats=a.repeats))
                del self.active[key]
            elif now >= a.next_repeat:
                a.repeats += 1
                a.next_repeat = now + self.repeat_interval
                out.append(a.n.with_(repeat=a.repeats))
        return out

    def ack(self, key: str | None) -> list[str]:
        keys = list(self.active) if key is None else [key] if key in self.active else []
        for k in keys:
            del self.active[k]
        return keys


class Dispatcher:
    """Routes notifications to the workers of both lanes and owns their tasks."""

    def __init__(self, sinks: Iterable[Sink], cfg: NotifyConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = {s.name: s for s in sinks}
        self.clock = clock
        self.stats = {name: SinkStats(name) for name in self.sinks}
        self.normal = {name: Worker(s, "normal", self.stats[name])
                       for name, s in self.sinks.items() if set(s.levels) - {CRITICAL}}
        self.emergency = {name: Worker(s, "emergency", self.stats[name])
                          for name, s in self.sinks.items()
                          if s.emergency and CRITICAL in s.levels}
        self.dedup = Deduper(cfg.dedup_window, clock)
        self.alerts = Alerts(cfg.repeat_interval, cfg.emergency_expiry)
        self.received = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._http: dict[str, aiohttp.ClientSession] = {}

    # --- routing (synchronous: never waits on a sink) ---

    def publish(self, n: Notification) -> None:
        self.received += 1
        if n.critical:
            if self.alerts.raise_(n, self.clock()):
                for w in self.emergency.values():
                    w.queue.offer(n)
                for name, w in self.normal.items():
                    if name not in self.emergency and CRITICAL in w.sink.levels:
                        w.queue.offer(n)
            return
        if self.dedup.admit(n):
            self._fan_out(n)

    def _fan_out(self, n: Notification) -> None:
        for w in self.normal.values():
            if n.level in w.sink.levels:
                w.queue.offer(n)

    def tick(self) -> None:
        """Send dedup summaries and due repeats; call at least once a second."""
        for n in self.dedup.flush():
            self._fan_out(n)
        for n in self.alerts.due(self.clock()):
            for w in self.emergency.values():
                if not w.sink.self_repeating:
                    w.queue.offer(n)

    def ack(self, key: str | None) -> list[str]:
        keys = self.alerts.ack(key)
        http = self._http.get("emergency")
        for k in keys:
            log.info(kv(event="alert_acked", key=k))
            for s in self.sinks.values():
                cancel = getattr(s, "cancel", None)
                if cancel is not None and http is not None:
                    self._spawn(cancel(http, k))
        return keys

    async def poll_receipts(self) -> None:
        """Acknowledge alerts that a person acknowledged in a sink's own app (Pushover)."""
        http = self._http.get("emergency")
        if http is None:
            return
        for key in list(self.alerts.active):
            for s in self.sinks.values():
                check = getattr(s, "acknowledged", None)
                if check is not None and await check(http, key):
                    log.info(kv(event="alert_acked_in_app", key=key, sink=s.name))
                    self.ack(key)
                    break

    def snapshot(self) -> dict[str, object]:
        return {
            "sinks": {name: st.as_dict() for name, st in self.stats.items()},
            "received": self.received,
            "deduped": self.dedup.suppressed,
            "alerts": [{"key": k, "title": a.n.title, "repeats": a.repeats, "count": a.n.count}
                       for k, a in self.alerts.active.items()],
        }

    # --- lifecycle ---

    async def start(self) -> None:
        for lane, workers in (("normal", self.normal), ("emergency", self.emergency)):
            http = None  # a console-only lane needs no session (nor aiohttp's import time)
            if any(w.sink.needs_http for w in workers.values()):
                import aiohttp

                http = aiohttp.ClientSession()  # one pool per lane: the lanes share no connection
                self._http[lane] = http
            for w in workers.values():
                self._tasks.append(asyncio.get_running_loop().create_task(w.run(http)))

    def _spawn(self, coro: object) -> None:
        t = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.append(t)

    def idle(self) -> bool:
        return all(w.idle for w in (*self.normal.values(), *self.emergency.values()))

    async def stop(self, drain: float) -> None:
        """Give queued messages up to ``drain`` s, then cancel; undelivered ones stay 'queued'."""
        deadline = time.monotonic() + drain
        while not self.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self.sinks.values():
            http = self._http.get("emergency")
            if http is not None:
                await s.close(http)
        for http in self._http.values():
            await http.close()
