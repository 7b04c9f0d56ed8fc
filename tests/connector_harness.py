"""Harness for connector integration tests (no tests here).

The connector runs as a real process (``python -m trader.connector --run-dir D``) against the
real simulated exchange (``SimServer`` in a thread of the test process) with the real ccxt. The
test plays the supervisor's *sockets*, only to observe: an XSUB/XPUB event proxy, a ROUTER on
``sup.sock`` that records heartbeats, READY and halt requests (and answers requests ``ok``), and
PULL sockets where notifications land. Everything is stopped in ``close()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from trader.kernel import bus, config, runpaths, wire
from trader.sim.server import SimServer
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET

ROOT = Path(__file__).resolve().parent.parent


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" +
                         (f" (last error: {last!r})" if last else ""))


class SimThread:
    """The simulated exchange on its own event loop in a thread."""

    def __init__(self, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SimServer(port=0, **overrides)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True, name="sim")
        self.thread.start()
        assert started.wait(30), "sim did not start"
        self.url = self.server.url

    def control(self, action: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/_sim/{action}", data=data,
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def state(self) -> dict[str, Any]:
        return self.control("state")

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Plumbing:
    """The supervisor's sockets, played by the test to observe what the connector sends."""

    def __init__(self, paths: runpaths.RunPaths) -> None:
        self.ctx = zmq.Context()
        self.paths = paths
        self.sup_msgs: list[tuple[str, dict[str, Any]]] = []
        self.notes: list[dict[str, Any]] = []
        self._stop = threading.Event()
        xsub, xpub = self.ctx.socket(zmq.XSUB), self.ctx.socket(zmq.XPUB)
        for s in (xsub, xpub):
            s.setsockopt(zmq.LINGER, 0)
        xsub.bind(paths.events_in)
        xpub.bind(paths.events_out)
        self._proxy_socks = (xsub, xpub)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(paths.supervisor)
        self.pulls = []
        for ep in (paths.notify, paths.emergency):
            p = self.ctx.socket(zmq.PULL)
            p.setsockopt(zmq.LINGER, 0)
            p.bind(ep)
            self.pulls.append(p)
        self.threads = [threading.Thread(target=self._proxy, daemon=True),
                        threading.Thread(target=self._serve, daemon=True)]
        for t in self.threads:
            t.start()

    def _proxy(self) -> None:
        try:
            zmq.proxy(*self._proxy_socks)
        except zmq.ContextTerminated:
            pass
        finally:
            for s in self._proxy_socks:
                s.close(0)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        for p in self.pulls:
            poller.register(p, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    frames = sock.recv_multipart()
                    if sock is self.router:
                        ident, msg = frames[0], wire.decode(frames[1:])
                        self.sup_msgs.append((msg.topic, msg.data.get("args", {})))
                        if msg.data.get("id") is not None:
                            rep = wire.encode("rep", "supervisor", 1,
                                              {"id": msg.data["id"], "ok": True, "result": {}})
                            self.router.send_multipart([ident, *rep])
                    else:
                        self.notes.append(wire.decode(frames).data)
        except zmq.ContextTerminated:
            pass
        finally:
            self.router.close(0)
            for p in self.pulls:
                p.close(0)

    def sup(self, op: str) -> list[dict[str, Any]]:
        return [a for t, a in list(self.sup_msgs) if t == op]

    def notes_matching(self, text: str) -> list[dict[str, Any]]:
        return [n for n in list(self.notes) if text in f"{n.get('title')} {n.get('text')}"]

    def subscriber(self, topics: list[str], probe: str | None = None) -> zmq.Socket[Any]:
        """A SUB on the proxy. A subscription reaches the connector's PUB asynchronously (slow
        joiner): events published before it are not delivered. With ``probe`` (a topic the
        connector publishes on its own, e.g. ``md.``) it is subscribed too and one message of
        it is awaited: subscriptions travel in order, so ``topics`` are live once it arrives
        (the caller then filters what it reads)."""
        s = self.ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        for t in [*topics, *([probe] if probe else [])]:
            s.setsockopt(zmq.SUBSCRIBE, t.encode())
        s.connect(self.paths.events_out)
        if probe:
            def seen() -> bool:
                return bool(s.poll(100)) and wire.decode(s.recv_multipart()).topic.startswith(
                    probe)
            wait_for(seen, 30, f"the subscription live (a {probe} event)", 0)
        return s

    def close(self) -> None:
        self._stop.set()
        for t in self.threads[1:]:
            t.join(5)
        self.ctx.term()
        self.threads[0].join(5)


class ConnectorProc:
    """A connector process on a fresh short run directory, with its sim and plumbing."""

    def __init__(self, sim: SimThread | None = None, *, start: bool = True,
                 env: dict[str, str] | None = None, **exchange: Any) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fg", dir="/tmp"))
        os.chmod(self.dir, 0o700)
        self.paths = runpaths.RunPaths(self.dir)
        self.sim = sim or SimThread(tick_interval=0.05)
        self.own_sim = sim is None
        xc = {"id": "sim", "url": self.sim.url, "symbols": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
              "feed": "ws", "reconcile_interval": 30.0, **exchange}
        base = config.from_mapping({"exchange": xc, "supervisor": {"heartbeat_interval": 0.2}})
        self.cfg = dataclasses.replace(base)
        self.paths.config_json.write_text(config.dumps(self.cfg))
        self.plumbing = Plumbing(self.paths)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if env is None:  # the sim's keys, as the supervisor passes them (never a developer's)
            self.env.update(FLATGUARD_API_KEY=SIM_API_KEY, FLATGUARD_API_SECRET=SIM_API_SECRET)
        self.stderr_path = self.dir / "connector.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.req: bus.SyncRequester | None = None
        if start:
            self.start()

    def start(self, wait_ready: bool = True) -> None:
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trader.connector", "--run-dir", str(self.dir)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._err)
        self.req = bus.SyncRequester(self.paths.connector, "test", ctx=self.plumbing.ctx)
        if wait_ready:
            wait_for(lambda: self.plumbing.sup("ready") or self._died(), 60, "connector READY")
            assert self.plumbing.sup("ready"), self.stderr()

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def request(self, op: str, args: dict[str, Any] | None = None, timeout: float = 20.0) -> Any:
        assert self.req is not None
        return self.req.request(op, args, timeout)

    def stop(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.req is not None:
                self.req.close()
            self.plumbing.close()
            if self.own_sim:
                self.sim.close()
            if hasattr(self, "_err"):
                self._err.close()
            shutil.rmtree(self.dir, ignore_errors=True)
