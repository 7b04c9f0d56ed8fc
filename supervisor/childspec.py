"""What each child process is to the supervisor: one table, read wherever policy depends on it.

Every "if it is the trader" of the supervisor is a column here (supervisord's ``[program:x]``
sections, as data): what an unexpected exit means, how late a heartbeat may be, what the
kernel's OOM killer should pick first, which exit code is a refusal, and the restart policy.
Imports nothing of ours but the process names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trader.kernel.protocol import COMMANDER, CONNECTOR, EX_CONFIG, EX_SOFTWARE, NOTIFIER, TRADER


class OnExit(enum.StrEnum):
    """What an unexpected exit (or a hang) of the process means."""

    KILL_SWITCH = "kill_switch"  # fence and flatten; never restarted on its own (lesson 5)
    RESTART_THEN_GIVE_UP = "restart_then_give_up"  # FAILED past restart_intensity
    RESTART_FOREVER = "restart_forever"  # with backoff; flapping is said, never given up


@dataclass(frozen=True)
class ChildSpec:
    name: str
    module: str  # run as ``python -m <module> --run-dir ...``
    # The kernel's OOM killer must pick the trader (whose death the kill switch handles) before
    # the supervisor (whose death leaves the kill path to the children). Raising is allowed.
    oom_score_adj: int
    # x cfg.hang_timeout: the trading path gets the plain bound; helpers run at a lower
    # priority and only cost a restart when killed, so a loaded machine gives them more slack.
    hang_factor: float
    on_exit: OnExit
    refusal_code: int | None = EX_CONFIG  # exit code meaning "not with this set-up"
    exit_trigger: str = ""  # kill-switch trigger of an unexpected exit (OnExit.KILL_SWITCH)
    # exit codes that name their own trigger: a rule, not a race between the child's halt
    # request and its exit (the trader exits 70 when its engine loop died of an exception)
    code_triggers: tuple[tuple[int, str], ...] = ()
    hang_trigger: str = ""  # ... and of a hang
    down_trigger: str = ""  # kill-switch trigger once down longer than connector_grace
    start_when_halted: bool = True  # the trader waits for a person's resume
    stale_backstop: bool = False  # beats carry last market data: no progress is a hang
    opens_session: bool = False  # holds the exchange session: a hedged account is its refusal
    carries_alerts: bool = False  # its own flapping cannot be alerted through it
    says_state: bool = False  # its flatguard_trading_state is the trading state
    account_rank: int = 0  # /metrics account series: rank 1 while it reports them, else 2
    stop_rank: int = 0  # orderly stop order (the notifier last: it delivers the stop messages)
    # start-up: wave 0 starts together, while the kill path prepares its session; wave 1 once
    # the kill path and every wave-0 process are ready (the trader needs the connector, and
    # nothing trades before the kill switch can act)
    start_wave: int = 0


HELPER_HANG_FACTOR = 5.0

# The trader starts last (``start_wave``): it needs the connector ready.
SPECS: dict[str, ChildSpec] = {s.name: s for s in (
    ChildSpec(CONNECTOR, "trader.connector", oom_score_adj=200, hang_factor=1.0,
              on_exit=OnExit.RESTART_THEN_GIVE_UP, down_trigger="connector_down",
              opens_session=True, account_rank=2, stop_rank=1),
    ChildSpec(NOTIFIER, "notifier", oom_score_adj=300, hang_factor=HELPER_HANG_FACTOR,
              on_exit=OnExit.RESTART_FOREVER, carries_alerts=True, stop_rank=3),
    ChildSpec(COMMANDER, "commander", oom_score_adj=300, hang_factor=HELPER_HANG_FACTOR,
              on_exit=OnExit.RESTART_FOREVER, stop_rank=2),
    ChildSpec(TRADER, "trader", oom_score_adj=500, hang_factor=1.0, on_exit=OnExit.KILL_SWITCH,
              refusal_code=None, exit_trigger="trader_exit", hang_trigger="trader_hang",
              code_triggers=((EX_SOFTWARE, "trader_exception"),),
              start_when_halted=False, stale_backstop=True, says_state=True, account_rank=1,
              stop_rank=0, start_wave=1),
)}


def exit_trigger(spec: ChildSpec, code: int) -> str:
    """The kill-switch trigger of an unexpected exit with ``code``."""
    return dict(spec.code_triggers).get(code, spec.exit_trigger)


def stop_order() -> list[str]:
    """The processes an orderly stop stops after the trader (rank 0, stopped first)."""
    return [s.name for s in sorted(SPECS.values(), key=lambda s: s.stop_rank) if s.stop_rank]


def account_readers() -> list[str]:
    """The processes whose account series /metrics shows, preferred first."""
    return [s.name for s in sorted(SPECS.values(), key=lambda s: s.account_rank)
            if s.account_rank]


def session_holder() -> str:
    """The process that holds the exchange session (the connector)."""
    return next(s.name for s in SPECS.values() if s.opens_session)
