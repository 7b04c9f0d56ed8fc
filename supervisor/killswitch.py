"""The kill switch: fence the trader, persist HALTED, alert, flatten until verified.

It is a transition of the supervisor's trading state (ARMED -> KILLING -> HALTED), never a flag
set from anywhere: every trigger (trader exit, hang, no progress, in-process dead switch, a
person's ``kill``, a fatal exchange error, the connector gone too long) calls ``trigger()``, and
only the first one while a run is in progress starts it.

Order matters (lesson 5, no fight loops): the trader's process group is SIGKILLed and reaped
before the HALTED state is written, and HALTED is durable before the first exchange call.

A failed flatten round is always logged and counted; a person is alerted on the first failure,
when the kind of failure changes, and then every ``alert_every`` failed rounds, so an exchange
outage of an hour is a handful of messages, not 720.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from supervisor.flatten import Flattener, RoundResult
from trader.journal import HaltState, Journal
from trader.metrics import Registry

log = logging.getLogger("flatguard")

Alert = Callable[[str, str, str], None]  # level, title, text


@dataclass
class FlattenOutcome:
    verified: bool
    rounds: int
    duration: float
    last: RoundResult | None


class KillSwitch:
    def __init__(self, journal: Journal, flattener: Flattener, backoff: float, alert: Alert,
                 metrics: Registry, fence: Callable[[], Awaitable[None]],
                 alert_every: int = 12) -> None:
        self.journal = journal
        self.flattener = flattener
        self.backoff = backoff
        self.alert = alert
        self.metrics = metrics
        self.fence = fence
        self.alert_every = max(1, alert_every)
        self.task: asyncio.Task[FlattenOutcome] | None = None
        self.rounds_total = 0
        self.last_duration = 0.0
        self.current_rounds = 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def trigger(self, trigger: str, reason: str) -> bool:
        """Start a kill-switch run unless one is already running. Returns True if started."""
        if self.running:
            log.info("kill switch already running; trigger=%s ignored reason=%s", trigger, reason)
            return False
        self.task = asyncio.get_running_loop().create_task(self._run(trigger, reason))
        return True

    async def _run(self, trigger: str, reason: str) -> FlattenOutcome:
        t0 = time.monotonic()
        log.critical("KILL SWITCH trigger=%s reason=%s", trigger, reason)
        await self.fence()  # 1. nothing can re-open what is being closed
        self.journal.set_halt(HaltState(True, reason, trigger, time.time(), verified_flat=False))
        self.metrics.inc("flatguard_killswitch_runs_total", trigger=trigger)  # 2. durable first
        self.alert("critical", f"KILL SWITCH: {trigger}",  # 3. tell a person
                   f"{reason}. Trader stopped; cancelling all orders and closing all positions.")
        run_id = self.journal.start_killswitch(trigger, reason)
        outcome = await self.flatten_until_verified(run_id, deadline=None, t0=t0)  # 4. flatten
        return outcome

    async def resume_pending(self, reason: str) -> None:
        """Start-up found HALTED with the flatten unverified: carry on flattening first."""
        if self.running:
            return

        async def run() -> FlattenOutcome:
            run_id = self.journal.start_killswitch("resume_flatten", reason, counted=False)
            return await self.flatten_until_verified(run_id, None, time.monotonic())

        self.alert("critical", "HALTED: resuming flatten",
                   f"{reason}. The account was not verified flat; flattening before anything else.")
        self.task = asyncio.get_running_loop().create_task(run())

    async def flatten_until_verified(self, run_id: int | None, deadline: float | None, t0: float,
                                     cancel_only: bool = False) -> FlattenOutcome:
        """Rounds every ``backoff`` s until verified (or the monotonic ``deadline`` passes)."""
        rounds = 0
        self.current_rounds = 0
        last: RoundResult | None = None
        alerted_kind, since_alert = "", 0
        while True:
            rounds += 1
            self.current_rounds = rounds
            if run_id is not None:
                self.rounds_total += 1
                self.metrics.inc("flatguard_killswitch_rounds_total")
                self.journal.killswitch_round(run_id)
            try:
                last = await self.flattener.round(cancel_only=cancel_only)
            except Exception as e:  # every failure is retried: this loop must not stop
                last = RoundResult(False, error=f"{type(e).__name__}: {e}")
            if last.flat:
                break
            detail = last.error or (
                f"still open: orders={last.open_orders} positions={last.positions}")
            log.error("flatten round=%d not verified: %s", rounds, detail)
            kind = _failure_kind(last)
            since_alert += 1
            if kind != alerted_kind or since_alert >= self.alert_every:
                alerted_kind, since_alert = kind, 0
                self.alert("critical", f"Flatten round {rounds} not verified", detail[:500])
            if deadline is not None and time.monotonic() + self.backoff > deadline:
                break
            await asyncio.sleep(self.backoff)
        duration = time.monotonic() - t0
        if run_id is not None:
            self.last_duration = duration
            self.metrics.set("flatguard_killswitch_last_duration_seconds", duration)
            self.journal.end_killswitch(run_id, "flat" if last.flat else "unverified")
        if last.flat:
            state = self.journal.halt_state()
            if state.halted:
                self.journal.set_halt(HaltState(True, state.reason, state.trigger, state.since,
                                                verified_flat=True))
            log.warning("flat verified rounds=%d duration=%.3fs cancelled=%d closes=%d",
                        rounds, duration, last.cancelled, last.closes)
            if run_id is not None:
                self.alert("critical", "Account flat (verified on the exchange)",
                           f"{rounds} round(s), {duration:.2f} s. Trading stays HALTED until "
                           "`flatguard ctl resume --yes`.")
        return FlattenOutcome(last.flat, rounds, duration, last)


def _failure_kind(r: RoundResult) -> str:
    """What makes two failed rounds "the same" for alerting: the error class, or still open.

    Error texts carry URLs with timestamps and signatures, so they never repeat exactly.
    """
    return r.error.split(":", 1)[0] if r.error else "still open"
