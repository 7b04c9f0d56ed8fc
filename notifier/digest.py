"""Few, meaningful messages from the event feed: threshold alerts, a daily digest, trades.

Pure logic (the clock is passed in): ``AccountWatch`` turns ``account`` and ``fill.`` events
into notifications.

- Equity: a warning when equity moved by ``notify.equity_change`` (e.g. 2 %) from the last
  reference (the first snapshot, then the value at the last alert).
- Gross exposure (sum of |notional|): a warning when it moved by ``notify.exposure_change``
  (e.g. 25 %) of the reference, measured against at least 10 % of equity so that opening a
  small position from flat is not news.
- Leverage: a warning when the account's effective leverage (gross exposure / equity) moved by
  ``notify.leverage_change`` (e.g. 0.5x) from the reference (the leverage *setting* per symbol
  is set by the connector at start-up; Binance's v3 position rows do not report it back).
- Daily digest at ``notify.digest_hour`` UTC: equity, PnL, fees, trades, max exposure and
  leverage, warnings/errors seen.
- Per-trade messages only when ``notify.trades``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trader.kernel.config import NotifyConfig
from trader.kernel.protocol import INFO, WARNING

EXPOSURE_FLOOR = 0.10  # of equity: the smallest exposure a relative change is measured against


@dataclass(frozen=True)
class Out:
    level: str
    title: str
    text: str
    key: str


def _num(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def next_digest(now: float, hour: int) -> float:
    d = datetime.fromtimestamp(now, UTC).replace(hour=hour % 24, minute=0, second=0,
                                                 microsecond=0)
    if d.timestamp() <= now:
        d += timedelta(days=1)
    return d.timestamp()


class AccountWatch:
    def __init__(self, cfg: NotifyConfig, now: float) -> None:
        self.cfg = cfg
        self.equity: float | None = None
        self.exposure = 0.0
        self.ref_equity: float | None = None
        self.ref_exposure: float | None = None
        self.ref_leverage: float | None = None
        self.next_digest = next_digest(now, cfg.digest_hour)
        self._period_start = now
        self._start_equity: float | None = None
        self.fees = 0.0
        self.trades = 0
        self.max_exposure = 0.0
        self.max_leverage = 0.0
        self.warnings = 0
        self.errors = 0
        self.bad_events = 0

    # --- inputs ---

    def on_account(self, data: dict[str, Any]) -> list[Out]:
        equity = _num(data.get("equity"))
        positions = data.get("positions")
        if equity is None or not isinstance(positions, list):
            self.bad_events += 1
            return []
        gross = 0.0
        for p in positions:
            notional = _num(p.get("notional")) if isinstance(p, dict) else None
            if notional is not None:
                gross += abs(notional)
        self.equity, self.exposure = equity, gross
        if self._start_equity is None:
            self._start_equity = equity
        self.max_exposure = max(self.max_exposure, gross)
        if equity > 0:
            self.max_leverage = max(self.max_leverage, gross / equity)
        out: list[Out] = []
        lev_now = gross / equity if equity > 0 else 0.0
        if self.ref_equity is None or self.ref_exposure is None:
            self.ref_equity, self.ref_exposure, self.ref_leverage = equity, gross, lev_now
            return out
        if self.ref_leverage is not None and abs(lev_now - self.ref_leverage) >= \
                self.cfg.leverage_change:
            out.append(Out(WARNING, f"Leverage {self.ref_leverage:.2f}x -> {lev_now:.2f}x",
                           f"gross exposure {gross:,.2f} on equity {equity:,.2f}", "leverage"))
            self.ref_leverage = lev_now
        if self.ref_equity > 0:
            change = (equity - self.ref_equity) / self.ref_equity
            if abs(change) >= self.cfg.equity_change:
                out.append(Out(WARNING, f"Equity {change:+.1%}",
                               f"equity {self.ref_equity:,.2f} -> {equity:,.2f}", "equity"))
                self.ref_equity = equity
        base = max(self.ref_exposure, EXPOSURE_FLOOR * max(equity, 0.0))
        if base > 0 and abs(gross - self.ref_exposure) / base >= self.cfg.exposure_change:
            lev = f", leverage {gross / equity:.2f}x" if equity > 0 else ""
            out.append(Out(WARNING, f"Exposure {self.ref_exposure:,.0f} -> {gross:,.0f}",
                           f"gross exposure {gross:,.2f}{lev}", "exposure"))
            self.ref_exposure = gross
        return out

    def on_fill(self, data: dict[str, Any]) -> list[Out]:
        fee = _num(data.get("fee"))
        amount, price = _num(data.get("amount")), _num(data.get("price"))
        if amount is None or price is None:
            self.bad_events += 1
            return []
        self.trades += 1
        self.fees += fee or 0.0
        if not self.cfg.trades:
            return []
        sym, side = str(data.get("symbol", "?")), str(data.get("side", "?"))
        return [Out(INFO, f"{side} {amount:g} {sym} @ {price:g}",
                    f"fee {fee or 0:g} {data.get('fee_currency', '')}".strip(),
                    f"fill:{data.get('trade_id', '')}")]

    def on_notification(self, level: str) -> None:
        if level == WARNING:
            self.warnings += 1
        elif level != INFO:
            self.errors += 1

    # --- time ---

    def tick(self, now: float) -> list[Out]:
        if now < self.next_digest:
            return []
        self.next_digest = next_digest(now, self.cfg.digest_hour)
        return [self.digest(now)]

    def digest(self, now: float) -> Out:
        """The digest of the period so far; starts a new period."""
        hours = (now - self._period_start) / 3600
        if self.equity is None:
            lines = ["no account data received"]
        else:
            pnl = self.equity - (self._start_equity or self.equity)
            lev = self.exposure / self.equity if self.equity > 0 else 0.0
            lines = [f"equity {self.equity:,.2f} (PnL {pnl:+,.2f})",
                     f"fees {self.fees:,.2f}, trades {self.trades}",
                     f"exposure {self.exposure:,.2f} (max {self.max_exposure:,.2f}), "
                     f"leverage {lev:.2f}x (max {self.max_leverage:.2f}x)"]
        lines.append(f"warnings {self.warnings}, errors {self.errors}")
        self._period_start, self._start_equity = now, self.equity
        self.fees, self.trades, self.warnings, self.errors = 0.0, 0, 0, 0
        self.max_exposure, self.max_leverage = self.exposure, 0.0
        return Out(INFO, f"Daily digest ({hours:.0f} h)", "\n".join(lines), "digest")
