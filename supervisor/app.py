"""The supervisor: spawns every process, watches them, runs the kill switch, serves /metrics.

Start-up and recovery are the same path (crash-only): whatever the journal says -- HALTED, a
flatten not yet verified, a previous run that never ended cleanly -- is acted on before the
trader is allowed to trade.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import zmq
import zmq.asyncio

from supervisor import fencing, killpath, restarts, rundir, simchild
from supervisor.children import EXITED, FAILED, Child
from supervisor.childspec import SPECS, OnExit
from supervisor.endings import Ending
from supervisor.errors import StartupError
from supervisor.flatten import Flattener
from supervisor.killswitch import KillSwitch
from supervisor.metrics_truth import Truth
from supervisor.policy import ChildPolicy, ProofSchedule
from supervisor.proxy import EventProxy
from supervisor.requests import RequestHandlers
from trader.kernel import bus, config, runpaths
from trader.kernel.journal import HaltState, Journal
from trader.kernel.metrics import Registry
from trader.kernel.proc import NotifyClient
from trader.kernel.protocol import TRADER

log = logging.getLogger("flatguard")

JOURNAL_PRUNE_INTERVAL = 3600.0  # s


async def _all_or_none(steps: list[Any]) -> None:
    """Run start-up steps side by side; the first failure cancels the rest and is raised (the
    caller's teardown stops whatever was started)."""
    tasks = [asyncio.ensure_future(s) for s in steps]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for t in tasks:  # the first failure in the given order
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


class Supervisor:
    def __init__(self, cfg: config.Config, paths: runpaths.RunPaths) -> None:
        self.cfg = cfg
        self.paths = paths
        self.metrics = Registry()
        self.stop_requested = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        self.children: dict[str, Child] = {}
        self.sim: simchild.SimChild | None = None
        self.journal: Journal | None = None
        self.killswitch: KillSwitch | None = None
        self.flattener: Flattener | None = None
        self.notify: NotifyClient | None = None
        self.killpath_ready = False
        self.killpath_failures = 0
        self._killpath_checking = False
        self._killpath_task: asyncio.Task[None] | None = None
        self.refused: set[str] = set()  # children that exited EX_CONFIG: not restarted
        self.metrics_port = 0
        self.shutting_down = False
        self._lock_fd: int | None = None
        self._halt_cache = HaltState(False)
        self.ban_board: Any = None
        self.ban_host: str | None = None  # None: any host (one venue per stack)
        self.flapping: set[str] = set()
        self.truth = Truth()  # what /metrics keeps between scrapes (the last account values)
        self.ending: Ending | None = None  # how an orderly stop ended (supervisor/endings.py)
        self.clock, self.wall, self.sleep = time.monotonic, time.time, asyncio.sleep  # injectable
        self.policy = ChildPolicy(self)  # exits, hangs, absences (supervisor/policy.py)

    # --- state ------------------------------------------------------------------------------

    @property
    def halt(self) -> HaltState:
        """The journal's halt state; the last one read if the journal cannot be read now."""
        assert self.journal is not None
        try:
            self._halt_cache = self.journal.halt_state()
        except Exception as e:  # noqa: BLE001 - a failing journal must not break status/metrics
            log.error("journal read failed (halt state): %s: %s", type(e).__name__, e)
        return self._halt_cache

    def trading_state(self) -> str:
        if self.killswitch is not None and self.killswitch.running:
            return "KILLING"
        if self.halt.halted:
            return "HALTED"
        trader = self.children.get(TRADER)
        return (trader.hb.state or "STARTING") if trader and trader.pid else "STOPPED"

    def alert(self, level: str, title: str, text: str, key: str | None = None) -> None:
        """Log and notify. ``key``: alerts with one key replace each other at the notifier."""
        log.log(logging.CRITICAL if level == "critical" else logging.WARNING,
                "ALERT level=%s title=%r text=%r", level, title, text)
        if self.notify is not None:
            self.notify.send(level, title, text, key=key)

    def samples(self) -> list[list[Any]]:
        """Everything /metrics shows: the supervisor's registry plus each live child's, made to
        tell the truth when processes are down (supervisor/metrics_truth.py)."""
        return self.truth.samples(self)

    # --- start-up ---------------------------------------------------------------------------

    def _lock(self) -> None:
        self._lock_fd = rundir.acquire_lock(self.paths)

    def _open_journal(self) -> None:
        jc = self.cfg.journal
        self.journal = rundir.open_journal(self.paths, jc.max_bytes, jc.keep_days)
        self.prune_journal()
        self.run_id = self.journal.start_run(os.getpid())

    def prune_journal(self) -> None:
        """Audit, command and kill-switch bookkeeping rows past ``journal.keep_days`` or above
        the size budget go; orders, fills and the halt row never do."""
        assert self.journal is not None
        try:
            report = self.journal.prune()
        except Exception as e:  # noqa: BLE001 - a full or failing journal is reported, not fatal
            log.error("journal prune failed: %s: %s", type(e).__name__, e)
            self.metrics.inc("flatguard_journal_errors_total", process="supervisor")
            return
        if report.total:
            log.warning("journal pruned: deleted=%s used_bytes=%d max_bytes=%d", report.deleted,
                        report.used_bytes, report.max_bytes)
        if report.full:
            self.alert("critical", "Journal nearly full",
                       f"{report.used_bytes} of {report.max_bytes} bytes used by orders and "
                       "fills that are never pruned: raise [journal] max_bytes", key="journal-full")

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.sim is not None:
            env["FLATGUARD_API_KEY"] = self.sim.api_key
            env["FLATGUARD_API_SECRET"] = self.sim.api_secret
        elif self.cfg.exchange.id == "sim" and not self.cfg.exchange.key_file:
            # An external `flatguard sim` with its well-known default keys, unless told otherwise.
            env.setdefault("FLATGUARD_API_KEY", simchild.SIM_KEY)
            env.setdefault("FLATGUARD_API_SECRET", simchild.SIM_SECRET)
        return env

    async def _build_killpath(self) -> None:
        from trader.exchange.keys import KeysError, load_keys

        ex_cfg = self.cfg.exchange
        try:
            keys = load_keys(ex_cfg.key_file, self.child_env())
        except KeysError as e:
            raise StartupError(str(e)) from None
        from trader.exchange.ban import BanBoard

        key, secret = keys.key, keys.secret
        # The same ban board as the connector's: a ban any process saw is never called into.
        self.ban_board = BanBoard.in_run_dir(self.paths.root)
        # The connector's venue, its own REST session (supervisor/killpath.py).
        self.flattener = killpath.open_flattener(ex_cfg, key, secret, self.ban_board,
                                                 self.cfg.killswitch.recv_window)
        try:
            await asyncio.wait_for(self.flattener.prepare(), self.cfg.supervisor.ready_timeout)
        except Exception as e:
            await self.flattener.close()
            raise StartupError(
                f"the kill path's exchange session could not be prepared ({type(e).__name__}: "
                f"{e}); check exchange.url, the API keys and the network. Not trading without "
                "a working kill switch.") from None
        self.killpath_ready = True

    async def _fence_trader(self) -> None:
        await fencing.fence_trader(self)

    async def _fence_orders(self, reason: str) -> float:
        return await fencing.fence_orders(self, reason)

    def _resume_bound(self) -> float:
        return time.time() + self.cfg.exchange.recv_window / 1000.0 + fencing.clock_slack(self)

    async def ask_connector(self, op: str, args: dict[str, Any], timeout: float) -> Any:
        """One request to the connector's own ROUTER (supervisor/fencing.py's port)."""
        req = bus.Requester(self.ctx, self.paths.connector, "supervisor")
        try:
            return await req.request(op, args, timeout=timeout)
        finally:
            req.close()

    def banned_for(self) -> float:
        """Seconds left of an exchange ban any process of this stack has seen."""
        board = getattr(self, "ban_board", None)
        if board is None:
            return 0.0
        try:
            return float(board.banned_for(self.ban_host))
        except Exception:  # noqa: BLE001 - a garbled ban file is no ban
            return 0.0

    async def start(self) -> None:
        from trader.engine.strategy import StrategyLoadError, load_strategy

        try:
            load_strategy(self.cfg.strategy.name)  # a typo must fail now, not in the trader
        except StrategyLoadError as e:
            raise StartupError(f"{self.cfg.source}: strategy.name: {e}") from None
        self._lock()
        self._open_journal()
        proxy_ctx = zmq.Context.instance()
        self.proxy = EventProxy(proxy_ctx, self.paths.events_in, self.paths.events_out)
        self.proxy.start()
        self.server = bus.Responder(self.ctx, self.paths.supervisor, "supervisor")
        self.handlers = RequestHandlers(self)
        self.server_task = asyncio.get_running_loop().create_task(
            self.server.serve(self.handlers.handle))
        self.notify = NotifyClient(self.ctx, self.paths, "supervisor")
        if self.cfg.metrics.enabled:
            from supervisor.metrics_http import serve

            try:
                _srv, self.metrics_port = serve(self.cfg.metrics.host, self.cfg.metrics.port,
                                                self.samples)
            except OSError as e:  # taken since preflight checked it: still one line, clean end
                raise StartupError(f"{self.cfg.source}: metrics.port = {self.cfg.metrics.port}: "
                                   f"cannot listen on {self.cfg.metrics.host} ({e.strerror}); "
                                   "choose a free port, or 0 for any") from None
        if self.cfg.exchange.id == "sim" and not self.cfg.exchange.url:
            self.sim = await simchild.start_sim()
            log.info("started process=sim pid=%d url=%s", self.sim.pid, self.sim.url)
            self.cfg = config.from_mapping(
                {**config.to_plain(self.cfg), "exchange": {
                    **config.to_plain(self.cfg.exchange), "url": self.sim.url}}, self.cfg.source)
        self.paths.config_json.write_text(config.dumps(self.cfg))
        os.chmod(self.paths.config_json, 0o600)
        env = self.child_env()
        for name in SPECS:
            self.children[name] = Child(name, self.paths.root, env, self.policy.on_exit,
                                        clock=self.clock)
        halt = self.halt
        waves: dict[int, list[str]] = {}
        for name, spec in SPECS.items():
            if not spec.start_when_halted and halt.halted:
                log.warning("HALTED (%s: %s): the %s is not started. `flatguard ctl resume "
                            "--yes` after checking the account.", halt.trigger, halt.reason, name)
                continue
            waves.setdefault(spec.start_wave, []).append(name)
        resume = halt.halted and not halt.verified_flat and halt.trigger != "abort"
        if resume:  # the flatten the last run left unverified comes first, before any child
            await self._build_killswitch()
            assert self.killswitch is not None
            await self.killswitch.resume_pending(halt.reason)
        else:  # wave 0 starts while the kill path prepares (each takes 0.4-1 s)
            await _all_or_none([*(self._start_child(n) for n in waves.pop(0, [])),
                                self._build_killswitch()])
        for wave in sorted(waves):
            await _all_or_none([self._start_child(n) for n in waves[wave]])
        self.alert("info", "flatguard started",
                   f"state={self.trading_state()} symbols={', '.join(self.cfg.exchange.symbols)}")

    async def _build_killswitch(self) -> None:
        await self._build_killpath()
        assert self.journal is not None and self.flattener is not None
        ks = self.cfg.killswitch
        self.killswitch = KillSwitch(self.journal, self.flattener, ks.backoff, self.alert,
                                     self.metrics, self._fence_trader, alert_every=ks.alert_every,
                                     fence_orders=self._fence_orders, watch_after=ks.watch_after,
                                     banned_for=self.banned_for, resume_bound=self._resume_bound)

    async def _start_child(self, name: str) -> None:
        ch = self.children[name]
        ch.spawn()
        deadline = time.monotonic() + self.cfg.supervisor.ready_timeout
        while not ch.ready.is_set() and name not in self.refused and time.monotonic() < deadline:
            try:  # a refusal (exit 78) must end start-up now, not after ready_timeout
                await asyncio.wait_for(ch.ready.wait(), 0.1)
            except TimeoutError:
                pass
        if name in self.refused and not self.shutting_down:
            raise StartupError(self.refusal(name))
        if not ch.ready.is_set() and ch.pid is not None and not self.shutting_down:
            raise StartupError(
                f"process {name} (pid {ch.pid}) was not ready within "
                f"{self.cfg.supervisor.ready_timeout:g} s; see its log lines above")
        # The trader's exit during start-up is the kill switch's (policy.on_exit), not an error.
        if (ch.state in (EXITED, FAILED) and SPECS[name].on_exit is not OnExit.KILL_SWITCH
                and not self.shutting_down):
            raise StartupError(f"process {name} exited during start-up; see its log lines above")

    def refusal(self, name: str) -> str:
        why = "it will not trade with this set-up (its reason is in the log line above)"
        handlers = getattr(self, "handlers", None)
        if handlers is not None and handlers.refusals.get(name):
            why = handlers.refusals[name]  # the child's own reason, naming the key to fix
        elif (SPECS[name].opens_session and self.flattener is not None
              and self.flattener.hedged):
            why = ("the account is in hedge (dual-side) position mode and flatguard trades in "
                   "one-way mode only: switch the account to one-way mode in the exchange's "
                   "settings (with no open positions or orders) and start again")
        return f"process {name} refused to start (exit {SPECS[name].refusal_code}): {why}"

    def request_stop(self) -> None:
        """A stop signal: the watch loop ends and the orderly stop owns the account from now."""
        self.stop_requested.set()
        self.hold_for_stop()

    def hold_for_stop(self) -> None:
        """The trigger rule (supervisor/killswitch.py): a stop that flattens is ``shutdown``'s;
        one that leaves the account (``leave``, HALTED by ``abort``) holds nothing."""
        ks = self.killswitch
        if ks is None or self.cfg.supervisor.shutdown == "leave":
            return
        if self.halt.halted and self.halt.trigger == "abort":
            return
        ks.hold("orderly stop")

    def start_trader(self) -> None:
        asyncio.get_running_loop().create_task(self._start_child(TRADER))

    # --- watching ---------------------------------------------------------------------------

    def restart_later(self, ch: Child, why: str) -> None:
        """The restart policy (supervisor/restarts.py); RESTARTING at once."""
        restarts.restart_later(self, ch, why)

    def check_heartbeats(self) -> None:
        """Hangs and absences (supervisor/policy.py)."""
        self.policy.check()

    def hang_limit(self, name: str) -> float:
        return self.policy.hang_limit(name)

    async def check_killpath(self) -> None:
        """Prove the kill path's own session now (supervisor/killpath.py)."""
        await killpath.check(self)

    def kill_switch_watchdog(self) -> None:
        """A kill-switch run that ended unverified starts again (supervisor/policy.py)."""
        self.policy.kill_switch_watchdog()

    async def watch(self) -> None:
        interval = min(0.05, self.cfg.supervisor.heartbeat_interval / 4)
        ks = self.cfg.killswitch
        proofs = ProofSchedule(self.clock(), ks.check_interval, ks.backoff)
        next_prune = self.clock() + JOURNAL_PRUNE_INTERVAL
        from supervisor import sdnotify  # systemd's watchdog: pinged only while this loop turns

        while not self.stop_requested.is_set():
            sdnotify.watchdog()
            if self.clock() >= next_prune:
                next_prune = self.clock() + JOURNAL_PRUNE_INTERVAL
                self.prune_journal()
            self.check_heartbeats()
            self.kill_switch_watchdog()
            # After a failed proof, or when the connector's exchange calls fail, prove again
            # within killswitch.backoff (supervisor/policy.py's ProofSchedule).
            trouble = ((not self.killpath_ready or self.truth.exchange_trouble(self))
                       and not self._killpath_checking)
            if proofs.due(self.clock(), trouble):
                # Held: the loop keeps only weak references to tasks.
                self._killpath_task = asyncio.get_running_loop().create_task(
                    self.check_killpath())
            try:
                await asyncio.wait_for(self.stop_requested.wait(), interval)
            except TimeoutError:
                pass
