"""md goes to the trader on the connector's own socket and to the proxy; the rest to the proxy."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import zmq

from supervisor.proxy import EventProxy
from trader.connector.mdfanout import MdFanout
from trader.kernel import bus, wire
from trader.kernel.runpaths import RunPaths


def _recv(sock: zmq.Socket, timeout: float = 2.0) -> list[wire.Message]:  # type: ignore[type-arg]
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sock.poll(50):
        out.append(wire.decode(sock.recv_multipart()))
    return out


def test_md_reaches_both_sockets_and_other_events_only_the_proxy() -> None:
    with tempfile.TemporaryDirectory(prefix="fg", dir="/tmp") as d:
        paths = RunPaths(Path(d))
        ctx = zmq.Context()
        proxy = EventProxy(ctx, paths.events_in, paths.events_out)
        proxy.start()
        proxy_in = ctx.socket(zmq.SUB)  # any subscriber on the proxy
        proxy_in.setsockopt(zmq.SUBSCRIBE, b"")
        proxy_in.connect(paths.events_out)
        pub = bus.Publisher(ctx, paths.events_in, "connector")
        fan = MdFanout(pub, ctx, paths.md)
        trader = ctx.socket(zmq.SUB)
        trader.setsockopt(zmq.SUBSCRIBE, b"md.")
        trader.connect(paths.md)
        try:
            time.sleep(0.3)  # both subscriptions arrive (slow joiner)
            assert fan.publish("md.BTC/USDT:USDT", {"symbol": "BTC/USDT:USDT", "mark": 1.0})
            assert fan.publish("order.BTC/USDT:USDT", {"client_id": "x"})
            direct = _recv(trader, 0.5)
            proxied = _recv(proxy_in, 0.5)
            assert [m.topic for m in direct] == ["md.BTC/USDT:USDT"]
            assert [m.topic for m in proxied] == ["md.BTC/USDT:USDT", "order.BTC/USDT:USDT"]
            assert direct[0].seq == proxied[0].seq  # the same frames, encoded once
        finally:
            fan.close()
            pub.close()
            for s in (proxy_in, trader):
                s.close(0)
            proxy.stop()
            ctx.term()
        assert not Path(paths.md.removeprefix("ipc://")).exists()
