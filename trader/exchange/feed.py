"""The event feed: account and market events from the exchange, over WebSocket or REST polling.

ccxt.pro facts this is built around (ccxt 4.5.90): it does not reconnect by itself (a pending
``watch_*`` raises NetworkError; calling it again reconnects); it sends one listenKey keep-alive
and then stops (we PUT it every ``keepalive_interval``, default ``LISTEN_KEY_KEEPALIVE``); it
ignores Binance's ``listenKeyExpired`` event (the socket stays open and silent) and, after a
drop, reconnects with the cached (possibly dead) key; it never re-fetches positions after a
reconnect. So:

* ``listenKeyExpired``, -1125 on the keep-alive, or a user-stream reconnect that keeps failing
  restart the user-data stream: the cached key is dropped, the private socket is failed (its
  pending watches raise NetworkError), and the next watch fetches a new key and reconnects;
* every watch loop that recovers from a failure asks for a REST reconcile
  (``sink.reconnected``): nothing lost in the gap stays lost;
* the feed vouches for the account (``vouched()``) only while every loop is subscribed.

Market data does not go through ccxt.pro where the venue reads its own streams
(``Venue.market_streams``, ``mdstream.py``): one task wake-up per tick instead of two. Those
loops fail, back off, settle and count exactly like the watches they replace (same names).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ccxt.base.errors import NetworkError

from trader.exchange import errors as E
from trader.exchange import numbers as N
from trader.exchange.calls import BACKOFF_CAP, Guard
from trader.exchange.mdstream import StreamReader
from trader.exchange.venues import VENUES
from trader.exchange.venues.base import MarketStream, Quote

log = logging.getLogger("flatguard.feed")

LISTEN_KEY_KEEPALIVE = 30 * 60.0  # s; Binance expires a key 60 min after its last keep-alive
SETTLED = 1.0  # s a re-issued watch must stay pending (or deliver) to count as reconnected
RESTART_MIN_GAP = 1.0  # s between two user-stream restarts (the four loops fail together)
USER_STREAM = frozenset({"watch_orders", "watch_my_trades", "watch_positions", "watch_balance"})
# A handshake refused for a dead key: aiohttp's "400, message='Invalid response status',
# url='.../private/ws?listenKey=...'" (Binance answers -1125 there; ccxt drops the body).
_KEY_REFUSED = re.compile(r"\b4\d\d\b.*listenKey=", re.S)


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

    def __init__(self, ex: Any, guard: Guard, symbols: list[str], sink: Sink,
                 keepalive_interval: float = LISTEN_KEY_KEEPALIVE,
                 streams: list[MarketStream] | None = None) -> None:
        """``streams``: the market-data sockets read here; None asks the venue at ``start``
        (markets loaded by then), [] leaves market data to ccxt.pro's watches."""
        self.ex = ex
        self.guard = guard
        self.symbols = symbols
        self.sink = sink
        self.tasks: list[asyncio.Task[None]] = []
        self.failing: set[str] = set()
        self.settled: set[str] = set()  # loops whose watch has subscribed at least once
        self.streak: dict[str, int] = {}  # consecutive failures per loop
        self.keepalive_interval = keepalive_interval
        self.keepalive_at = time.monotonic() + keepalive_interval
        self.restarts = 0
        self._restarted_at = 0.0
        self._restart_task: asyncio.Task[None] | None = None
        self.streams = streams
        self.reader = StreamReader()
        self._hook_messages()

    @property
    def is_connected(self) -> bool:
        return (bool(self.tasks) and not self.failing and len(self.settled) == len(self.tasks)
                and self._sockets_open())

    def vouched(self) -> float:
        """Up to when this feed vouches for the account: now while every loop is subscribed."""
        return time.time() if self.is_connected else 0.0

    def _hook_messages(self) -> None:
        """ccxt drops ``listenKeyExpired``: see it first (set before any socket exists, since a
        ccxt client binds ``handle_message`` when it is created)."""
        orig = self.ex.handle_message

        def handle(client: Any, message: Any) -> Any:
            body = message.get("data", message) if isinstance(message, dict) else None
            if isinstance(body, dict) and body.get("e") == "listenKeyExpired":
                log.warning("event=listen_key_expired action=restart_user_stream")
                self.request_restart("listenKeyExpired")
                return None
            try:
                return orig(client, message)
            except (ValueError, ArithmeticError) as e:
                # ccxt's parser choked on a "NaN" (e.g. ACCOUNT_UPDATE positionAmt). Raised
                # here it would end ccxt's receive loop and leave an open, silent socket.
                kind = body.get("e") if isinstance(body, dict) else None
                self._bad(N.refuse("unparseable", str(e)[:80], f"stream event {kind}"))
                return None

        self.ex.handle_message = handle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.sink
        specs: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[Any], None]]] = [
            ("watch_orders", self.ex.watch_orders, lambda r: [s.on_order(o) for o in r]),
            ("watch_my_trades", self.ex.watch_my_trades, lambda r: [s.on_trade(t) for t in r]),
            ("watch_positions", self.ex.watch_positions, lambda r: [s.on_position(p) for p in r]),
            ("watch_balance", self.ex.watch_balance, s.on_balance),
        ]
        if self.streams is None:
            cls = VENUES.get(str(getattr(self.ex, "id", "")))
            self.streams = cls().market_streams(self.ex, self.symbols) if cls else []
        for st in self.streams:
            self.tasks.append(loop.create_task(self._stream_loop(st), name=st.name))
        for sym in self.symbols if not self.streams else []:
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
        key = f"{name}:{id(fn)}"
        while True:
            try:
                result = await self._watch(key, name, fn)
            except E.Transient as t:
                await self._failed(key, name, t)
                continue
            except E.ExchangeCallError:
                return  # fatal (reported by the guard) or rejected: this loop is done
            except N.BadExchangeData as e:  # a REST snapshot inside the watch made no sense
                self._bad(e)
                await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** self.streak.get(key, 0)))
                self.streak[key] = self.streak.get(key, 0) + 1
                continue
            self._settle(key, name)
            try:
                handle(result)
            except Exception:  # noqa: BLE001 - a bad event must not end the feed
                log.exception("event=feed_handler_error call=%s", name)

    async def _failed(self, key: str, name: str, t: E.Transient) -> None:
        """A loop's watch or socket failed: not connected until it settles again; back off."""
        n = self.streak.get(key, 0)
        self.streak[key] = n + 1
        if key not in self.failing:
            was = self.is_connected
            self.failing.add(key)
            if was:
                self.sink.connected(False)
        if name in USER_STREAM and (t.classification.outcome == "relisten" or n >= 1
                                    or _KEY_REFUSED.search(str(t.__cause__ or t))):
            self.request_restart(f"{name} failing: {t.classification.detail[:120]}")
        await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** n))

    async def _stream_loop(self, st: MarketStream) -> None:
        """A market-data socket read here: its reader returns only by raising."""
        key = f"{st.name}:{st.url}"
        sink, guard = self.sink, self.guard

        def acked() -> None:
            if key not in self.settled or key in self.failing:
                self._settle(key, st.name)

        def quotes(qs: list[Quote]) -> None:
            for q in qs:
                try:
                    sink.on_md(q.symbol, q.mark, q.bid, q.ask, q.ts)
                except Exception:  # noqa: BLE001 - a bad event must not end the feed
                    log.exception("event=feed_handler_error call=%s", st.name)
            guard.succeeded(st.name)  # an answer from the exchange, as a watch's result was

        def unreadable(text: str) -> None:
            self._bad(N.refuse("unparseable", text, f"stream {st.name}"))

        while True:
            try:
                await guard.attempt(st.name, self.reader.read, key, st, acked, quotes,
                                    unreadable, essential=True, counted=False)
            except E.Transient as t:
                await self._failed(key, st.name, t)
            except E.ExchangeCallError:
                return  # fatal (reported by the guard): this loop is done

    def _bad(self, e: N.BadExchangeData) -> None:
        bad = getattr(self.sink, "bad", None)  # the connector's Boundary taints the feed
        if bad is not None:
            bad(e)

    async def _watch(self, key: str, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """One watch. A watch that stays pending for ``SETTLED`` s has subscribed (an account
        stream may carry no event for a long time): after a failure, that ends the gap."""
        if key in self.settled and key not in self.failing:
            return await self.guard.attempt(name, fn, essential=True, counted=False)
        task = asyncio.ensure_future(self.guard.attempt(name, fn, essential=True, counted=False))
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=SETTLED)
            if not done and self._sockets_open():
                self._settle(key, name)  # pending on an open socket: subscribed
                break
        return await task

    def _sockets_open(self) -> bool:
        """Every ccxt WebSocket client is connected (a watch can also be pending while ccxt
        waits out its dial backoff before a connect that will fail)."""
        clients = [c for url, c in self._ws_clients() if not self._stale(url)]
        return (bool(clients) and not any(c.closed() for c in clients)
                and self.reader.all_open())

    def _ws_clients(self) -> list[tuple[str, Any]]:
        return [(str(url), c) for url, c in (getattr(self.ex, "clients", None) or {}).items()
                if str(url).startswith(("ws://", "wss://"))]

    def _stale(self, url: str) -> bool:
        """A private socket for a listen key that is no longer ours (left by a failed dial)."""
        if "listenKey=" not in url:
            return False
        key = (self.ex.options.get("linear") or {}).get("listenKey")
        return not key or not url.endswith("listenKey=" + str(key))

    def _settle(self, key: str, name: str) -> None:
        self.streak.pop(key, None)
        first = key not in self.settled
        recovered = key in self.failing
        if not (first or recovered):
            return
        self.settled.add(key)
        self.failing.discard(key)
        self.guard.reset(name)
        if self.is_connected:
            self.sink.connected(True)
        if recovered and not name.startswith(("watch_mark", "watch_bids")):
            self.sink.reconnected(name)

    # --- the user-data stream's listen key -----------------------------------------------

    async def housekeeping(self) -> None:
        """Keep the listen key alive ourselves (ccxt renews it once, then never again)."""
        for url, c in self._ws_clients():
            if self._stale(url) and c.closed():
                self.ex.clients.pop(url, None)  # a dead key's socket: never coming back
        if time.monotonic() < self.keepalive_at:
            return
        self.keepalive_at = time.monotonic() + self.keepalive_interval
        opts = self.ex.options.get("linear") or {}
        if not opts.get("listenKey") or not hasattr(self.ex, "fapiPrivatePutListenKey"):
            return
        try:
            await self.guard.attempt("keepalive_listen_key", self.ex.fapiPrivatePutListenKey, {},
                                     counted=False)  # bounded by the key's own 60 min
            log.info("event=listen_key_kept_alive")
        except E.Transient as t:
            if t.classification.outcome == "relisten":
                self.request_restart("keep-alive: listen key gone")
            else:
                self.keepalive_at = time.monotonic() + min(60.0, self.keepalive_interval)

    def request_restart(self, why: str) -> None:
        if self._restart_task is not None and not self._restart_task.done():
            return
        if time.monotonic() - self._restarted_at < RESTART_MIN_GAP:
            return
        self._restart_task = asyncio.get_running_loop().create_task(self.restart_user_stream(why))

    async def restart_user_stream(self, why: str) -> None:
        """The listen key is gone: mark it stale and fail the private socket; the loops
        reconnect with a new key (ccxt's ``authenticate`` POSTs one when
        ``lastAuthenticatedTime`` is 0)."""
        self._restarted_at = time.monotonic()
        self.restarts += 1
        opts = self.ex.options.setdefault("linear", {})
        # Only the age is reset: a watch between ccxt's authenticate() and its URL lookup must
        # still find a key (None raises AuthenticationError: fatal); the next one POSTs anew.
        opts["lastAuthenticatedTime"] = 0
        log.warning("event=user_stream_restart why=%r restarts=%d", why, self.restarts)
        for url, client in self._ws_clients():
            if "listenKey=" in url or "/private/" in url:
                try:
                    client.on_error(NetworkError(f"user stream restarted: {why}"))
                except Exception:  # noqa: BLE001 - the socket may already be gone
                    pass
                self.ex.clients.pop(url, None)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self._restart_task is not None:
            self._restart_task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.reader.close()


class PollFeed:
    """REST polling every ``interval``: the same events, found by comparing snapshots.

    A poll reads quotes and fills; positions, orders and balance come from the REST reconcile
    every successful poll asks for. So the account is vouched for up to the last successful
    reconcile (``Account.confirmed``), never by the poll loop itself: ``vouched()`` is 0.
    """

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
            except (E.Transient, N.BadExchangeData) as e:
                self.is_connected = False
                self.sink.connected(False)
                bad = getattr(self.sink, "bad", None)
                if isinstance(e, N.BadExchangeData) and bad is not None:
                    bad(e)
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

    def vouched(self) -> float:
        return 0.0

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
