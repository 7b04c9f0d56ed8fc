"""RiskEngine: the one object the trading engine asks before every order and every turn.

Pure and synchronous: no I/O, no clock of its own (``now`` is passed in), deterministic. The
trading engine counts rejections (``flatguard_risk_rejections_total{check}``), logs them, and
acts on the returned events.

Check order (first refusal wins): state, symbol, banned, stale, reducing, price_band,
order_notional, position_notional, gross_exposure, leverage, throttle (after the engine's own
``invalid`` and ``connector_down``; ``CHECKS`` lists every label).
"""

from __future__ import annotations

from typing import Any

from trader.engine.risk import checks, guards
from trader.engine.risk.guards import ACCOUNT, LossBreaker, Reasons
from trader.engine.risk.loops import LoopDetector
from trader.engine.risk.throttle import Throttle
from trader.engine.risk.view import AccountView, OrderIntent, Rejection, RiskEvent
from trader.kernel import protocol as P
from trader.kernel.config import RiskConfig

# Checks the trading engine runs itself, before asking the RiskEngine: a malformed order
# (InvalidOrder) and no working connector to send it through.
INVALID = "invalid"
CONNECTOR_DOWN = "connector_down"
# every Rejection.check label, in check order: the engine's two, then the RiskEngine's (the
# engine pre-registers a counter for each, so /metrics lists every check from the start)
CHECKS = (
    INVALID,
    CONNECTOR_DOWN,
    "state",
    "symbol",
    "banned",
    "stale",
    "reducing",
    "price_band",
    "order_notional",
    "position_notional",
    "gross_exposure",
    "leverage",
    "throttle",
)
SETTABLE = (P.STARTING, P.RUNNING, P.PAUSED, P.REDUCING, P.STOPPING, P.HALTED, P.STOPPED)
SILENT = (P.STARTING, P.PAUSED, P.HALTED, P.STOPPED)  # states that send nothing
# REDUCING, and STOPPING (the limit exit of an orderly stop), send only reduce-only orders
REDUCE_ONLY = (P.REDUCING, P.STOPPING)


class RiskEngine:
    def __init__(
        self,
        cfg: RiskConfig,
        symbols: tuple[str, ...],
        max_unconfirmed: float | None = None,
        throttle_margin: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.symbols = tuple(symbols)
        # account unconfirmed too long is exchange.max_unconfirmed (one condition, one key);
        # without it the stale_halt limit applies to the account too.
        self.max_unconfirmed = max_unconfirmed if max_unconfirmed is not None else cfg.stale_halt
        self.state = P.STARTING  # the engine sets RUNNING when it is ready to trade
        self.banned: set[str] = set()
        self.reasons = Reasons()
        # throttle_margin: see Throttle (transit jitter between the trader and the exchange)
        self.throttle = Throttle(
            cfg.max_orders_per_second, cfg.max_orders_per_minute, throttle_margin
        )
        self.loops = LoopDetector(cfg.loop_window, cfg.loop_max_round_trips, cfg.loop_max_cost)
        self._loop_first: dict[str, float] = {}  # symbol -> deadline for a second breach to halt
        self._loop_since: dict[str, float] = {}  # symbol -> when its loop REDUCING began
        self._loss = LossBreaker()
        self.loss_breaker = self._loss  # the engine persists its day state across restarts
        self._margin_reduce_sent = False
        self._stale_halted = False
        self._since: float | None = None  # first time seen: "never" ages count from here
        self._last_now: float | None = None
        self._view: AccountView | None = None
        self._pending: list[OrderIntent] = []  # sent while the same view object is in use

    # --- controls ------------------------------------------------------------------------------

    def set_trading_state(self, state: str) -> None:
        """Account-wide state from the engine's lifecycle. A transition *into* RUNNING (a
        person's resume/unpause) also clears the loop detector's REDUCING holds; guard holds
        (exposure, margin) clear only when their condition does."""
        if state not in SETTABLE:
            raise ValueError(f"unknown trading state {state!r}; known: {', '.join(SETTABLE)}")
        if state == P.RUNNING and self.state != P.RUNNING:
            for s in list(self._loop_since):
                self._release_loop(s)
        self.state = state

    def ban(self, symbol: str) -> None:
        self.banned.add(symbol)

    def unban(self, symbol: str) -> None:
        self.banned.discard(symbol)
        if symbol in self._loop_since:
            self._release_loop(symbol)

    def _release_loop(self, symbol: str) -> None:
        started = self._loop_since.pop(symbol)
        self.reasons.clear(symbol, "loop")
        # time spent REDUCING does not use up the window for a second breach
        if symbol in self._loop_first and self._last_now is not None:
            self._loop_first[symbol] += max(self._last_now - started, 0.0)

    def _tick(self, now: float) -> None:
        if self._since is None:
            self._since = now
        self._last_now = now

    # --- pre-trade -----------------------------------------------------------------------------

    def account_state(self) -> str:
        """The effective account-wide state: the set state, REDUCING while a guard holds it."""
        if self.state == P.RUNNING and self.reasons.get(ACCOUNT):
            return P.REDUCING
        return self.state

    def symbol_state(self, symbol: str) -> str:
        if symbol in self.banned:
            return "banned"
        if self.account_state() == P.REDUCING or self.reasons.get(symbol):
            return "reducing"
        return "active"

    def _effective(self, view: AccountView) -> AccountView:
        """``view`` plus the orders sent since it was first checked: several orders checked
        against one view (one engine turn) see each other. A new view object is taken to
        include every order the engine has sent (its open orders list in-flight ones)."""
        if view is not self._view:
            self._view, self._pending = view, []
        return self._with_pending(view)

    def _with_pending(self, view: AccountView) -> AccountView:
        if view is self._view:
            for o in self._pending:
                view = view.with_order(o)
        return view

    def check(self, order: OrderIntent, view: AccountView, now: float) -> Rejection | None:
        """Every pre-trade check; None means the order may be sent (then call record_sent)."""
        self._tick(now)
        view = self._effective(view)
        sym, cid, cfg = order.symbol, order.client_id, self.cfg

        def reject(check: str, msg: str) -> Rejection:
            return Rejection(check, msg, sym, cid)

        state = self.account_state()
        if state in SILENT:
            return reject("state", f"trading state {state}: no orders are sent")
        if sym not in self.symbols:
            return reject("symbol", f"{sym} is not a configured symbol ({', '.join(self.symbols)})")
        ro = order.reduce_only
        if sym in self.banned and not ro:
            return reject("banned", f"{sym} is banned: reduce-only orders only")
        if not ro:
            assert self._since is not None
            ages = guards.stale_ages(view, (sym,), now, self._since)
            old = {k: a for k, a in ages.items() if a > cfg.stale_pause}
            if old:
                desc = ", ".join(f"{k} {a:.1f} s" for k, a in old.items())
                return reject(
                    "stale", f"state not fresh ({desc} > stale_pause {cfg.stale_pause:g} s)"
                )
            why = {**self.reasons.get(ACCOUNT), **self.reasons.get(sym)}
            if state in REDUCE_ONLY or why:
                desc = "; ".join(why.values()) or f"trading state {state}"
                return reject("reducing", f"reduce-only orders only: {desc}")
        bad, mark = checks.price_band_check(order, view, now, cfg)
        if bad is not None:
            return bad
        bad = checks.exposure_checks(order, view, mark, cfg)
        if bad is not None:
            return bad
        why_not = self.throttle.refusal(now)
        if why_not is not None:
            return reject("throttle", why_not)
        return None

    def record_sent(self, order: OrderIntent, now: float) -> None:
        """The order was sent: it counts for the throttle, and as resting until a new view."""
        self._tick(now)
        self.throttle.record(now)
        self._pending.append(order)

    # --- fills and turns -----------------------------------------------------------------------

    def on_fill(
        self, symbol: str, side: str, amount: float, price: float, fee: float, now: float
    ) -> list[RiskEvent]:
        """Feed the loop detector; returns a warning (first breach: symbol REDUCING) or a
        critical halt (second breach within the window of the first)."""
        self._tick(now)
        breach = self.loops.on_fill(symbol, side, amount, price, fee, now)
        if breach is None:
            return []
        first = self._loop_first.get(symbol)
        if first is not None and now <= first:
            self._loop_first.pop(symbol, None)
            return [
                RiskEvent(
                    "loop",
                    "critical",
                    f"{symbol}: second buy-sell loop, halting",
                    breach,
                    "halt",
                    symbol,
                )
            ]
        self._loop_first[symbol] = now + self.cfg.loop_window
        self._loop_since[symbol] = now
        self.reasons.set(symbol, "loop", f"buy-sell loop: {breach}")
        return [
            RiskEvent("loop", "warning", f"{symbol} REDUCING: buy-sell loop", breach, None, symbol)
        ]

    def evaluate(self, view: AccountView, now: float) -> list[RiskEvent]:
        """Run the turn's guards. Call every engine turn with a fresh view."""
        self._tick(now)
        cfg = self.cfg
        events = guards.exposure_guard(cfg, self.reasons, view, self.symbols)
        events += guards.loss_guard(cfg, self._loss, view, now)
        ev, self._margin_reduce_sent = guards.margin_guard(
            cfg, self.reasons, view, self._margin_reduce_sent
        )
        events += ev
        events += self._loop_cooldown(now)
        events += self._stale_guard(view, now)
        return events

    def _loop_cooldown(self, now: float) -> list[RiskEvent]:
        if self.cfg.loop_cooldown <= 0:
            return []
        out = []
        for s, t in list(self._loop_since.items()):
            if now - t >= self.cfg.loop_cooldown:
                self._release_loop(s)
                out.append(
                    RiskEvent(
                        "loop",
                        "info",
                        f"{s} active again after loop cooldown",
                        f"loop_cooldown {self.cfg.loop_cooldown:g} s elapsed",
                        None,
                        s,
                    )
                )
        return out

    def _stale_guard(self, view: AccountView, now: float) -> list[RiskEvent]:
        assert self._since is not None
        ages = guards.stale_ages(view, self.symbols, now, self._since)
        acct = ages.pop("account")
        md = {s: a for s, a in ages.items() if a > self.cfg.stale_halt}
        if acct <= self.max_unconfirmed and not md:
            self._stale_halted = False
            return []
        if self._stale_halted:
            return []
        self._stale_halted = True
        parts = [f"market data {s} {a:.1f} s old" for s, a in md.items()]
        if acct > self.max_unconfirmed:
            parts.append(f"account unconfirmed {acct:.1f} s (limit {self.max_unconfirmed:g} s)")
        text = "; ".join(parts) + f" (stale_halt {self.cfg.stale_halt:g} s)"
        return [RiskEvent("stale", "critical", "state stale too long, halting", text, "halt")]

    # --- reporting -----------------------------------------------------------------------------

    def status(self, view: AccountView, now: float) -> dict[str, Any]:
        """Each limit with its current use, per-symbol state, throttle and loop counts."""
        self._tick(now)
        cfg = self.cfg
        assert self._since is not None
        gross = checks.held_gross(view)
        worst_gross = checks.gross_exposure(self._with_pending(view))
        sec, minute = self.throttle.counts(now)
        ages = guards.stale_ages(view, self.symbols, now, self._since)
        lb = self._loss
        lb.update(view.equity, now)
        symbols: dict[str, Any] = {}
        max_pos, max_trips = 0.0, 0
        max_cost = 0.0
        for s in self.symbols:
            n = checks.held_notional(view, s)
            trips, cost = self.loops.counts(s, now)
            max_pos, max_trips, max_cost = (
                max(max_pos, n),
                max(max_trips, trips),
                max(max_cost, cost),
            )
            symbols[s] = {
                "state": self.symbol_state(s),
                "reasons": dict(self.reasons.get(s)),
                "position": view.contracts(s),
                "notional": round(n, 2),
                "round_trips": trips,
                "loop_cost": round(cost, 4),
                "mark_age": round(ages[s], 3),
            }

        def lim(limit: float, used: float) -> dict[str, float]:
            return {"limit": limit, "used": round(used, 4)}

        lev = gross / view.equity if view.equity > 0 else 0.0
        md_age = max((a for k, a in ages.items() if k != "account"), default=0.0)
        return {
            "state": self.account_state(),
            "reasons": dict(self.reasons.get(ACCOUNT)),
            "limits": {
                "max_order_notional": {"limit": cfg.max_order_notional},
                "max_position_notional": lim(cfg.max_position_notional, max_pos),
                "max_gross_exposure": {
                    **lim(cfg.max_gross_exposure, gross),
                    "worst_case": round(worst_gross, 2),
                },
                "max_leverage": lim(cfg.max_leverage, lev),
                "max_orders_per_second": lim(cfg.max_orders_per_second, sec),
                "max_orders_per_minute": lim(cfg.max_orders_per_minute, minute),
                "price_band": {"limit": cfg.price_band},
                "loop_max_round_trips": lim(cfg.loop_max_round_trips, max_trips),
                "loop_max_cost": lim(cfg.loop_max_cost, max_cost),
                "max_drawdown": lim(cfg.max_drawdown, lb.drawdown(view.equity)),
                "max_daily_loss": lim(cfg.max_daily_loss, lb.loss(view.equity)),
                "margin_warn": lim(cfg.margin_warn, view.margin_ratio or 0.0),
                "margin_reduce": lim(cfg.margin_reduce, view.margin_ratio or 0.0),
                "stale_pause": lim(cfg.stale_pause, max(ages.values())),
                "stale_halt": lim(cfg.stale_halt, md_age),
            },
            "symbols": symbols,
            "banned": sorted(self.banned),
        }
