"""The event proxy: publishers connect to XSUB (ev-in), subscribers to XPUB (ev-out).

One proxy means every process connects to two fixed endpoints and never needs to know who
publishes what. It runs ``zmq.proxy_steerable`` in a thread (libzmq does the forwarding in C,
without the GIL) and stops on a TERMINATE sent over its control socket.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import zmq

from trader.kernel.bus import EVENT_HWM


class EventProxy:
    def __init__(self, ctx: zmq.Context[Any], events_in: str, events_out: str) -> None:
        self.ctx = ctx
        self.endpoints = (events_in, events_out)
        self._ctl_addr = f"inproc://proxy-ctl-{id(self)}"
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def start(self) -> None:
        for ep in self.endpoints:
            path = ep.removeprefix("ipc://")
            if os.path.exists(path):
                os.unlink(path)  # stale from a crashed run; the run lock proves none is live
        self._thread = threading.Thread(target=self._run, name="event-proxy", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def _run(self) -> None:
        xsub = self.ctx.socket(zmq.XSUB)
        xpub = self.ctx.socket(zmq.XPUB)
        ctl = self.ctx.socket(zmq.PAIR)
        for s in (xsub, xpub, ctl):
            s.setsockopt(zmq.LINGER, 0)
        xsub.setsockopt(zmq.RCVHWM, EVENT_HWM)
        xpub.setsockopt(zmq.SNDHWM, EVENT_HWM)
        xsub.bind(self.endpoints[0])
        xpub.bind(self.endpoints[1])
        ctl.bind(self._ctl_addr)
        self._started.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctl)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in (xsub, xpub, ctl):
                s.close(0)

    def stop(self) -> None:
        if self._thread is None:
            return
        ctl = self.ctx.socket(zmq.PAIR)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.connect(self._ctl_addr)
        ctl.send(b"TERMINATE")
        self._thread.join(5)
        ctl.close(0)
        for ep in self.endpoints:
            try:
                os.unlink(ep.removeprefix("ipc://"))
            except FileNotFoundError:
                pass
