"""What the supervisor does about a child: an unexpected exit, a hang, a long absence.

Read from the ChildSpec table (supervisor/childspec.py), never from names: the trader's exit or
hang is a kill-switch trigger; a refusal (its spec's ``refusal_code``) is never restarted; other
exits and hangs go to the restart policy (supervisor/restarts.py); a child with a
``down_trigger`` (the connector) down longer than ``supervisor.connector_grace`` runs the kill
switch. The clocks are the port's and the /proc reader is given, so every judgement here is
tested in-process with a fake clock (tests/unit/supervisor/test_supervisor_policy.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from supervisor import hang
from supervisor.children import FAILED, RUNNING, Child
from supervisor.childspec import SPECS, OnExit, exit_trigger

if TYPE_CHECKING:
    from supervisor.ports import PolicyPort

log = logging.getLogger("flatguard")


class ChildPolicy:
    def __init__(self, sup: PolicyPort, read: hang.Reader = hang.read_text) -> None:
        self.sup = sup
        self.read = read  # /proc, or a test's fake
        self.down_since: dict[str, float] = {}  # children with a down_trigger: down since

    def hang_limit(self, name: str) -> float:
        """A hang is ``liveness x interval`` late for the trading path (trader, connector). The
        notifier and commander run at a lower priority and only cost a restart when killed, so a
        loaded machine gives them their spec's ``hang_factor`` times the slack before they count
        as hung. This is the bound supervisor/hang.py judges from: a late beat whose /proc
        evidence says starved (run-queue wait, start-up, I/O) is extended up to hang.CAP_FACTOR
        x it."""
        return self.sup.cfg.hang_timeout * SPECS[name].hang_factor

    @property
    def stale_backstop(self) -> float:
        cfg = self.sup.cfg
        return cfg.risk.stale_halt + 2 * cfg.hang_timeout + 1.0

    def _kill_switch(self, trigger: str, reason: str) -> None:
        assert self.sup.killswitch is not None
        self.sup.killswitch.trigger(trigger, reason)

    def on_exit(self, ch: Child, code: int) -> None:
        sup, spec = self.sup, SPECS[ch.name]
        how = f"signal {-code}" if code < 0 else f"code {code}"
        if ch.expected_exit or sup.shutting_down:
            log.info("stopped process=%s %s", ch.name, how)
            return
        log.error("process=%s pid exited unexpectedly with %s", ch.name, how)
        if spec.refusal_code is not None and code == spec.refusal_code:
            sup.refused.add(ch.name)  # a refusal: restarting cannot fix the set-up
            ch.state = FAILED
            sup.alert("critical", f"{ch.name} refused to start", sup.refusal(ch.name))
            return
        if spec.on_exit is OnExit.KILL_SWITCH:
            ks = sup.killswitch
            assert ks is not None
            if not sup.halt.halted or not ks.running:
                ks.trigger(exit_trigger(spec, code), f"the {ch.name} exited unexpectedly ({how})")
            return
        sup.restart_later(ch, f"exited with {how}")

    def hung(self, ch: Child, why: str) -> None:
        spec = SPECS[ch.name]
        if spec.on_exit is OnExit.KILL_SWITCH:
            self._kill_switch(spec.hang_trigger, f"the {ch.name} is hung: {why}")
            return
        log.error("process=%s hung: %s; killing it", ch.name, why)
        ch.expected_exit = True  # our own kill: the restart below is the policy, not on_exit
        ch.kill_group()
        self.sup.restart_later(ch, f"hung ({why})")

    def kill_switch_watchdog(self) -> None:
        """A kill-switch run that ended unverified (our own bug, an exception) starts again:
        nothing but a verified flat, ``abort`` or a person's ``resume`` ends a flatten."""
        sup, ks = self.sup, self.sup.killswitch
        if ks is None or sup.shutting_down or not ks.needs_restart():
            return
        assert ks.task is not None
        err = ks.task.exception()
        why = (f"the kill switch's flatten ended unverified ({type(err).__name__}: {err})"
               if err is not None else "the kill switch's flatten ended unverified")
        if sup.halt.trigger == "abort":
            return
        log.critical("watchdog: %s; starting it again", why)
        ks.task = None
        asyncio.get_running_loop().create_task(ks.resume_pending(why))

    def check(self) -> None:
        """One turn of the supervisor's watch loop: every heartbeat judged, every absence timed."""
        sup = self.sup
        now = sup.clock()
        tick = min(0.05, sup.cfg.supervisor.heartbeat_interval / 4)  # the watch loop's interval
        for ch in sup.children.values():
            if ch.pid is None or ch.state != RUNNING:
                continue  # STARTING: start-up has its own ready_timeout
            if ch.judge is None or ch.judge.pid != ch.pid:  # one judge per process generation
                # tick: a longer gap between two checks is the supervisor's own stall
                ch.judge = hang.Judge(ch.pid, self.hang_limit(ch.name), tick, read=self.read)
            d = ch.judge.assess(now, ch.hb.at, ch.hb.loop)
            if d.verdict == hang.Verdict.HUNG:
                self.hung(ch, d.message)
                continue
            if d.changed and d.verdict == hang.Verdict.STARVED:  # once per late episode: why
                log.warning("process=%s heartbeat late, not hung: %s; extended up to %g s",
                            ch.name, d.message, ch.judge.cap)
            elif d.changed and d.evidence:  # the end of an extension: how close a call it was
                log.warning("process=%s heartbeat late, not hung: %s (limit %g s)", ch.name,
                            d.evidence, ch.judge.bound)
            if d.verdict == hang.Verdict.OK and SPECS[ch.name].stale_backstop and ch.hb.last_md:
                # Beats but no progress. One condition, one key (risk.stale_halt): the trader's
                # own guard acts first with a better reason; this is the backstop if it does not.
                idle = sup.wall() - ch.hb.last_md
                if idle > self.stale_backstop:
                    self.hung(ch, f"no market data processed for {idle:.1f} s")
        if not sup.shutting_down:
            self._check_down(now)

    def _check_down(self, now: float) -> None:
        sup, grace = self.sup, self.sup.cfg.supervisor.connector_grace
        for name, ch in sup.children.items():
            trigger = SPECS[name].down_trigger
            if not trigger:
                continue
            down = ch.pid is None or ch.state != RUNNING
            if not down:
                self.down_since.pop(name, None)
                continue
            since = self.down_since.setdefault(name, now)
            if not sup.halt.halted and now - since > grace:
                self._kill_switch(trigger, f"the {name} has been down for more than {grace:g} s")



class ProofSchedule:
    """When the watch loop proves the kill path (supervisor/killpath.py): every
    ``killswitch.check_interval``, and within ``killswitch.backoff`` of the last proof while
    there is trouble (the last proof failed, or the connector's exchange errors rose), so
    /metrics' killpath_ready says an outage within seconds, not at the next check_interval."""

    def __init__(self, now: float, check_interval: float, backoff: float) -> None:
        self.check_interval, self.backoff = check_interval, backoff
        self.last = now
        self.next = now + check_interval

    def due(self, now: float, trouble: bool) -> bool:
        if trouble:
            self.next = min(self.next, self.last + self.backoff)
        if now < self.next:
            return False
        self.last, self.next = now, now + self.check_interval
        return True
