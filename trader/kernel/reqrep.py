"""Requests, DEALER -> ROUTER: ``Requester`` (the trader, the supervisor, the commander),
and ``Responder`` with its ``Dispatcher`` table (every server).
A request carries an id and a timeout and gets an explicit reply; a DEALER never wedges on a
lost reply the way a REQ socket does. The CLI's blocking client is ``syncreq.py`` (no asyncio to
import). ``bus.py`` re-exports all of it: use ``bus.<name>``."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import zmq
import zmq.asyncio

from trader.kernel.errors import FlatguardError, reply_kind
from trader.kernel.protocol import REPLY
from trader.kernel.sockets import (
    STATS,
    RequestTimeout,
    _Sequenced,
    _setup,
    _unwrap,
    bind_fresh,
    decode_counted,
    unlink_ipc,
)
from trader.kernel.wire import Message

SERVE_CHECK = 1.0  # s between a server's own looks at its socket (besides every FD signal)
log = logging.getLogger("flatguard")


class Requester(_Sequenced):
    """Async DEALER client: ``await request(op, args, timeout)`` -> result or ``RequestError``."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, source: str) -> None:
        super().__init__(source)
        self.sock = ctx.socket(zmq.DEALER)
        _setup(self.sock)
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.last_reply = time.monotonic()

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (nor timed out)."""
        return len(self._pending)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            msg = decode_counted(await self.sock.recv_multipart())
            if msg is None:
                continue
            self.last_reply = time.monotonic()
            fut = self._pending.pop(msg.data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg.data)

    async def request(self, op: str, args: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        return await self.request_now(op, args, timeout)

    def request_now(self, op: str, args: dict[str, Any] | None = None,
                    timeout: float = 5.0) -> Coroutine[Any, Any, Any]:
        """``request``, with the message sent before this returns (from synchronous code, e.g.
        a strategy's tick handler: no loop turn before it leaves). Await the result for the
        reply (or ``RequestError``); the timeout counts from then, as ``request``'s does."""
        op = str(op)  # an Op enum member travels, and prints in errors, as its plain value
        self._ensure_reader()
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            # zmq.asyncio sends at once when it can (a done Future); else when the peer is able
            sent = self.sock.send_multipart(self.frames(op, {"id": rid, "args": args or {}}))
        except BaseException:
            self._pending.pop(rid, None)
            raise
        return self._reply(op, rid, fut, sent, timeout)

    async def _reply(self, op: str, rid: int, fut: asyncio.Future[Any], sent: Awaitable[Any],
                     timeout: float) -> Any:
        try:
            await sent
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RequestTimeout(op, timeout) from None
        finally:
            self._pending.pop(rid, None)
        return _unwrap(reply)

    async def send_oneway(self, op: str, args: dict[str, Any]) -> None:
        """A message with no reply expected (heartbeats). Never blocks on a dead peer."""
        op = str(op)
        try:
            await self.sock.send_multipart(self.frames(op, {"args": args}), flags=zmq.NOBLOCK)
        except zmq.Again:
            STATS.dropped["peer_unavailable"] += 1

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.sock.close(0)


Handler = Callable[..., Awaitable[Any]]  # (op, args, msg, **extra) -> result
OpHandler = Callable[..., Awaitable[Any]]  # (args, msg, **extra) -> result


class UnknownOp(FlatguardError, ValueError):
    """A request the server cannot take (an op it does not have). Policy: reply
    ``bad_request``; nothing done."""

    kind = "bad_request"


class Dispatcher:
    """The one dispatch style of every server: a table ``{op: handler}``.

    A handler gets ``(args, msg)`` (and ``peer=`` on an authenticated CURVE socket). An op not
    in the table is refused with kind ``bad_request`` naming it and the known ops, unless a
    ``fallback`` (``(op, args, msg, **extra)``) takes the rest (the commander's "command name
    as the op"). ``before`` runs first for every request (bookkeeping such as "the trader was
    seen"); it may raise to refuse.
    """

    def __init__(self, server: str, table: Mapping[str, OpHandler], *,
                 fallback: Handler | None = None,
                 before: Callable[[str, dict[str, Any], Message], None] | None = None) -> None:
        self.server = server
        self.table = {str(op): h for op, h in table.items()}
        self.fallback = fallback
        self.before = before

    @property
    def ops(self) -> list[str]:
        return sorted(self.table)

    async def __call__(self, op: str, args: dict[str, Any], msg: Message, **extra: Any) -> Any:
        if self.before is not None:
            self.before(op, args, msg)
        fn = self.table.get(op)
        if fn is not None:
            return await fn(args, msg, **extra)
        if self.fallback is not None:
            return await self.fallback(op, args, msg, **extra)
        raise UnknownOp(f"unknown op {op!r} for the {self.server}; known ops: "
                         + ", ".join(self.ops))


class Responder(_Sequenced):
    """Async ROUTER server. The handler (usually a ``Dispatcher``) returns the reply; its
    exception becomes an error reply.

    A ``FlatguardError`` keeps its ``kind`` in the reply (e.g. ``rejected``); anything else is
    a bug in the handler and is ``error``. A malformed request is dropped and counted: with no
    valid id there is nobody to answer.

    Requests are read in the socket's FD callback and each handler starts as a task from
    there: no Future per message and no wake-up of a serving task in between (a ``zmq.asyncio``
    receive in a loop cost two loop turns and a re-registration per request, on every order).
    ZeroMQ's FD signals activity, not "a message is queued", so every read drains until the
    socket would block, a reply sent on it is followed by a look (a send may take the signal of
    a request that arrived meanwhile), and the server looks by itself every ``SERVE_CHECK`` s.
    """

    copy = True  # frames as bytes; a subclass that reads a frame's metadata sets False
    _plain: zmq.Socket[Any] | None = None  # the socket's plain view, while serving
    _pump: Callable[[], None] | None = None  # reads what is queued, while serving
    _unwatch: Callable[[], object] = staticmethod(lambda: None)  # the FD leaves the loop

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, source: str) -> None:
        super().__init__(source)
        self.sock = ctx.socket(zmq.ROUTER)
        _setup(self.sock)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        bind_fresh(self.sock, endpoint)
        self.endpoint = endpoint

    def _accept(self, parts: list[Any]) -> tuple[bytes, list[bytes], dict[str, Any]] | None:
        """One request's frames: (sender identity, message frames, extra handler kwargs), or
        None when it is dropped. Subclasses add checks and extras (``commander/curve.py``)."""
        if len(parts) < 3:
            STATS.dropped["malformed"] += 1
            return None
        return parts[0], parts[1:], {}

    async def serve(self, handler: Handler) -> None:
        """Serve until cancelled."""
        loop = asyncio.get_running_loop()
        plain = self._plain = zmq.Socket.shadow(self.sock.underlying)
        fd = plain.getsockopt(zmq.FD)

        def pump() -> None:
            while True:
                try:
                    parts = plain.recv_multipart(zmq.NOBLOCK, copy=self.copy)
                except zmq.Again:
                    return
                got = self._accept(parts)
                if got is None:
                    continue
                ident, rest, extra = got
                msg = decode_counted(rest)
                if msg is None:
                    continue
                args = msg.data.get("args", {})
                if not isinstance(args, dict):
                    STATS.dropped["malformed"] += 1
                    continue
                loop.create_task(self._handle(handler, ident, msg.data.get("id"), msg, args,
                                              extra))

        self._pump = pump
        loop.add_reader(fd, pump)
        self._unwatch = lambda: loop.is_closed() or loop.remove_reader(fd)
        try:
            while True:
                pump()
                await asyncio.sleep(SERVE_CHECK)
        finally:
            self._pump = None
            self._unwatch()

    async def _handle(self, handler: Handler, ident: bytes, rid: Any, msg: Message,
                      args: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        try:
            result = await handler(msg.topic, args, msg, **(extra or {}))
            body: dict[str, Any] = {"id": rid, "ok": True, "result": result}
        except Exception as e:  # the dispatcher maps every failure to an error reply
            body = {"id": rid, "ok": False,
                    "error": {"kind": reply_kind(e), "message": str(e) or type(e).__name__}}
            if rid is None:  # nobody to tell: a malformed one-way message must not vanish
                log.warning("event=oneway_failed op=%s src=%s error=%r", msg.topic, msg.src,
                            str(e) or type(e).__name__)
        if rid is None:
            return  # one-way message
        assert self._plain is not None
        try:
            self._plain.send_multipart([ident, *self.frames(REPLY, body)], flags=zmq.NOBLOCK)
        except zmq.Again:
            STATS.dropped["reply_undeliverable"] += 1
        if self._pump is not None:
            self._pump()  # the send may have taken the FD's signal of a request meanwhile

    def close(self) -> None:
        self._unwatch()  # before the socket (and its FD) is gone
        self.sock.close(0)
        unlink_ipc(self.endpoint)
