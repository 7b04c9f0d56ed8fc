"""Sockets of the bus: events over pub/sub through the supervisor's proxy, requests DEALER->ROUTER.

Events (market data, fills, positions, alerts) are fire-and-forget: pub/sub drops at the
high-water mark and misses what was sent before a subscriber joined, so nothing whose loss is
unsafe travels only this way. Requests (orders, commands, kill) carry an id and a timeout and get
an explicit reply; a DEALER never wedges on a lost reply the way a REQ socket does.

Every socket has ``LINGER=0``: a process that is stopping must not hang on unsent messages.

This module holds the event sockets; the request sockets are in ``reqrep.py`` (the CLI's
blocking client in ``syncreq.py``) and what they share in ``sockets.py``. Everything is
re-exported here: callers use ``bus.<name>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import zmq
import zmq.asyncio

from trader.kernel.reqrep import (
    SERVE_CHECK,
    Dispatcher,
    Handler,
    OpHandler,
    Requester,
    Responder,
    UnknownOp,
)
from trader.kernel.sockets import (
    STATS,
    BusStats,
    RequestError,
    RequestTimeout,
    _Sequenced,
    _setup,
    bind_fresh,
    decode_counted,
    unlink_ipc,
)
from trader.kernel.syncreq import SyncRequester
from trader.kernel.wire import Message

__all__ = [
    "EVENT_HWM", "SERVE_CHECK", "STATS", "BusStats", "Dispatcher", "Handler", "Message",
    "OpHandler", "Publisher", "Readable", "RequestError", "RequestTimeout", "Requester",
    "Responder", "Subscriber", "SyncRequester", "UnknownOp", "bind_fresh", "decode_counted",
    "unlink_ipc",
]

EVENT_HWM = 10_000


# --- events -----------------------------------------------------------------------------------


class Publisher(_Sequenced):
    """PUB connected to the proxy's XSUB. ``publish`` never blocks: at the HWM it drops and counts."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, source: str) -> None:
        super().__init__(source)
        # A zmq.asyncio socket returns a Future holding zmq.Again instead of raising it (the drop
        # would go uncounted): always publish through a plain socket of a shadow context.
        self.sock = zmq.Context.shadow(ctx.underlying).socket(zmq.PUB)
        _setup(self.sock)
        self.sock.setsockopt(zmq.SNDHWM, EVENT_HWM)
        self.sock.connect(endpoint)

    def publish(self, topic: str, data: dict[str, Any]) -> bool:
        try:
            self.sock.send_multipart(self.frames(topic, data), flags=zmq.NOBLOCK)
        except zmq.Again:
            STATS.dropped["hwm"] += 1
            return False
        STATS.sent += 1
        return True

    def close(self) -> None:
        self.sock.close(0)


class Subscriber:
    """Async SUB connected to the proxy's XPUB."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, topics: list[str]) -> None:
        self.sock = ctx.socket(zmq.SUB)
        _setup(self.sock)
        self.sock.setsockopt(zmq.RCVHWM, EVENT_HWM)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(endpoint)

        # A plain view of the same socket: a non-blocking read through it costs ~1.8 µs where
        # the asyncio one costs ~3.3 µs (a Future per call). Waiting still goes through asyncio.
        self._plain = zmq.Socket.shadow(self.sock.underlying)

    async def recv(self) -> Message | None:
        return decode_counted(await self.sock.recv_multipart())

    def drain(self, out: list[Message], max_n: int) -> int:
        """Read up to ``max_n`` queued messages without waiting; return how many were read
        (malformed ones are counted as dropped and not appended)."""
        n = 0
        recv = self._plain.recv_multipart
        while n < max_n:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            msg = decode_counted(frames)
            if msg is not None:
                out.append(msg)
        return n

    async def recv_batch(self, timeout: float, max_n: int = 256) -> list[Message]:
        """What is queued now, else wait up to ``timeout`` s for something, then drain."""
        out: list[Message] = []
        if self.drain(out, max_n):
            await asyncio.sleep(0)  # let other tasks (order sends, replies) run between batches
        elif await self.sock.poll(int(timeout * 1000)):
            self.drain(out, max_n)
        return out

    def close(self) -> None:
        self.sock.close(0)


class Readable:
    """Wait until any of some subscribers may have input, for a loop that reads them with
    ``drain`` (the engine's). A ``zmq.asyncio.Poller`` registers and unregisters every socket
    with the event loop and resolves through its own futures on every wait (~0.1 ms per wake
    on a loaded 2-core box, on the tick path); here each socket's FD stays registered with
    the loop between waits, and a wake resolves one future.

    ZeroMQ's FD signals new activity, not "a message is queued": the caller reads every socket
    until it would block (``drain``) before waiting again, and ``wait`` checks ``EVENTS`` once
    armed (which also re-arms the FD). A reader that fires with nobody waiting unregisters
    itself (nothing spins while the loop does other work); the next ``wait`` registers again.
    """

    def __init__(self, subs: list[Subscriber]) -> None:
        self._socks = [s._plain for s in subs]
        self._fds = [int(s.getsockopt(zmq.FD)) for s in self._socks]
        self._armed: set[int] = set()
        self._waiter: asyncio.Future[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _fired(self, fd: int) -> None:
        w = self._waiter
        if w is not None:
            if not w.done():
                w.set_result(True)
        elif self._loop is not None:
            self._loop.remove_reader(fd)  # nobody waits: no busy loop until the next wait
            self._armed.discard(fd)

    async def wait(self, timeout: float) -> bool:
        """True when a socket may have input, False after ``timeout`` s without any."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # registrations belong to the loop that made them
            self._armed.clear()
            self._loop = loop
        for fd in self._fds:
            if fd not in self._armed:
                loop.add_reader(fd, self._fired, fd)
                self._armed.add(fd)
        if any(s.getsockopt(zmq.EVENTS) & zmq.POLLIN for s in self._socks):
            return True
        w = self._waiter = loop.create_future()
        h = loop.call_later(timeout, lambda: w.done() or w.set_result(False))
        try:
            return await w
        finally:
            h.cancel()
            self._waiter = None

    def wake(self) -> None:
        """End the current wait now, as if a socket had input."""
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(True)

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for fd in self._armed:
                self._loop.remove_reader(fd)
        self._armed.clear()
