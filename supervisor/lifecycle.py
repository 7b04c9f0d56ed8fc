"""``up`` from first line to last: start, watch, and the orderly stop.

Orderly stop (SIGTERM, SIGINT, and SIGHUP -- a dropped SSH session must never leave the account
unmanaged, so it is treated exactly like SIGTERM, unless SIGHUP was already ignored when flatguard
started, as under ``nohup``: then it stays ignored): the trader is stopped gracefully, the
connector is fenced (it signs nothing more; what it signed before may land until its recvWindow
ends), then the account is taken flat (``supervisor.shutdown = "flatten"``, the default), only
its orders cancelled (``"cancel"``) or left as it is (``"leave"``), through the same loop as the
kill switch (not counted as a kill-switch run), with the same in-flight bound. Verified within
``shutdown_timeout``: the exchange's dead-man switch is disarmed, exit 0, not halted. Not
verified: HALTED (unverified) is written, the dead-man switch stays armed, exit 1, and the next
``up`` resumes the flatten.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import click

from supervisor import endings, fencing, sdnotify
from supervisor.app import Supervisor
from supervisor.childspec import EX_CONFIG, stop_order
from supervisor.errors import StartupError
from trader.kernel import config, runpaths
from trader.kernel.journal import HaltState
from trader.kernel.protocol import TRADER

log = logging.getLogger("flatguard")

TRADER_STOP_TIMEOUT = 10.0
CHILD_STOP_TIMEOUT = 10.0


async def orderly_stop(sup: Supervisor) -> int:
    sup.shutting_down = True
    sup.hold_for_stop()  # normally done when the stop was asked for (request_stop)
    mode = sup.cfg.supervisor.shutdown
    sdnotify.stopping(f"orderly stop: shutdown={mode}")  # systemd: TimeoutStopSec from here
    code = 0
    t0 = time.monotonic()
    deadline = t0 + sup.cfg.supervisor.shutdown_timeout
    log.warning("orderly stop: shutdown=%s", mode)
    trader = sup.children.get(TRADER)
    if trader is not None:
        await trader.stop(TRADER_STOP_TIMEOUT)
    ks = sup.killswitch
    verified = mode == "leave"  # the person asked for orders left live: nothing to cancel them
    if ks is not None and sup.flattener is not None:
        ks.stop_watching()  # this stop's own flatten proves the account from here on
        if mode != "leave" and not ks.running:
            ks.inflight_until = max(ks.inflight_until,
                                    await fencing.fence_orders(sup, "orderly stop"))
        if ks.running:
            assert ks.task is not None
            try:
                await asyncio.wait_for(asyncio.shield(ks.task), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                ks.task.cancel()
            halt = sup.halt
            verified = halt.verified_flat and not ks.needs_restart()
            code = 0 if verified else 1
        elif mode != "leave" and not (sup.halt.halted and sup.halt.trigger == "abort"):
            outcome = await ks.flatten_until_verified(None, deadline, t0, cancel_only=mode == "cancel")
            if outcome.verified:
                verified = True
                what = "flat" if mode == "flatten" else "no open orders"
                log.warning("orderly stop: account %s (verified, %d round(s), %.2fs)", what,
                            outcome.rounds, outcome.duration)
            else:
                assert sup.journal is not None
                reason = ("orderly stop could not verify the account "
                          f"{'flat' if mode == 'flatten' else 'free of orders'} within "
                          f"{sup.cfg.supervisor.shutdown_timeout:g} s")
                sup.journal.set_halt(HaltState(True, reason, "shutdown", time.time(), False))
                code = 1
    # The exchange's dead-man switch is disarmed only after a verified flat: with orders or
    # positions possibly left, it stays armed and cancels the orders on the exchange.
    if verified:
        await fencing.disarm_dms(sup)
    else:
        log.warning("orderly stop: not verified flat, the exchange's dead-man switch stays armed")
    # One alert says how it ended (supervisor/endings.py); the notifier goes last so it can
    # deliver it, and children obey only our SIGTERM (trader/sigterm.py), not the group's.
    flat = verified and mode == "flatten"
    if ks is not None:
        ks.settle(flat)  # a trigger during this stop: HALTED by it, never a second flatten
    sup.ending = endings.after_stop(sup, code)
    sup.alert(sup.ending.level, sup.ending.title, sup.ending.text)
    # The notifier goes last so it can deliver the stop messages.
    for name in stop_order():
        ch = sup.children.get(name)
        if ch is not None:
            await ch.stop(CHILD_STOP_TIMEOUT)
    if ks is not None and ks.settle(flat):  # one that came while the children stopped
        sup.ending = endings.after_stop(sup, code)  # the last line says it
    if sup.sim is not None:
        await sup.sim.stop()
    return code


async def teardown(sup: Supervisor) -> None:
    if sup._lock_fd is None:
        return  # we never owned this run directory (another `up` holds it): touch nothing
    for ch in sup.children.values():  # anything still alive after a failed start-up
        if ch.pid is not None:
            ch.expected_exit = True
            ch.kill_group()
            await ch.wait_exit(5.0)
    if sup.sim is not None and sup.sim.proc.returncode is None:
        await sup.sim.stop()
    if getattr(sup, "server_task", None) is not None:
        sup.server_task.cancel()  # before its socket closes under it (a logged ZMQError)
    if getattr(sup, "server", None) is not None:
        sup.server.close()
    if getattr(sup, "proxy", None) is not None:
        sup.proxy.stop()
    if sup.notify is not None:
        sup.notify.close()
    if sup.flattener is not None:
        await sup.flattener.close()
    for p in sup.paths.socket_files():
        p.unlink(missing_ok=True)
    sup.paths.config_json.unlink(missing_ok=True)
    sup.ctx.destroy(0)
    os.close(sup._lock_fd)


def stop_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM and SIGINT stop in order; so does SIGHUP (a dropped SSH session), unless it was
    ignored when we started (``nohup``): whoever started us asked for it to be ignored."""
    hup_ignored = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    return (signal.SIGTERM, signal.SIGINT) + (() if hup_ignored else (signal.SIGHUP,))


async def run(cfg: config.Config, paths: runpaths.RunPaths) -> int:
    sdnotify.init()  # before any child is spawned: they must not inherit NOTIFY_SOCKET
    sup = Supervisor(cfg, paths)
    loop = asyncio.get_running_loop()
    for sig in stop_signals():
        loop.add_signal_handler(sig, sup.request_stop)  # handlers only enqueue
    code = 1
    ending: endings.Ending | None = None
    try:
        try:
            await sup.start()
        except StartupError as e:
            click.echo(f"error: {e}", err=True)
            trader = sup.children.get(TRADER)
            if sup.journal is not None and (trader is None or trader.proc is None):
                sup.journal.end_run(sup.run_id)  # nothing traded: not an unclean end
            # A child's refusal is the set-up's fault: exit EX_CONFIG too, which the systemd
            # unit's RestartPreventExitStatus= lists, so it never restart-loops.
            code = EX_CONFIG if sup.refused else 1
            ending = endings.not_started(sup, str(e), code)
            await endings.deliver(sup, ending)
            return code
        click.echo(
            f"flatguard ready: state={sup.trading_state()} control={paths.control} "
            f"metrics=http://{sup.cfg.metrics.host}:{sup.metrics_port}/metrics "
            f"run_dir={paths.root}" + (f" sim={sup.sim.url}" if sup.sim else ""), nl=True)
        sys.stdout.flush()
        sdnotify.ready(f"state={sup.trading_state()}")
        await sup.watch()
        code = await orderly_stop(sup)
        ending = sup.ending
        if sup.journal is not None:
            sup.journal.end_run(sup.run_id)
        return code
    except Exception as e:  # a bug of ours: said, alerted, and the run left unclean
        log.exception("supervisor crashed: %s", e)
        code, ending = 1, endings.crashed(e)
        await endings.deliver(sup, ending)
        return code
    finally:
        await teardown(sup)
        endings.say(ending or endings.Ending(code, "crashed", "ended without an orderly stop; "
                                             + endings.NEXT_UP_RESUMES))


def up_main(config_path: str | None, run_dir: str | None, log_file: str | None = None) -> int:
    from trader.kernel.proc import setup_logging

    setup_logging("supervisor")
    try:
        cfg = config.load(config_path)
    except config.ConfigError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    from supervisor import preflight

    problems = preflight.check(cfg, os.environ)  # before the run dir, journal or any process
    if problems:
        for p in problems:
            click.echo(f"error: {p}", err=True)
        return 2
    try:
        paths = runpaths.prepare(runpaths.resolve(run_dir))
    except runpaths.RunDirError as e:
        click.echo(f"error: {e}", err=True)
        return 1
    from trader.kernel import logsetup

    lc = cfg.logging
    try:  # one file for every process; --log-file wins over [logging] file
        logsetup.setup_supervisor(log_file or lc.file, lc.format, lc.max_bytes, lc.backups,
                                  paths.root)
    except logsetup.LogSetupError as e:
        click.echo(f"error: {cfg.source}: logging.file: {e}", err=True)
        return 2
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-500")  # needs privilege; best effort (children are raised instead)
    except OSError:
        pass
    os.umask(0o077)
    return asyncio.run(run(cfg, paths))
