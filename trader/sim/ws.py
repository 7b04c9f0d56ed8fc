"""WebSocket streams: market data and the listenKey user-data stream.

ccxt.pro builds its USDⓈ-M URLs from ``urls['api']['ws']['linear']`` = ``<base>/ws`` by
inserting a category: ``<base>/market/ws/<n>`` (markPrice, ticker), ``<base>/public/ws/<n>``
(bookTicker, depth) and ``<base>/private/ws?listenKey=<key>`` (user data); it then sends
``{"method": "SUBSCRIBE", "params": [...], "id": n}`` and expects ``{"result": null, "id": n}``.
Binance's official SDK opens the combined form of each category (``/market/stream``,
``/public/stream``, ``/private/stream`` with no key, then SUBSCRIBEs the listen key). Binance's
older forms (``/ws/<stream>``, ``/ws/<listenKey>``, ``/stream?streams=a/b``) work too. The
simulator serves every stream on every category path (Binance routes them by category).

Streams: ``<s>@markPrice[@1s]``, ``@bookTicker``, ``@ticker``, ``@miniTicker``,
``@depth<5|10|20>[@100ms|@250ms|@500ms]`` and ``@kline_<interval>`` (every market tick),
``@aggTrade`` (every fill), ``@forceOrder`` / ``!forceOrder@arr`` (the account's liquidations),
the ``!...@arr`` forms, and listen keys.

Each connection has a bounded send queue drained by its own task, so one slow reader never
stalls the market-data tick; a reader that falls too far behind is disconnected, as Binance
does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from trader.sim import events
from trader.sim.algo import AlgoOrder
from trader.sim.book import Account, Order, Position, Trade
from trader.sim.candles import INTERVALS, Candles
from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError
from trader.sim.garbage import Garbage
from trader.sim.market import INSTRUMENTS, PriceFeed

SEND_QUEUE = 2000
_SYMBOL_STREAM = re.compile(
    r"^([a-z0-9]+)@(markPrice(?:@1s|@3s)?|bookTicker|ticker|miniTicker|aggTrade|forceOrder"
    r"|depth(5|10|20)(?:@100ms|@250ms|@500ms)?|kline_([0-9]+[mhdwM]))$")
_ALL_STREAM = re.compile(
    r"^!(markPrice@arr(@1s|@3s)?|bookTicker|ticker@arr|miniTicker@arr|forceOrder@arr)$")
_EVENT_KINDS = ("aggTrade", "forceOrder")  # published when they happen, not every tick
WS_PATHS = ("/ws", "/stream") + tuple(f"/{category}/{form}" for category in (
    "market", "public", "private") for form in ("ws", "stream"))


@dataclass(eq=False)
class Conn:
    ws: web.WebSocketResponse
    combined: bool
    streams: set[str] = field(default_factory=set)
    listen_keys: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))

    def send(self, stream: str, payload: object, *, raw: bool = False) -> bool:
        """Queue a message; False when the reader is too far behind."""
        data = {"stream": stream, "data": payload} if self.combined and not raw else payload
        try:
            self.queue.put_nowait(json.dumps(data))
        except asyncio.QueueFull:
            return False
        return True


def valid_stream(name: str) -> bool:
    m = _SYMBOL_STREAM.match(name)
    if m:
        return m.group(1).upper() in INSTRUMENTS and (
            m.group(4) is None or m.group(4) in INTERVALS)
    return bool(_ALL_STREAM.match(name))


class StreamHub:
    """All WebSocket connections, the listen keys, and what gets published to whom."""

    def __init__(self, feed: PriceFeed, account: Account, clock: SimClock,
                 listen_key_ttl_s: float) -> None:
        self.feed = feed
        self.account = account
        self.clock = clock
        self.ttl = listen_key_ttl_s
        self.listen_keys: dict[str, float] = {}  # key -> monotonic expiry
        self.garbage = Garbage()  # the state's fault, shared (see garbage.py)
        self.candles = Candles()  # the state's candles, shared (for kline streams)
        # in connection order: a tick's frames leave in the same order on every run (a set's
        # order changed from run to run, and with it which stream of a tick came first)
        self.conns: dict[Conn, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        account.listeners.append(self)

    # ---- listen keys ----------------------------------------------------------------

    def create_listen_key(self) -> str:
        # Binance returns the account's live key (and extends it) rather than a new one.
        live = [k for k, exp in self.listen_keys.items() if exp > time.monotonic()]
        key = live[0] if live else secrets.token_urlsafe(48)[:64]
        self.listen_keys[key] = time.monotonic() + self.ttl
        return key

    def keepalive(self, key: str | None) -> str:
        live = [k for k, exp in self.listen_keys.items() if exp > time.monotonic()]
        target = key if key else (live[0] if live else None)
        if target is None or target not in live:
            raise BinanceError(-1125)
        self.listen_keys[target] = time.monotonic() + self.ttl
        return target

    def delete_listen_key(self, key: str | None) -> None:
        for k in [key] if key else list(self.listen_keys):
            self.listen_keys.pop(k, None)

    def expire_due(self, *, force: bool = False) -> int:
        """Expire keys past their TTL (or all): push ``listenKeyExpired``, then go silent."""
        now = time.monotonic()
        due = [k for k, exp in self.listen_keys.items() if force or exp <= now]
        for key in due:
            del self.listen_keys[key]
            for conn in self.conns:
                if key in conn.listen_keys:
                    conn.send(key, events.listen_key_expired(key, self.clock.now_ms()))
        return len(due)

    # ---- publishing -----------------------------------------------------------------

    def publish_market(self, symbols: list[str]) -> None:
        now = self.clock.now_ms()
        cache: dict[tuple[str, str], object] = {}

        def payload(kind: str, sym: str) -> object:
            if (kind, sym) not in cache:
                q = self.feed.quotes[sym]
                built: object
                if kind.startswith("depth"):
                    built = events.partial_depth(q, int(kind[5:].split("@")[0]), now)
                elif kind.startswith("kline_"):
                    built = events.kline(self.candles, q, kind[6:], now)
                else:
                    built = events.MARKET_KINDS[kind.split("@")[0]](q, now)
                if kind.startswith("markPrice"):
                    self.garbage.mark_stream(built)
                cache[(kind, sym)] = built
            return cache[(kind, sym)]

        for conn in list(self.conns):
            for stream in conn.streams:
                m = _SYMBOL_STREAM.match(stream)
                if m:
                    sym = m.group(1).upper()
                    if sym in symbols and m.group(2) not in _EVENT_KINDS:
                        built = payload(m.group(2), sym)
                        if built is not None:
                            self._send(conn, stream, built)
                    continue
                kind = stream[1:].split("@")[0]
                if kind in _EVENT_KINDS:
                    continue
                if kind == "bookTicker":
                    for sym in symbols:
                        self._send(conn, stream, payload(kind, sym))
                else:
                    self._send(conn, stream, [payload(kind, s) for s in symbols])

    def on_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        now = self.clock.now_ms()
        self._publish_user(events.order_trade_update(self.account, order, trade, exec_type, now))
        if trade is not None:
            name = f"{trade.symbol.lower()}@aggTrade"
            for conn in list(self.conns):
                if name in conn.streams:
                    self._send(conn, name, events.agg_trade(trade, now))

    def on_account(self, reason: str, positions: list[Position]) -> None:
        if not self._user_conns():
            return  # nobody listens: an injected garbage count is not used up
        payload = events.account_update(self.account, reason, positions, self.clock.now_ms())
        self.garbage.account_update(payload)
        self._publish_user(payload)

    def publish_user(self, payload: dict[str, object]) -> None:
        """A user-data event built elsewhere (MARGIN_CALL)."""
        self._publish_user(payload)

    def publish_force(self, symbol: str, payload: dict[str, object]) -> None:
        """A liquidation order on ``<symbol>@forceOrder`` and ``!forceOrder@arr``."""
        names = (f"{symbol.lower()}@forceOrder", "!forceOrder@arr")
        for conn in list(self.conns):
            for name in names:
                if name in conn.streams:
                    self._send(conn, name, payload)

    def on_algo(self, a: AlgoOrder, child: Order | None) -> None:
        self._publish_user(events.algo_update(a, child, self.clock.now_ms()))

    def _user_conns(self) -> list[tuple[Conn, str]]:
        live = {k for k, exp in self.listen_keys.items() if exp > time.monotonic()}
        return [(conn, key) for conn in list(self.conns) for key in conn.listen_keys & live]

    def _publish_user(self, payload: object) -> None:
        for conn, key in self._user_conns():
            self._send(conn, key, payload)

    def _send(self, conn: Conn, stream: str, payload: object) -> None:
        if not conn.send(stream, payload):
            self._spawn(self._close(conn, 1008, b"send queue overflow"))

    # ---- connections ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        key = request.query.get("listenKey")
        streams: list[str] = []
        if request.query.get("streams"):
            streams = request.query["streams"].split("/")
        elif tail and not tail.isdigit():
            if tail in self.listen_keys:
                key = tail
            else:
                streams = tail.split("/")
        if key is not None and self.listen_keys.get(key, 0.0) <= time.monotonic():
            err = BinanceError(-1125)
            return web.json_response(err.body(), status=400)
        if any(not valid_stream(s) for s in streams):
            return web.json_response({"code": -1121, "msg": "Invalid stream."}, status=400)

        ws = web.WebSocketResponse(timeout=1.0, autoping=True, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = Conn(ws, combined="/stream" in request.path, streams=set(streams),
                    listen_keys={key} if key else set())
        self.conns[conn] = None
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    reply = self._command(conn, msg.data)
                    if reply is not None:
                        conn.send("", reply, raw=True)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.conns.pop(conn, None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    def _command(self, conn: Conn, text: str) -> dict[str, object] | None:
        try:
            req = json.loads(text)
            method, req_id = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected an object with a "
                                               "method"}, "id": None}
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return {"error": {"code": 2, "msg": "Invalid request: params must be a list "
                                                    "of stream names"}, "id": req_id}
            for name in params:
                if name in self.listen_keys:
                    target = conn.listen_keys
                elif valid_stream(name):
                    target = conn.streams
                else:
                    return {"error": {"code": 2, "msg": f"Invalid request: unknown stream "
                                                        f"{name}"}, "id": req_id}
                if method == "SUBSCRIBE":
                    target.add(name)
                else:
                    target.discard(name)
            return {"result": None, "id": req_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams | conn.listen_keys), "id": req_id}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return {"result": None, "id": req_id}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                "id": req_id}

    async def _writer(self, conn: Conn) -> None:
        try:
            while True:
                await conn.ws.send_str(await conn.queue.get())
        except (ConnectionResetError, RuntimeError):
            pass  # the reader loop notices the closed socket and cleans up

    async def _close(self, conn: Conn, code: int, message: bytes) -> None:
        self.conns.pop(conn, None)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=code, message=message)

    def drop_all(self) -> int:
        """Close every connection now (close code 1001), like a gateway restart."""
        conns = list(self.conns)
        for conn in conns:
            self._spawn(self._close(conn, 1001, b"sim drop"))
        return len(conns)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.drop_all()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
