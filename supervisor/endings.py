"""How ``flatguard up`` ends, said in its last line and in an alert.

Every exit is one of: verified (flat, or free of orders with ``shutdown = "cancel"``), left as
it is (``shutdown = "leave"``, or HALTED by ``abort``), NOT verified (what is still open, and
what the next ``up`` does: HALTED, it resumes the flatten before anything else), refused (by
which check or process, and exit 2/78 so systemd never restart-loops), did not start, or crashed
(the journal keeps the run unclean, so the next ``up`` starts HALTED and flattens first). The
text is built from what the journal and the last flatten round say, never from hope.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trader.kernel.redact import scrub_url

if TYPE_CHECKING:
    from supervisor.flatten import RoundResult
    from supervisor.ports import EndingPort

log = logging.getLogger("flatguard")

NEXT_UP_RESUMES = ("the next `flatguard up` starts HALTED and resumes the flatten before "
                   "anything else")


@dataclass(frozen=True)
class Ending:
    code: int
    kind: str  # verified | left | not_verified | refused | not_started | crashed
    text: str

    @property
    def level(self) -> str:
        return "info" if self.kind in ("verified", "left") else "critical"

    @property
    def title(self) -> str:
        return {"verified": "flatguard stopped", "left": "flatguard stopped",
                "not_verified": "Stop NOT verified: HALTED", "refused": "flatguard refused",
                "not_started": "flatguard did not start",
                "crashed": "flatguard crashed"}[self.kind]

    def line(self) -> str:
        return f"flatguard stopped exit={self.code}: {self.text}"


def _open(last: RoundResult | None, mode: str) -> str:
    if last is None:
        return "no flatten round completed, nothing was proved"
    bits = []
    if last.positions and mode != "cancel":
        bits.append("positions " + ", ".join(last.positions))
    if last.open_orders:
        bits.append("orders " + ", ".join(last.open_orders))
    what = "; ".join(bits) or "nothing seen open, but not proved"
    if last.error:
        what += f" (last error: {last.error[:300]})"
    return "still open: " + what


def after_stop(sup: EndingPort, code: int) -> Ending:
    """The ending of an orderly stop, from the journal's halt state and the last round."""
    mode = sup.cfg.supervisor.shutdown
    halt = sup.halt
    ks = sup.killswitch
    last = getattr(ks, "last_round", None)
    if code != 0:
        scope = "free of orders" if mode == "cancel" else "flat"
        return Ending(code, "not_verified", scrub_url(
            f"NOT verified {scope} within supervisor.shutdown_timeout = "
            f"{sup.cfg.supervisor.shutdown_timeout:g} s; {_open(last, mode)}. HALTED "
            f"(unverified); the exchange's dead-man switch stays armed; {NEXT_UP_RESUMES}"))
    if halt.halted and halt.trigger == "abort":
        return Ending(code, "left", "HALTED (abort): positions and orders left as they are; "
                      "the next `flatguard up` starts HALTED (`flatguard ctl resume --yes` "
                      "re-arms it)")
    if mode == "leave":
        return Ending(code, "left", 'positions and orders left as they are (supervisor.shutdown'
                      ' = "leave"); the next `flatguard up` adopts them')
    if mode == "cancel":
        kept = ", ".join(last.positions) if last is not None and last.positions else "none seen"
        text = f"no open orders, verified on the exchange; positions left: {kept}"
    else:
        text = "account verified flat on the exchange"
    if halt.halted:
        text += (f"; still HALTED ({halt.trigger}): the next `flatguard up` starts HALTED "
                 "(`flatguard ctl resume --yes` re-arms it)")
    return Ending(code, "verified", text)


def not_started(sup: EndingPort, error: str, code: int) -> Ending:
    traded = sup.children.get("trader") is not None and sup.children["trader"].proc is not None
    after = (f"; the trader had started: {NEXT_UP_RESUMES}" if traded
             else "; nothing traded, the run directory is clean")
    if sup.refused:
        return Ending(code, "refused", scrub_url(
            f"refused by {', '.join(sorted(sup.refused))}: {error}{after}"))
    return Ending(code, "not_started", scrub_url(f"did not start: {error}{after}"))


def crashed(exc: BaseException) -> Ending:
    return Ending(1, "crashed", scrub_url(
        f"crashed ({type(exc).__name__}: {exc}); this run stays marked unclean in the journal: "
        f"{NEXT_UP_RESUMES}"))


def say(ending: Ending) -> None:
    """The last line: logged, and on stderr too when the log goes elsewhere (a log file)."""
    line = ending.line()
    log.log(logging.INFO if ending.level == "info" else logging.CRITICAL, "%s", line)
    to_terminal = any(isinstance(h, logging.StreamHandler)
                      and getattr(h, "stream", None) in (sys.stderr, sys.stdout)
                      for h in logging.getLogger().handlers)
    if not to_terminal:
        print(line, file=sys.stderr, flush=True)


async def deliver(sup: EndingPort, ending: Ending) -> None:
    """Alert, then stop the notifier in order (it drains what it holds, this included) before
    anything kills it: used where start-up failed or the supervisor crashed."""
    from trader.kernel.protocol import NOTIFIER

    try:
        sup.alert(ending.level, ending.title, ending.text)
        ch = sup.children.get(NOTIFIER)
        if ch is not None and ch.pid is not None:
            await ch.stop(5.0)
    except Exception as e:  # noqa: BLE001 - the ending is said in the last line regardless
        log.error("ending alert not delivered: %s: %s", type(e).__name__, e)
