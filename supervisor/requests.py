"""What the supervisor answers on its ROUTER (sup.sock): heartbeats, ready, halt, status, ...

Heartbeats and halt requests come here on their own socket, not through the event proxy, so an
event flood can never starve them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from supervisor import fencing
from supervisor.children import RUNNING, STARTING, STOPPED
from supervisor.errors import SupervisorRefused
from trader.kernel.bus import Dispatcher
from trader.kernel.journal import HaltState
from trader.kernel.payloads import Halt, Heartbeat
from trader.kernel.protocol import SUPERVISOR, TRADER, SupervisorOp

if TYPE_CHECKING:
    from supervisor.ports import RequestPort

log = logging.getLogger("flatguard")

RESUME_DISARM_WAIT = 2.0  # s


class RequestHandlers:
    def __init__(self, sup: RequestPort) -> None:
        self.sup = sup
        self.refusals: dict[str, str] = {}  # process -> why it refused (op refused)
        Op = SupervisorOp
        self.handle = Dispatcher(SUPERVISOR, {
            Op.HB: self.op_hb, Op.READY: self.op_ready, Op.REFUSED: self.op_refused,
            Op.HALT: self.op_halt, Op.KILL: self.op_kill, Op.STATUS: self.op_status,
            Op.RISK_GATE: self.op_risk_gate, Op.RESUME: self.op_resume, Op.ABORT: self.op_abort})

    def _child_of(self, args: dict[str, Any]) -> Any:
        ch = self.sup.children.get(str(args.get("proc")))
        if ch is None or ch.pid != args.get("pid"):
            return None  # a stale process from a previous generation: ignore it
        return ch

    async def op_hb(self, args: dict[str, Any], msg: Any = None) -> None:
        ch = self._child_of(args)
        if ch is None:
            return
        beat = Heartbeat.from_wire(args)
        hb = ch.hb
        hb.at = time.monotonic()
        hb.loop = beat.loop
        hb.state = beat.state
        hb.last_md = beat.last_md
        hb.last_ok = beat.last_ok
        if beat.metrics is not None:
            hb.metrics = [m for m in beat.metrics if isinstance(m, list) and len(m) == 3]

    async def op_ready(self, args: dict[str, Any], msg: Any = None) -> None:
        ch = self._child_of(args)
        if ch is None:
            return
        if ch.state == STARTING or ch.state != RUNNING:
            ch.state = RUNNING
        ch.hb.at = time.monotonic()
        ch.hb.state = str(args.get("state") or ch.hb.state)
        ch.ready.set()
        log.info("ready process=%s pid=%s", ch.name, ch.pid)

    async def op_refused(self, args: dict[str, Any], msg: Any = None) -> None:
        """A child's reason for refusing this set-up (it exits 78 next): `up`'s last line."""
        ch = self._child_of(args)
        if ch is not None:
            self.refusals[ch.name] = str(args.get("reason") or "")[:500]

    async def op_halt(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        h = Halt.from_wire(args)
        assert self.sup.killswitch is not None
        started = self.sup.killswitch.trigger(h.trigger, f"{h.reason} (from {h.source})")
        return {"started": started, "halted": True}

    async def op_kill(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        return await self.op_halt(Halt("command", str(args.get("reason") or "kill command"),
                                       str(args.get("source") or "command")).to_wire())

    async def op_status(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        sup = self.sup
        halt = sup.halt
        ks = sup.killswitch
        procs = {n: c.summary(sup.hang_limit(n)) for n, c in sup.children.items()}
        if sup.sim is not None:
            alive = sup.sim.proc.returncode is None
            procs["sim"] = {"pid": sup.sim.pid if alive else None, "up": alive,
                            "state": RUNNING if alive else STOPPED, "heartbeat_age_s": None,
                            "restarts": 0}
        return {
            "processes": procs,
            "halted": halt.halted,
            "halt": {"reason": halt.reason, "trigger": halt.trigger, "since": halt.since,
                     "verified_flat": halt.verified_flat},
            "trading_state": sup.trading_state(),
            "killpath_ready": sup.killpath_ready,
            "killswitch": {"running": bool(ks and ks.running),
                           "rounds": ks.current_rounds if ks else 0,
                           "flattening": bool(ks and ks.flattening),
                           "inflight_wait_s": round(ks.inflight_wait, 3) if ks else 0.0,
                           "banned_s": round(sup.banned_for(), 1),
                           "watching": bool(ks and ks.watching),
                           "io_errors": ks.io_errors if ks else 0},
            "stopping": sup.shutting_down,
            "flapping": sorted(sup.flapping),
            "metrics_port": sup.metrics_port,
            "supervisor_pid": __import__("os").getpid(),
        }

    def _refuse_during_stop_or_flatten(self, what: str) -> None:
        """State rule: nothing that adds risk while a stop or a flatten is running."""
        sup = self.sup
        ks = sup.killswitch
        if sup.shutting_down or sup.stop_requested.is_set():
            raise SupervisorRefused(f"{what} refused: flatguard is stopping (an orderly stop is taking the "
                          "account flat); start it again with `flatguard up` once it has exited")
        if ks is not None and (ks.running or ks.flattening):
            raise SupervisorRefused(f"{what} refused: the kill switch is still flattening; wait until "
                          "the account is verified flat (see `flatguard ctl info`)")

    async def op_risk_gate(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        """Asked by the commander before ``unpause``/``unban`` (risk-increasing commands)."""
        what = str(args.get("command") or "this command")
        self._refuse_during_stop_or_flatten(what)
        if self.sup.halt.halted:
            raise SupervisorRefused(f"{what} refused: trading is HALTED; `resume` first")
        return {"ok": True}

    async def op_resume(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        sup = self.sup
        assert sup.journal is not None and sup.killswitch is not None
        self._refuse_during_stop_or_flatten("resume")
        halt = sup.halt
        if not halt.halted:
            raise SupervisorRefused("not halted: nothing to resume")
        if not halt.verified_flat and halt.trigger != "abort":
            raise SupervisorRefused("the account is not verified flat yet; the flatten loop must finish "
                          "first")
        sup.killswitch.stop_watching()  # the account is the new trader's again
        await fencing.unfence(sup)
        # The old countdown goes; the connector re-arms it for the new trader. An exchange call
        # (it may wait for a weight window): the reply to a person does not wait on it.
        disarm = asyncio.ensure_future(fencing.disarm_dms(sup))
        try:
            await asyncio.wait_for(asyncio.shield(disarm), RESUME_DISARM_WAIT)
        except TimeoutError:
            log.warning("resume: the dead-man switch disarm is still on its way; resuming")
        sup.journal.set_halt(HaltState(False))
        log.warning("RESUMED by a person after halt trigger=%s reason=%s", halt.trigger, halt.reason)
        sup.alert("warning", "Trading resumed", f"halt ({halt.trigger}: {halt.reason}) cleared")
        trader = sup.children[TRADER]
        if trader.pid is None:
            sup.start_trader()
        return {"resumed": True, "previous": {"trigger": halt.trigger, "reason": halt.reason}}

    async def op_abort(self, args: dict[str, Any], msg: Any = None) -> dict[str, Any]:
        """Stop the trader at once, leaving positions as they are (a person asked for it)."""
        sup = self.sup
        assert sup.journal is not None and sup.flattener is not None
        trader = sup.children[TRADER]
        if trader.pid is not None:
            trader.expected_exit = True
            trader.signal(signal.SIGKILL)
            await trader.wait_exit(5.0)
        sup.journal.set_halt(HaltState(True, "aborted by a person: positions left as they were",
                                       "abort", time.time(), verified_flat=False))
        try:
            left = [f"{p['symbol']} {p.get('side')} {p.get('contracts')}"
                    for p in await sup.flattener.positions()]
            orders = [f"{o['symbol']} {o['side']} {o.get('amount')} @ {o.get('price')}"
                      for o in await sup.flattener.open_orders()]
        except Exception as e:
            left, orders = [f"unknown: {e}"], []
        sup.alert("critical", "ABORTED: trader stopped without exiting positions",
                  f"left open: positions={left} orders={orders}")
        return {"aborted": True, "positions_left_open": left, "orders_left_open": orders}
