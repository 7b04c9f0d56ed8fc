"""The notifier process: PULL intake on two lanes, requests (ack, stats, digest), events.

Sockets: PULL bound on ``paths.notify`` (info/warning) and ``paths.emergency`` (critical),
ROUTER on ``paths.notifier`` (ops ``ack {key?}``, ``stats {}``, ``digest {}``), SUB on
``paths.events_out`` (``account``, ``fill.``). The main loop wakes every heartbeat interval:
heartbeat, dedup summaries, alert repeats, digest. On SIGTERM from the supervisor (or once it is
gone: trader/sigterm.py) it reads what its sockets already hold, drains briefly and exits 0.
When the supervisor is lost it raises a critical "Supervisor lost" alert on every emergency sink,
keeps serving a moment (the trader's last notices), and exits once the emergency lane is idle.

Lifecycle: STARTING -> RUNNING -> STOPPING -> STOPPED. A bad sink config exits 2 before READY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from notifier import sinks as sinks_mod
from notifier.digest import AccountWatch, Out
from notifier.errors import SinkConfigError
from notifier.lanes import Dispatcher
from notifier.message import Notification, parse
from trader.kernel import bus, proc
from trader.kernel.protocol import ACCOUNT, CRITICAL, EX_CONFIG, FILL, NOTIFIER, NOTIFY, NotifierOp
from trader.kernel.wire import Message

log = logging.getLogger("flatguard.notifier")
BATCH = 256  # messages read per turn before yielding to the other lanes
DRAIN = 2.0  # s given to queued messages at stop
RECEIPT_POLL = 30.0  # s between checks of sinks' own acknowledgements
LOST_LINGER_MIN = 2.0  # s kept running after supervisor loss, for the others' last notices
LOST_LINGER_MAX = 20.0  # s at most: then leave even if a sink still retries


class Intake:
    """A bound PULL socket read in batches: a flood cannot hold the event loop."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str) -> None:
        path = endpoint.removeprefix("ipc://")
        if endpoint.startswith("ipc://") and os.path.exists(path):
            os.unlink(path)  # stale socket from a crashed run (see bus.Responder)
        self.sock = ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sock.bind(endpoint)
        self._sync = zmq.Socket.shadow(self.sock.underlying)
        self.endpoint = endpoint
        self.malformed = 0

    async def run(self, on: Callable[[Notification], None]) -> None:
        while True:
            await self.sock.poll(flags=zmq.POLLIN)
            self.read(on, BATCH)
            await asyncio.sleep(0)

    def read(self, on: Callable[[Notification], None], limit: int) -> int:
        """Up to ``limit`` messages already received, without waiting; how many were read."""
        n_read = 0
        for _ in range(limit):
            try:
                frames = self._sync.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            n_read += 1
            msg = bus.decode_counted(frames)
            try:
                if msg is None or msg.topic != NOTIFY:
                    raise ValueError("not a notify message")
                n = parse(msg.data, msg.src)
            except ValueError as e:
                self.malformed += 1
                log.warning(proc.kv(event="bad_notification", error=str(e)[:120]))
                continue
            on(n)
        return n_read

    def close(self) -> None:
        self.sock.close(0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.endpoint.removeprefix("ipc://"))


class Notifier:
    def __init__(self, child: proc.Child, sinks: list[sinks_mod.Sink]) -> None:
        self.child = child
        self.cfg = child.cfg
        self.disp = Dispatcher(sinks, self.cfg.notify)
        self.watch = AccountWatch(self.cfg.notify, time.time())
        self.events = 0

    def publish(self, n: Notification) -> None:
        self.watch.on_notification(n.level)
        self.disp.publish(n)

    def _emit(self, outs: list[Out]) -> None:
        now = time.time()
        for o in outs:
            self.publish(Notification(o.level, o.title, o.text, o.key, now))

    def on_event(self, msg: Message) -> None:
        self.events += 1
        if msg.topic == ACCOUNT:
            self._emit(self.watch.on_account(msg.data))
        elif msg.topic.startswith(FILL):
            self._emit(self.watch.on_fill(msg.data))

    def ops(self) -> bus.Dispatcher:
        return bus.Dispatcher(NOTIFIER, {NotifierOp.ACK: self.op_ack,
                                         NotifierOp.STATS: self.op_stats,
                                         NotifierOp.DIGEST: self.op_digest})

    async def op_ack(self, args: dict[str, Any], msg: Message) -> Any:
        key = args.get("key")
        if key is not None and not isinstance(key, str):
            raise ValueError("ack: key must be a string")
        return {"acked": self.disp.ack(key)}

    async def op_stats(self, args: dict[str, Any], msg: Message) -> Any:
        return {**self.disp.snapshot(), "events": self.events,
                "malformed": sum(i.malformed for i in self.intakes)}

    async def op_digest(self, args: dict[str, Any], msg: Message) -> Any:
        out = self.watch.digest(time.time())
        self._emit([out])
        return {"title": out.title, "text": out.text}

    def supervisor_lost(self) -> None:
        """Nobody watches the stack any more: say so on every emergency sink, then leave."""
        log.error(proc.kv(event="supervisor_lost", action="alert_then_stop"))
        self.publish(Notification(
            CRITICAL, "Supervisor lost",
            "the flatguard supervisor process is gone: no kill switch, no restarts. The trader "
            "flattens through the connector and every process exits; check the account and "
            "start `flatguard up` again.", "notifier:supervisor_lost", time.time()))

    def _may_leave(self, lost_at: float) -> bool:
        """After supervisor loss: stay a moment for the other processes' last notices (the
        trader's self-flatten), until the emergency lane is idle, within a hard limit."""
        waited = time.monotonic() - lost_at
        if waited >= LOST_LINGER_MAX:
            return True
        return waited >= LOST_LINGER_MIN and all(w.idle for w in self.disp.emergency.values())

    async def events_loop(self, sub: bus.Subscriber) -> None:
        while True:
            msg = await sub.recv()
            if msg is not None:
                self.on_event(msg)

    async def run(self) -> int:
        child, paths = self.child, self.child.paths
        self.intakes = [Intake(child.ctx, paths.notify), Intake(child.ctx, paths.emergency)]
        responder = bus.Responder(child.ctx, paths.notifier, "notifier")
        sub = bus.Subscriber(child.ctx, paths.events_out, [ACCOUNT, FILL])
        await self.disp.start()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(i.run(self.publish)) for i in self.intakes]
        tasks += [loop.create_task(responder.serve(self.ops())),
                  loop.create_task(self.events_loop(sub))]
        await child.ready(sinks=list(self.disp.sinks))
        log.info(proc.kv(event="notifier_ready", sinks=",".join(self.disp.sinks),
                         emergency=",".join(self.disp.emergency)))
        interval = min(child.cfg.supervisor.heartbeat_interval, 1.0)
        next_poll = time.monotonic() + RECEIPT_POLL
        lost_at: float | None = None
        try:
            while not child.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.stop.wait(), interval)
                child.beat()
                self.disp.tick()
                self._emit(self.watch.tick(time.time()))
                if time.monotonic() >= next_poll and self.disp.alerts.active:
                    next_poll = time.monotonic() + RECEIPT_POLL
                    loop.create_task(self.disp.poll_receipts())
                if lost_at is None and child.supervisor_lost():
                    lost_at = time.monotonic()
                    self.supervisor_lost()
                if lost_at is not None and self._may_leave(lost_at):
                    child.stop.set()
        finally:
            child.state = "STOPPING"
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for i in self.intakes:
                # What was sent before the stop (the supervisor's "stopped" alert) is queued,
                # not lost with the socket: the drain below delivers it.
                i.read(self.publish, 10 * BATCH)
                i.close()
            await self.disp.stop(DRAIN)
            responder.close()
            sub.close()
            child.state = "STOPPED"
            log.info(proc.kv(event="notifier_stopped", **{
                f"{k}_{o}": v for k, st in self.disp.snapshot()["sinks"].items()  # type: ignore[union-attr]
                for o, v in st.items() if o in ("sent", "dropped", "failed")}))
        return 0


async def amain() -> int:
    child = proc.make_child("notifier")
    proc.install_signal_handlers(child.stop)
    try:
        try:
            sinks = sinks_mod.build(child.cfg)
        except SinkConfigError as e:
            log.error(proc.kv(event="bad_sink_config", error=str(e)))
            return EX_CONFIG  # a refusal the supervisor does not restart
        try:
            # Notifications never slow trading: under a flood the kernel prefers the trader.
            os.nice(10)
        except OSError:
            pass
        return await Notifier(child, sinks).run()
    finally:
        child.close()


def main() -> int:
    return asyncio.run(amain())
