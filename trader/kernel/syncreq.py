"""The blocking request client of the CLI (``flatguard ctl``) and of tests: one request at a
time, with a hard timeout. Apart from ``reqrep.py`` so that ``ctl`` imports no asyncio
(``ctl ping`` has a 150 ms budget, most of it interpreter start-up and imports). ``bus.py``
re-exports it: use ``bus.SyncRequester``."""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from trader.kernel.sockets import RequestTimeout, _Sequenced, _setup, _unwrap, decode_counted


class SyncRequester(_Sequenced):
    """Blocking client for the CLI and tests: one request at a time, with a hard timeout."""

    def __init__(self, endpoint: str, source: str, ctx: zmq.Context[Any] | None = None) -> None:
        super().__init__(source)
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        _setup(self.sock)
        self.sock.connect(endpoint)
        self._ids = itertools.count(1)

    def request(self, op: str, args: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
        op = str(op)
        rid = next(self._ids)
        deadline = time.monotonic() + timeout
        try:
            self.sock.send_multipart(self.frames(op, {"id": rid, "args": args or {}}), flags=zmq.NOBLOCK)
        except zmq.Again:
            raise RequestTimeout(op, timeout) from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                raise RequestTimeout(op, timeout)
            msg = decode_counted(self.sock.recv_multipart())
            if msg is not None and msg.data.get("id") == rid:
                return _unwrap(msg.data)

    def close(self) -> None:
        self.sock.close(0)
