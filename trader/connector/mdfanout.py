"""Market data to the trader without the proxy hop, and to everyone else as before.

``md.<symbol>`` is the one event on the tick path. Through the event proxy it costs a wake-up
of the supervisor's proxy thread between the connector and the trader (~0.5 ms on a loaded
2-core box); so the connector also binds a PUB of its own (``RunPaths.md``) that only the
trader subscribes to. The proxy still carries every md message (taps, tests, any other
subscriber); the same frames, encoded once, go to both. Everything else goes to the proxy only.

Like the proxy's, the direct socket drops at the high-water mark (counted as ``hwm`` drops)
and misses what was sent before the trader connected: md is refreshed every tick and staleness
is judged by its age, so nothing whose loss is unsafe travels here.
"""

from __future__ import annotations

from typing import Any

import zmq

from trader.kernel import bus
from trader.kernel.protocol import MD


class MdFanout:
    """A ``Publishing`` for the feed sink: md to the proxy and the direct socket, the rest to
    the proxy."""

    def __init__(self, pub: bus.Publisher, ctx: zmq.Context[Any], endpoint: str) -> None:
        self.pub = pub
        self.sock = zmq.Context.shadow(ctx.underlying).socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, bus.EVENT_HWM)
        bus.bind_fresh(self.sock, endpoint)
        self.endpoint = endpoint

    def publish(self, topic: str, data: dict[str, Any]) -> bool:
        if not topic.startswith(MD):
            return self.pub.publish(topic, data)
        frames = self.pub.frames(topic, data)
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK)  # the trader first: the tick path
        except zmq.Again:
            bus.STATS.dropped["hwm"] += 1
        try:
            self.pub.sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            bus.STATS.dropped["hwm"] += 1
            return False
        bus.STATS.sent += 1
        return True

    def close(self) -> None:
        self.sock.close(0)
        bus.unlink_ipc(self.endpoint)
