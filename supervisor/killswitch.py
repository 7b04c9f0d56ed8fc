"""The kill switch: fence the trader, persist HALTED, alert, flatten until verified, keep watching.

It is a transition of the supervisor's trading state (ARMED -> KILLING -> HALTED), never a flag
set from anywhere: every trigger (trader exit, hang, no progress, in-process dead switch, a
person's ``kill``, a fatal exchange error, the connector gone too long) calls ``trigger()``, and
only the first one while a run is in progress starts it. Which trigger a run (and HALTED) is
named after is a rule, never a race: the first wins, and an orderly stop that flattens owns the
account from the moment it is asked for (``hold``): a trigger during it fences the trader but
starts no second flatten and never replaces the stop's ``shutdown``; it is settled when the stop
ends (``settle``).

Order matters (lesson 5, no fight loops): the trader's process group is SIGKILLed and reaped
before the HALTED state is written, and HALTED is durable before the first exchange call. Then
the connector is fenced (it signs nothing more for the trader), which bounds the orders that may
still be in flight: one signed before the fence can take effect until its timestamp + its
``recvWindow`` (+ the clock offset). "Verified flat" is a proof: a flat-looking round before that
bound says "flat, waiting N s for orders in flight" and the verdict comes from a round whose
reads start after it. After a verified kill-switch flatten the halted account is watched for
``killswitch.watch_after`` s with cheap reads; anything that appears is flattened and alerted.

Nothing of our own stops the flatten loop: a journal, alert or metrics call that fails is said
loudly on stderr (and alerted where alerting works) and the flatten goes on. The supervisor's
watchdog restarts a run that ended unverified anyway (``needs_restart``).

A failed flatten round is always logged and counted; a person is alerted on the first failure,
when the kind of failure changes, and then every ``alert_every`` failed rounds, all under one
notification key per run, so repeats replace each other; "Account flat" has its own key.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from supervisor.flatten import Flattener, RoundResult
from trader.kernel.journal import HaltState, Journal
from trader.kernel.metrics import Registry
from trader.kernel.redact import scrub_url

log = logging.getLogger("flatguard")

Alert = Callable[..., None]  # (level, title, text, key=None)
INFLIGHT_MARGIN = 0.25  # s past the in-flight bound before the proving round starts


@dataclass
class FlattenOutcome:
    verified: bool
    rounds: int
    duration: float
    last: RoundResult | None


class KillSwitch:
    def __init__(self, journal: Journal, flattener: Flattener, backoff: float, alert: Alert,
                 metrics: Registry, fence: Callable[[], Awaitable[None]],
                 alert_every: int = 12, *,
                 fence_orders: Callable[[str], Awaitable[float]] | None = None,
                 watch_after: float = 0.0, banned_for: Callable[[], float] | None = None,
                 resume_bound: Callable[[], float] | None = None) -> None:
        self.journal = journal
        self.flattener = flattener
        self.backoff = backoff
        self.alert = alert
        self.metrics = metrics
        self.fence = fence
        self.fence_orders = fence_orders
        self.alert_every = max(1, alert_every)
        self.watch_after = watch_after
        self.banned_for = banned_for or (lambda: 0.0)
        self.resume_bound = resume_bound  # in-flight bound for a flatten resumed at start-up
        self.last_round: RoundResult | None = None
        self.task: asyncio.Task[FlattenOutcome] | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.rounds_total = 0
        self.last_duration = 0.0
        self.current_rounds = 0
        self.inflight_until = 0.0  # wall time: orders signed before the fence may land until then
        self.inflight_wait = 0.0  # s the current flat-looking round still waits (status, metric)
        self.banned_wait = 0.0
        self.io_errors = 0  # our own journal/alert/metrics failures inside the kill path
        self.last_verified: bool | None = None  # outcome of the last run, whatever the journal says
        self.trigger_name = ""
        self.flattening = False  # any flatten loop (a run, the watch's, an orderly stop's)
        self.owner = ""  # an orderly stop holding the account (see hold)
        self.deferred: tuple[str, str] | None = None  # the first trigger while held
        self._fences: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def watching(self) -> bool:
        return self.watch_task is not None and not self.watch_task.done()

    def needs_restart(self) -> bool:
        """True when the last run ended without verifying (it raised, or stopped early): the
        supervisor's watchdog then starts the flatten again."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return False
        if self.task.exception() is not None:
            return True
        return self.last_verified is False

    def trigger(self, trigger: str, reason: str) -> bool:
        """Start a kill-switch run unless one is already running. Returns True if started."""
        if self.running:
            log.info("kill switch already running; trigger=%s ignored reason=%s", trigger, reason)
            return False
        if self.owner:
            self.deferred = self.deferred or (trigger, reason)
            log.warning("kill switch held by the %s; trigger=%s deferred reason=%s",
                        self.owner, trigger, reason)
            t = asyncio.get_running_loop().create_task(self._fence_quietly())
            self._fences.add(t)
            t.add_done_callback(self._fences.discard)
            return False
        self.stop_watching()
        self.trigger_name = trigger
        self.task = asyncio.get_running_loop().create_task(self._run(trigger, reason))
        return True

    def hold(self, owner: str) -> None:
        """An orderly stop that flattens owns the account (and the halt trigger) from now on."""
        self.owner = self.owner or owner

    def settle(self, flat: bool) -> bool:
        """The held stop is over: a trigger deferred during it leaves the account HALTED by that
        trigger, as its own run would have (verified flat if the stop proved it flat), unless
        HALTED is already written (the stop's own unverified ``shutdown``, ``abort``, an earlier
        run): that stands. True if HALTED was written here."""
        d, self.deferred = self.deferred, None
        if d is None:
            return False
        state = self._safely("journal", self.journal.halt_state)
        if state is None or state.halted:
            log.warning("kill switch: trigger=%s during the %s not recorded: HALTED (%s) stands",
                        d[0], self.owner, getattr(state, "trigger", "?"))
            return False
        self._safely("journal (HALTED)", self.journal.set_halt,
                     HaltState(True, d[1], d[0], time.time(), verified_flat=flat))
        log.critical("KILL SWITCH trigger=%s during the %s: HALTED (%s)", d[0], self.owner,
                     "verified flat" if flat else "the next up flattens first")
        return True

    async def _fence_quietly(self) -> None:
        try:
            await self.fence()
        except Exception as e:  # noqa: BLE001
            log.error("kill switch: fencing the trader failed: %s: %s", type(e).__name__, e)

    # --- our own I/O never stops the flatten ---------------------------------------------

    def _safely(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - said loudly, then the flatten goes on
            self.io_errors += 1
            text = f"{what} failed inside the kill switch ({type(e).__name__}: {e}); flattening anyway"
            try:
                print(f"flatguard supervisor CRITICAL: {text}", file=sys.stderr, flush=True)
            except Exception:  # noqa: BLE001 - even stderr may be gone
                pass
            if what != "alert":
                try:
                    self.alert("critical", "Kill switch: journal/IO failure", text,
                               key="killswitch-io")
                except Exception:  # noqa: BLE001
                    pass
                try:
                    self.metrics.inc("flatguard_journal_errors_total", process="supervisor")
                except Exception:  # noqa: BLE001
                    pass
            return None

    def _alert(self, level: str, title: str, text: str, key: str) -> None:
        self._safely("alert", self.alert, level, title, text, key=key)

    # --- a run --------------------------------------------------------------------------

    async def _run(self, trigger: str, reason: str) -> FlattenOutcome:
        t0 = time.monotonic()
        log.critical("KILL SWITCH trigger=%s reason=%s", trigger, reason)
        try:
            await self.fence()  # 1. nothing can re-open what is being closed
        except Exception as e:  # noqa: BLE001 - a fence that failed must not stop the flatten
            log.error("kill switch: fencing the trader failed: %s: %s", type(e).__name__, e)
        self._safely("journal (HALTED)", self.journal.set_halt,  # 2. durable first
                     HaltState(True, reason, trigger, time.time(), verified_flat=False))
        self._safely("metrics", self.metrics.inc, "flatguard_killswitch_runs_total", trigger=trigger)
        run_id = self._safely("journal", self.journal.start_killswitch, trigger, reason)
        run_key = f"killswitch-{run_id if run_id is not None else int(time.time())}"
        self._alert("critical", f"KILL SWITCH: {trigger}",  # 3. tell a person
                    f"{reason}. Trader stopped; cancelling all orders and closing all positions.",
                    key=f"{run_key}-start")
        await self._fence_orders(reason)  # 4. bound what may still be in flight
        outcome = await self.flatten_until_verified(  # 5. flatten and prove it
            run_id if run_id is not None else -1, deadline=None, t0=t0, key=run_key)
        if outcome.verified and self.watch_after > 0:
            self.watch_task = asyncio.get_running_loop().create_task(self._watch(run_id, run_key))
        return outcome

    async def _fence_orders(self, reason: str) -> None:
        if self.fence_orders is None:
            return
        try:
            self.inflight_until = max(self.inflight_until, await self.fence_orders(reason))
        except Exception as e:  # noqa: BLE001 - the caller's fallback bound is "now + window"
            log.error("kill switch: fencing the order flow failed: %s: %s", type(e).__name__, e)

    async def resume_pending(self, reason: str) -> None:
        """Start-up (or the watchdog) found HALTED with the flatten unverified: flatten first."""
        if self.running:
            return

        async def run() -> FlattenOutcome:
            run_id = self._safely("journal", self.journal.start_killswitch, "resume_flatten",
                                  reason, counted=False)
            if self.resume_bound is not None:
                # No trader of this run has signed anything; a previous run's order may still
                # land for one recvWindow after this start (a crash and an immediate restart).
                self.inflight_until = max(self.inflight_until, self.resume_bound())
            else:
                await self._fence_orders(reason)
            return await self.flatten_until_verified(
                run_id if run_id is not None else -1, None, time.monotonic(),
                key=f"killswitch-{run_id}")

        self._alert("critical", "HALTED: resuming flatten",
                    f"{reason}. The account was not verified flat; flattening before anything "
                    "else.", key="killswitch-resume")
        self.task = asyncio.get_running_loop().create_task(run())

    async def flatten_until_verified(self, run_id: int | None, deadline: float | None, t0: float,
                                     cancel_only: bool = False,
                                     key: str = "flatten-stop") -> FlattenOutcome:
        """Rounds every ``backoff`` s until verified (or the monotonic ``deadline`` passes).

        A round that looks flat before ``inflight_until`` is not the verdict: it waits out the
        bound and runs again, so the proving reads are made after every pre-fence order expired.
        """
        rounds = 0
        self.current_rounds = 0
        last: RoundResult | None = None
        alerted_kind, since_alert = "", 0
        counted = run_id is not None
        self.flattening = True
        try:
            while True:
                banned = self.banned_for()
                if banned > 0:
                    await self._wait_ban(banned, deadline)
                    if deadline is not None and time.monotonic() >= deadline:
                        last = last or RoundResult(False, error=f"banned for {banned:.0f} s")
                        break
                rounds += 1
                self.current_rounds = rounds
                if counted:
                    self.rounds_total += 1
                    self._safely("metrics", self.metrics.inc, "flatguard_killswitch_rounds_total")
                    if run_id is not None and run_id >= 0:
                        self._safely("journal", self.journal.killswitch_round, run_id)
                round_started = time.time()
                try:
                    last = await self.flattener.round(cancel_only=cancel_only)
                except Exception as e:  # every failure is retried: this loop must not stop
                    last = RoundResult(False, error=scrub_url(f"{type(e).__name__}: {e}"))
                self.last_round = last  # /metrics: a failing round means the kill path is not ready
                self._safely("metrics", self.metrics.set, "flatguard_killswitch_round_requests",
                             float(getattr(last, "requests", 0)))
                if last.flat:
                    if round_started >= self.inflight_until:
                        break  # its reads were all made after the bound: the proof
                    wait = self.inflight_until + INFLIGHT_MARGIN - time.time()
                    if deadline is not None and time.monotonic() + wait > deadline:
                        last = RoundResult(False, error=f"flat, but orders may still be in "
                                                        f"flight for {wait:.1f} s")
                        break
                    await self._wait_inflight(wait)
                    continue
                detail = last.error or (
                    f"still open: orders={last.open_orders} positions={last.positions}")
                log.error("flatten round=%d not verified: %s", rounds, detail)
                kind = _failure_kind(last)
                since_alert += 1
                if kind != alerted_kind or since_alert >= self.alert_every:
                    alerted_kind, since_alert = kind, 0
                    self._alert("critical", f"Flatten round {rounds} not verified",
                                detail[:500], key=key)
                if deadline is not None and time.monotonic() + self.backoff > deadline:
                    break
                await asyncio.sleep(self.backoff)
        finally:
            self.flattening = False
            self.inflight_wait = 0.0
            self._safely("metrics", self.metrics.set,
                         "flatguard_killswitch_inflight_wait_seconds", 0.0)
        assert last is not None
        duration = time.monotonic() - t0
        if counted:
            self.last_duration = duration
            self.last_verified = last.flat
            self._safely("metrics", self.metrics.set,
                         "flatguard_killswitch_last_duration_seconds", duration)
            if run_id is not None and run_id >= 0:
                self._safely("journal", self.journal.end_killswitch, run_id,
                             "flat" if last.flat else "unverified")
        if last.flat:
            self._mark_verified()
            log.warning("flat verified rounds=%d duration=%.3fs cancelled=%d closes=%d",
                        rounds, duration, last.cancelled, last.closes)
            if counted:
                self._alert("critical", "Account flat (verified on the exchange)",
                            f"{rounds} round(s), {duration:.2f} s. Trading stays HALTED until "
                            "`flatguard ctl resume --yes`.", key=f"{key}-flat")
        return FlattenOutcome(last.flat, rounds, duration, last)

    def _mark_verified(self) -> None:
        state = self._safely("journal", self.journal.halt_state)
        if state is not None and state.halted:
            self._safely("journal (verified flat)", self.journal.set_halt,
                         HaltState(True, state.reason, state.trigger, state.since,
                                   verified_flat=True))

    async def _wait_inflight(self, wait: float) -> None:
        log.warning("flat, waiting %.1f s for orders in flight (signed before the fence, "
                    "valid until their recvWindow ends)", wait)
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            self.inflight_wait = left
            self._safely("metrics", self.metrics.set,
                         "flatguard_killswitch_inflight_wait_seconds", left)
            await asyncio.sleep(min(0.5, left))

    async def _wait_ban(self, banned: float, deadline: float | None) -> None:
        """Never call into a ban: every request during one prolongs it on Binance."""
        log.error("kill path: banned for %.0f s by the exchange; waiting before the next round",
                  banned)
        end = time.monotonic() + banned
        if deadline is not None:
            end = min(end, deadline)
        while (left := end - time.monotonic()) > 0:
            self.banned_wait = left
            await asyncio.sleep(min(1.0, left))
        self.banned_wait = 0.0

    # --- after a verified flatten --------------------------------------------------------

    async def _watch(self, run_id: int | None, key: str) -> None:
        """Keep reading the halted account for ``watch_after`` s; flatten what appears."""
        end = time.monotonic() + self.watch_after
        interval = max(self.backoff, 1.0)
        log.info("watching the halted account for %.0f s after the verified flatten",
                 self.watch_after)
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, left))
            if self.banned_for() > 0:
                continue
            try:
                res = await self.flattener.verify()
            except Exception as e:  # noqa: BLE001 - a failed read is retried next interval
                log.warning("watch after flatten: read failed: %s: %s", type(e).__name__, e)
                continue
            if res.flat:
                continue
            what = f"orders={res.open_orders} positions={res.positions}"
            log.critical("exposure appeared after a verified flatten: %s", what)
            self._safely("metrics", self.metrics.inc, "flatguard_killswitch_watch_flattens_total")
            self._safely("journal (not flat)", self._mark_unverified)
            self._alert("critical", "Exposure after verified flat",
                        f"{what}; flattening again", key=f"{key}-watch")
            outcome = await self.flatten_until_verified(run_id, None, time.monotonic(), key=key)
            if not outcome.verified:
                return
            end = time.monotonic() + self.watch_after  # watch afresh after a new flatten
        log.info("watch after flatten ended: the account stayed flat for %.0f s",
                 self.watch_after)

    def _mark_unverified(self) -> None:
        state = self.journal.halt_state()
        if state.halted:
            self.journal.set_halt(HaltState(True, state.reason, state.trigger, state.since,
                                            verified_flat=False))

    def stop_watching(self) -> None:
        """A person resumed (or a new run starts): the account is no longer ours to flatten."""
        if self.watching:
            assert self.watch_task is not None
            self.watch_task.cancel()


def _failure_kind(r: RoundResult) -> str:
    """What makes two failed rounds "the same" for alerting: the flattener's failure kind (banned,
    fatal, transient, rejected) with the error class, or still open.

    Error texts carry URLs with timestamps and signatures, so they never repeat exactly.
    """
    if not r.error:
        return "still open"
    return f"{getattr(r, 'failure', '')}:{r.error.split(':', 1)[0]}"
