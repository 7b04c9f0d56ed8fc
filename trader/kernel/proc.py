"""What every child process shares: arguments, config, bus context, heartbeats, signals.

A child is started by the supervisor as ``python -m <module> --run-dir DIR``; it reads the
effective config the supervisor wrote into the run directory (the same validator as the TOML
file), tells the supervisor READY, and then sends heartbeats *from its working loop*: a loop that
is stuck sends none, which is how a hang is told from life.

Supervisor loss: children are the supervisor's direct children, so a changed parent pid means it
is gone (seen within one loop turn); each process then does its own safe thing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import zmq.asyncio

from trader.kernel import bus, config, runpaths
from trader.kernel.metrics import METRICS
from trader.kernel.payloads import Heartbeat
from trader.kernel.protocol import CRITICAL, LEVELS, NOTIFY, SupervisorOp

log = logging.getLogger("flatguard")


def setup_logging(proc: str) -> None:
    """One line per event, key=value (or JSON), to stderr (the supervisor's console) or to the
    one log file every process shares (``trader/logsetup.py``).

    ``kill -USR1 <pid>`` dumps every thread's stack: the first question about a hang.
    """
    import faulthandler

    from trader.kernel import redact

    redact.install()  # no signed URL (query string) in any log line, whatever the handler
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from trader.kernel import logsetup

    logsetup.setup(proc)  # stderr; or the shared file the supervisor named ([logging])


@dataclass
class Child:
    """The runtime context of one child process."""

    name: str
    paths: runpaths.RunPaths
    cfg: config.Config
    ctx: zmq.asyncio.Context
    sup: bus.Requester
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    parent_pid: int = field(default_factory=os.getppid)
    state: str = "STARTING"
    loops: int = 0
    last_md: float = 0.0  # wall time of the last market data seen
    last_ok: float = 0.0  # wall time of the last successful exchange call
    _last_beat: float = 0.0
    _last_metrics: float = 0.0
    notify: NotifyClient | None = None

    def supervisor_lost(self) -> bool:
        return os.getppid() != self.parent_pid

    def beat(self, force: bool = False) -> None:
        """Call from the working loop on every turn; sends when a heartbeat is due."""
        self.loops += 1
        now = time.monotonic()
        if not force and now - self._last_beat < self.cfg.supervisor.heartbeat_interval:
            return
        self._last_beat = now
        metrics = None
        if now - self._last_metrics >= 1.0:  # metrics once a second, liveness every beat
            self._last_metrics = now
            st = bus.STATS
            METRICS.set("flatguard_bus_messages_total", st.sent, process=self.name, direction="sent")
            METRICS.set("flatguard_bus_messages_total", st.received, process=self.name,
                        direction="received")
            for reason, n in st.dropped.items():
                METRICS.set("flatguard_bus_dropped_total", n, process=self.name, reason=reason)
            metrics = METRICS.samples()
        payload = Heartbeat(self.name, os.getpid(), self.state, self.loops, self.last_md,
                            self.last_ok, metrics).to_wire()
        asyncio.get_running_loop().create_task(self.sup.send_oneway(SupervisorOp.HB, payload))

    def close(self) -> None:
        """Close every socket, then the context. Sockets of shadow contexts (notify, publish)
        must be closed first: zmq_ctx_term waits forever for a socket left open."""
        if self.notify is not None:
            self.notify.close()
        self.sup.close()
        self.ctx.destroy(0)

    async def ready(self, **info: Any) -> None:
        self.state = "RUNNING"
        await self.sup.send_oneway(SupervisorOp.READY, {"proc": self.name, "pid": os.getpid(),
                                             "state": self.state, **info})
        self.beat(force=True)


class NotifyClient:
    """Non-blocking notification sender (PUSH). At the HWM a send fails at once and is counted."""

    def __init__(self, ctx: zmq.Context[Any], paths: runpaths.RunPaths, source: str) -> None:
        import zmq

        self._seq = bus._Sequenced(source)
        self._socks = {}
        # A zmq.asyncio socket would return a Future holding zmq.Again instead of raising it
        # (the drop would go uncounted): send through plain sockets of a shadow context.
        sync_ctx = zmq.Context.shadow(ctx.underlying)
        for lane, ep in (("normal", paths.notify), ("emergency", paths.emergency)):
            s = sync_ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 1000)
            s.connect(ep)
            self._socks[lane] = s
        self.dropped = 0
        self.sent = 0

    def send(self, level: str, title: str, text: str = "", key: str | None = None) -> bool:
        import zmq

        assert level in LEVELS, level
        from trader.kernel.redact import scrub_url

        lane = "emergency" if level == CRITICAL else "normal"
        title, text = scrub_url(title), scrub_url(text)  # every alert of every process
        frames = self._seq.frames(NOTIFY, {"level": level, "title": title, "text": text,
                                             "key": key or title, "ts": time.time()})
        try:
            self._socks[lane].send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            bus.STATS.dropped["notify_hwm"] += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        for s in self._socks.values():
            # A short linger: the last notices of a process that is exiting (a kill-switch
            # alert, "supervisor lost") get their chance to leave the local buffer.
            s.close(linger=500)


def parse_args(name: str) -> tuple[runpaths.RunPaths, config.Config]:
    ap = argparse.ArgumentParser(prog=f"flatguard-{name}")
    ap.add_argument("--run-dir", required=True)
    a = ap.parse_args()
    paths = runpaths.RunPaths(runpaths.resolve(a.run_dir))
    cfg = config.loads_json(paths.config_json.read_text())
    return paths, cfg


LOOP_ENV = "FLATGUARD_LOOP"
LOOPS = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run a tick-path process's main coroutine (the trader's, the connector's) on uvloop,
    which ccxt already installs: each ZeroMQ hop and HTTP request wakes the loop, and a
    uvloop wake-up costs about 0.1 ms less than asyncio's on a 2-core box (issue 11's
    tick-to-order). ``FLATGUARD_LOOP=asyncio`` runs it on asyncio's own loop instead."""
    choice = os.environ.get(LOOP_ENV) or LOOPS[0]
    if choice not in LOOPS:
        raise SystemExit(f"{LOOP_ENV}={choice!r} is not a loop flatguard runs on: use "
                         f"{' or '.join(LOOPS)} (or leave it unset for uvloop)")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:  # a platform without it (ccxt installs it on CPython, not Windows)
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Handlers only enqueue: they set the stop event and the loop does the work.

    SIGINT is ignored: Ctrl-C in the terminal reaches the whole foreground process group, and
    the supervisor, not each child, decides the order of an orderly stop. SIGTERM is obeyed
    from the supervisor or once it is gone, not from whoever signals every process at once
    (trader/sigterm.py says why and how).
    """
    from trader.kernel import sigterm

    sigterm.install(stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def make_child(name: str) -> Child:
    from trader.kernel import sigterm

    sigterm.block()  # before zmq starts its threads: every thread inherits the blocked mask
    paths, cfg = parse_args(name)
    setup_logging(name)
    ctx = zmq.asyncio.Context()
    sup = bus.Requester(ctx, paths.supervisor, name)
    child = Child(name=name, paths=paths, cfg=cfg, ctx=ctx, sup=sup)
    child.notify = NotifyClient(ctx, paths, name)
    return child


def kv(**fields: Any) -> str:
    """key=value formatting for one-line log events."""
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
                    for k, v in fields.items())
