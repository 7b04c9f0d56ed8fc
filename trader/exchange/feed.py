"""The event feed: account and market events from the exchange, over WebSocket or REST polling.

ccxt.pro facts this is built around (ccxt 4.5.90): it does not reconnect by itself (a pending
``watch_*`` raises NetworkError; calling it again reconnects); it sends one listenKey keep-alive
and then stops (we PUT it every ``LISTEN_KEY_KEEPALIVE``); it never re-fetches positions after a
reconnect. So every watch loop that recovers from a failure asks for a REST reconcile
(``sink.reconnected``): nothing lost in the gap stays lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from trader.exchange import errors as E
from trader.exchange.calls import BACKOFF_CAP, Guard

log = logging.getLogger("flatguard.feed")

LISTEN_KEY_KEEPALIVE = 30 * 60.0
SETTLED = 1.0  # s a re-issued watch must stay pending (or deliver) to count as reconnected


class Sink(Protocol):
    def on_md(self, symbol: str, mark: float | None, bid: float | None, ask: float | None,
              ts: float | None) -> None: ...
    def on_order(self, o: dict[str, Any]) -> None: ...
    def on_trade(self, t: dict[str, Any]) -> None: ...
    def on_position(self, p: dict[str, Any]) -> None: ...
    def on_balance(self, b: dict[str, Any]) -> None: ...
    def reconnected(self, why: str) -> None: ...
    def connected(self, ok: bool) -> None: ...


class WsFeed:
    kind = "ws"

    def __init__(self, ex: Any, guard: Guard, symbols: list[str], sink: Sink) -> None:
        self.ex = ex
        self.guard = guard
        self.symbols = symbols
        self.sink = sink
        self.tasks: list[asyncio.Task[None]] = []
        self.failing: set[str] = set()
        self.keepalive_at = time.monotonic() + LISTEN_KEY_KEEPALIVE

    @property
    def is_connected(self) -> bool:
        return not self.failing

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.sink
        specs: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], None]]] = [
            ("watch_orders", self.ex.watch_orders, lambda r: [s.on_order(o) for o in r]),
            ("watch_my_trades", self.ex.watch_my_trades, lambda r: [s.on_trade(t) for t in r]),
            ("watch_positions", self.ex.watch_positions, lambda r: [s.on_position(p) for p in r]),
            ("watch_balance", self.ex.watch_balance, s.on_balance),
        ]
        for sym in self.symbols:
            specs.append(("watch_mark_price", _bind(self.ex.watch_mark_price, sym),
                          lambda t: s.on_md(t["symbol"], t.get("markPrice"), None, None,
                                            t.get("timestamp"))))
            specs.append(("watch_bids_asks", _bind(self.ex.watch_bids_asks, [sym]),
                          lambda r: [s.on_md(t["symbol"], None, t.get("bid"), t.get("ask"),
                                             t.get("timestamp")) for t in r.values()]))
        for name, fn, handle in specs:
            self.tasks.append(loop.create_task(self._loop(name, fn, handle), name=name))

    async def _loop(self, name: str, fn: Callable[[], Awaitable[Any]],
                    handle: Callable[[Any], None]) -> None:
        n = 0
        key = f"{name}:{id(fn)}"
        while True:
            try:
                if key in self.failing:
                    result = await self._recovering(key, name, fn)
                else:
                    result = await self.guard.attempt(name, fn, essential=True)
            except E.Transient:
                if key not in self.failing:
                    self.failing.add(key)
                    self.sink.connected(False)
                await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** n))
                n += 1
                continue
            except E.ExchangeCallError:
                return  # fatal (reported by the guard) or rejected: this loop is done
            if key in self.failing:
                self._recovered(key, name)
            n = 0
            try:
                handle(result)
            except Exception:  # noqa: BLE001 - a bad event must not end the feed
                log.exception("event=feed_handler_error call=%s", name)

    async def _recovering(self, key: str, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """After a failure: a watch that stays pending for ``SETTLED`` s has resubscribed (an
        account stream may carry no event for a long time), so the gap is over: reconcile."""
        task = asyncio.ensure_future(self.guard.attempt(name, fn, essential=True))
        done, _ = await asyncio.wait({task}, timeout=SETTLED)
        if not done:
            self._recovered(key, name)
        return await task

    def _recovered(self, key: str, name: str) -> None:
        if key not in self.failing:
            return
        self.failing.discard(key)
        self.sink.connected(not self.failing)
        if not name.startswith(("watch_mark", "watch_bids")):
            self.sink.reconnected(name)

    async def housekeeping(self) -> None:
        """Keep the listen key alive ourselves (ccxt renews it once, then never again)."""
        if time.monotonic() < self.keepalive_at:
            return
        self.keepalive_at = time.monotonic() + LISTEN_KEY_KEEPALIVE
        opts = self.ex.options.get("linear") or {}
        if not opts.get("listenKey") or not hasattr(self.ex, "fapiPrivatePutListenKey"):
            return
        try:
            await self.guard.call("keepalive_listen_key", self.ex.fapiPrivatePutListenKey, {})
        except E.Rejected:
            await self.restart_user_stream()

    async def restart_user_stream(self) -> None:
        """The listen key is gone: forget it and drop the sockets; the loops reconnect."""
        opts = self.ex.options.setdefault("linear", {})
        opts["listenKey"] = None
        opts["lastAuthenticatedTime"] = 0
        for client in list(getattr(self.ex, "clients", {}).values()):
            try:
                await client.close()
            except Exception:  # noqa: BLE001
                pass

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PollFeed:
    """REST polling every ``interval``: the same events, found by comparing snapshots."""

    kind = "poll"

    def __init__(self, ex: Any, guard: Guard, symbols: list[str], sink: Sink,
                 interval: float) -> None:
        self.ex = ex
        self.guard = guard
        self.symbols = symbols
        self.sink = sink
        self.interval = interval
        self.tasks: list[asyncio.Task[None]] = []
        self.is_connected = False
        self._seen_trades: set[str] = set()
        self._since = int(time.time() * 1000) - 60_000

    def start(self) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(self._loop(), name="poll"))

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
                if not self.is_connected:
                    self.is_connected = True
                    self.sink.connected(True)
            except E.Transient:
                self.is_connected = False
                self.sink.connected(False)
            except E.ExchangeCallError:
                return
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> None:
        g, ex, s = self.guard, self.ex, self.sink
        quotes = await g.attempt("fetch_bids_asks", ex.fetch_bids_asks, self.symbols,
                                 essential=False)  # bookTicker: weight 5, not 24hr's 40
        for sym, t in quotes.items():
            if sym in self.symbols:
                s.on_md(sym, None, t.get("bid"), t.get("ask"), t.get("timestamp"))
        for sym in self.symbols:
            trades = await g.attempt("fetch_my_trades", ex.fetch_my_trades, sym, self._since,
                                     essential=False)
            for t in trades:
                if t["id"] not in self._seen_trades:
                    self._seen_trades.add(t["id"])
                    s.on_trade(t)
        self._since = max(self._since, int(time.time() * 1000) - 60_000)
        # orders, positions and balance come from the reconcile the poll triggers
        s.reconnected("poll")

    async def housekeeping(self) -> None:
        return None

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _bind(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await fn(*args)
    return call
