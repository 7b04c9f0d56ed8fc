"""Guards evaluated every engine turn: exposure, loss circuit breaker, margin, stale state.

Each guard is a condition with an edge: it produces one event when it becomes true (and an info
event when a REDUCING condition clears), never one per turn. REDUCING conditions are *reasons*
held in ``Reasons``; ``check`` refuses new risk while any reason is held for the account or the
order's symbol. Caps never kill: exposure above a cap only holds a REDUCING reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trader.engine.risk.checks import held_gross, held_notional
from trader.engine.risk.view import AccountView, RiskEvent
from trader.kernel.config import RiskConfig

DAY = 86400.0
ACCOUNT = ""  # the key of account-wide reasons


@dataclass
class Reasons:
    """Why the account or a symbol is REDUCING: {scope: {reason: text}}; scope "" = account."""

    held: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, scope: str) -> dict[str, str]:
        return self.held.get(scope, {})

    def has(self, scope: str, reason: str) -> bool:
        return reason in self.held.get(scope, {})

    def set(self, scope: str, reason: str, text: str) -> bool:
        """Hold ``reason``; True if it was not held before."""
        new = reason not in self.held.get(scope, {})
        self.held.setdefault(scope, {})[reason] = text
        return new

    def clear(self, scope: str, reason: str) -> bool:
        """Drop ``reason``; True if it was held."""
        d = self.held.get(scope)
        if not d or reason not in d:
            return False
        del d[reason]
        if not d:
            del self.held[scope]
        return True


@dataclass
class LossBreaker:
    """Tracks the UTC day's opening equity and high; breached = drawdown or day loss too big."""

    day: int = -1
    start: float = 0.0
    high: float = 0.0
    tripped: bool = False

    def update(self, equity: float, now: float) -> None:
        d = int(now // DAY)
        if d != self.day:
            self.day, self.start, self.high, self.tripped = d, equity, equity, False
        self.high = max(self.high, equity)

    def drawdown(self, equity: float) -> float:
        return (self.high - equity) / self.high if self.high > 0 else 0.0

    def loss(self, equity: float) -> float:
        return max(self.start - equity, 0.0)


def exposure_guard(
    cfg: RiskConfig, reasons: Reasons, view: AccountView, symbols: tuple[str, ...]
) -> list[RiskEvent]:
    """Held exposure above a cap -> REDUCING (account for gross/leverage, symbol for position)
    until back under. Adopted positions and price moves are the usual causes."""
    events: list[RiskEvent] = []

    def hold(scope: str, reason: str, over: bool, text: str) -> None:
        sym = scope or None
        where = scope or "account"
        if over and reasons.set(scope, reason, text):
            events.append(
                RiskEvent("exposure", "warning", f"{where} REDUCING: {reason}", text, None, sym)
            )
        elif not over and reasons.clear(scope, reason):
            events.append(
                RiskEvent("exposure", "info", f"{where} back under {reason}", text, None, sym)
            )

    gross = held_gross(view)
    hold(
        ACCOUNT,
        "max_gross_exposure",
        gross > cfg.max_gross_exposure,
        f"gross exposure {gross:.2f}, limit {cfg.max_gross_exposure:g}",
    )
    lev = gross / view.equity if view.equity > 0 else (float("inf") if gross > 0 else 0.0)
    hold(
        ACCOUNT,
        "max_leverage",
        lev > cfg.max_leverage,
        f"leverage {lev:.2f} (gross {gross:.2f} / equity {view.equity:.2f}), limit {cfg.max_leverage:g}",
    )
    for s in sorted(set(symbols) | set(view.positions)):
        n = held_notional(view, s)
        hold(
            s,
            "max_position_notional",
            n > cfg.max_position_notional,
            f"{s} position notional {n:.2f}, limit {cfg.max_position_notional:g}",
        )
    return events


def loss_guard(cfg: RiskConfig, lb: LossBreaker, view: AccountView, now: float) -> list[RiskEvent]:
    """Drawdown from the day's high or the day's loss beyond its limit -> stop (once a day)."""
    lb.update(view.equity, now)
    if lb.tripped:
        return []
    dd, loss = lb.drawdown(view.equity), lb.loss(view.equity)
    if dd > cfg.max_drawdown:
        text = f"equity {view.equity:.2f} is {dd:.2%} below the day's high {lb.high:.2f}, limit {cfg.max_drawdown:.2%}"
        guard = "drawdown"
    elif loss > cfg.max_daily_loss:
        text = f"day's loss {loss:.2f} (opened at {lb.start:.2f}, now {view.equity:.2f}), limit {cfg.max_daily_loss:g}"
        guard = "daily_loss"
    else:
        return []
    lb.tripped = True
    return [RiskEvent(guard, "critical", f"loss circuit breaker: {guard}", text, "stop")]


def margin_guard(
    cfg: RiskConfig, reasons: Reasons, view: AccountView, reduce_sent: bool
) -> tuple[list[RiskEvent], bool]:
    """Margin ratio past ``margin_warn`` -> REDUCING + warning; past ``margin_reduce`` -> reduce
    (once per excursion). Returns (events, whether the reduce action is outstanding)."""
    r = view.margin_ratio
    events: list[RiskEvent] = []
    if r is None:
        return events, reduce_sent
    text = f"margin ratio {r:.2%} (warn {cfg.margin_warn:.2%}, reduce {cfg.margin_reduce:.2%})"
    if r >= cfg.margin_warn:
        if reasons.set(ACCOUNT, "margin_warn", text):
            events.append(RiskEvent("margin", "warning", "account REDUCING: margin", text))
    elif reasons.clear(ACCOUNT, "margin_warn"):
        events.append(RiskEvent("margin", "info", "margin back under warn", text))
    if r >= cfg.margin_reduce and not reduce_sent:
        events.append(RiskEvent("margin", "critical", "margin: reducing positions", text, "reduce"))
        reduce_sent = True
    elif r < cfg.margin_reduce:
        reduce_sent = False
    return events, reduce_sent


def stale_ages(
    view: AccountView, symbols: tuple[str, ...], now: float, since: float
) -> dict[str, float]:
    """Age in seconds of each symbol's mark and of the account confirmation (key "account").
    Nothing seen yet counts from ``since`` (when the risk engine first ran)."""
    ages = {"account": now - (view.confirmed if view.confirmed > 0 else since)}
    for s in symbols:
        m = view.marks.get(s)
        ages[s] = now - (m.ts if m is not None and m.ts > 0 else since)
    return ages
