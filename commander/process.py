"""The commander process: control socket(s), Telegram channel, recorder, heartbeats.

Lifecycle: STARTING (bind, READY) -> RUNNING (serving; heartbeats from this loop) -> STOPPING
(SIGTERM or supervisor gone) -> exit. Crash-only: a channel task that dies takes the process down
with a non-zero exit, and the supervisor restarts it; start-up is the same path as recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from commander import commands  # noqa: F401  (registers the commands)
from commander.audit import Audit
from commander.confirm import Confirmations
from commander.context import Context, Peers
from commander.control import ControlServer
from commander.recorder import Recorder
from commander.registry import Dispatcher
from trader.kernel import bus, proc

log = logging.getLogger("flatguard")


async def main() -> int:
    child = proc.make_child("commander")
    proc.install_signal_handlers(child.stop)
    cfg, paths = child.cfg, child.paths
    audit = Audit(paths.journal, cfg.journal.max_bytes, cfg.journal.keep_days)
    peers = Peers(child.ctx, paths)
    ctx = Context(cfg=cfg, paths=paths, peers=peers, audit_log=audit,
                  confirmations=Confirmations(cfg.control.confirm_timeout),
                  recorder=Recorder(child.ctx, paths.events_out, paths.recordings,
                                    cfg.record.max_bytes))
    dispatcher = Dispatcher(ctx)
    servers = [ControlServer(dispatcher, bus.Responder(child.ctx, paths.control, "commander"),
                             "ctl")]
    auth: Any = None
    if cfg.control.tcp:
        from commander import curve

        assert cfg.control.server_key and cfg.control.allowed_keys  # config validation
        auth = curve.start_authenticator(child.ctx, cfg.control.allowed_keys)
        tcp = curve.CurveResponder(child.ctx, cfg.control.tcp, "commander", cfg.control.server_key)
        servers.append(ControlServer(dispatcher, tcp, "tcp"))
        log.info("event=tcp_control endpoint=%s", tcp.endpoint)
    tasks = [asyncio.create_task(s.serve(), name=f"serve-{s.channel}") for s in servers]
    telegram = None
    if cfg.telegram.enabled:
        from commander.telegram import TelegramChannel, TelegramError

        try:
            telegram = TelegramChannel(cfg.telegram, dispatcher, ctx)
            tasks.append(asyncio.create_task(telegram.run(), name="telegram"))
        except TelegramError as e:  # the local control socket must work regardless
            log.error("event=telegram_disabled error=%s", e)
    await child.ready(control=paths.control, tcp=cfg.control.tcp or "")
    log.info("event=ready control=%s telegram=%s", paths.control, bool(telegram))
    code = 0
    try:
        while not child.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop.wait(), cfg.supervisor.heartbeat_interval)
            child.beat()
            if child.supervisor_lost():
                log.warning("event=supervisor_lost action=exit")
                break
            dead = [t for t in tasks if t.done()]
            if dead:
                exc = dead[0].exception() if not dead[0].cancelled() else None
                log.error("event=channel_died task=%s error=%r", dead[0].get_name(), exc)
                code = 1
                break
    finally:
        child.state = "STOPPING"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if ctx.recorder is not None and ctx.recorder.recording:
            ctx.recorder.stop()
        if telegram is not None:
            await telegram.close()
        for s in servers:
            s.close()
        if auth is not None:
            auth.stop()
        peers.close()
        audit.close()
        child.close()
    log.info("event=stopped code=%d", code)
    return code
