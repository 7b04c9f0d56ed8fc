"""What the trader believes about the account, built from the event feed.

The connector's ``account`` snapshots (after every feed change and every REST reconcile) are the
truth; fills that arrive between two snapshots are applied at once so the risk checks never work
from a position that is a fill behind. Orders the trader sent and has not seen finish are kept by
the order manager and added here, so exposure counts what may still fill.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from trader.risk.view import AccountView, Mark, OpenOrder, Position
from trader.strategy import MarketData


@dataclass
class Inventory:
    equity: float = 0.0
    balance: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    entry: dict[str, float] = field(default_factory=dict)
    marks: dict[str, MarketData] = field(default_factory=dict)
    adopted_orders: list[dict[str, Any]] = field(default_factory=list)
    margin_ratio: float | None = None
    confirmed: float = 0.0
    last_md: float = 0.0

    def apply_account(self, snap: dict[str, Any]) -> None:
        self.equity = float(snap.get("equity") or 0.0)
        self.balance = float(snap.get("balance") or 0.0)
        self.positions = {
            p["symbol"]: Position(float(p.get("contracts") or 0.0), float(p.get("entry_price") or 0.0))
            for p in snap.get("positions", [])
            if float(p.get("contracts") or 0.0) != 0.0
        }
        self.adopted_orders = list(snap.get("open_orders", []))
        mr = snap.get("margin_ratio")
        self.margin_ratio = float(mr) if mr is not None else None
        # "fresh" is how far the connector vouches for the state (a live feed keeps it current).
        self.confirmed = float(snap.get("fresh") or snap.get("confirmed") or 0.0)

    def apply_fill(self, symbol: str, side: str, amount: float, price: float) -> None:
        old = self.positions.get(symbol, Position(0.0, 0.0))
        delta = amount if side == "buy" else -amount
        new = old.contracts + delta
        if abs(new) < 1e-12:
            self.positions.pop(symbol, None)
            return
        if old.contracts == 0 or (old.contracts > 0) == (delta > 0):  # opening or adding
            entry = (abs(old.contracts) * old.entry_price + amount * price) / abs(new)
        elif (old.contracts > 0) != (new > 0):  # flipped through zero
            entry = price
        else:  # reducing keeps the entry price
            entry = old.entry_price
        self.positions[symbol] = Position(new, entry)

    def apply_md(self, md: MarketData) -> None:
        self.marks[md.symbol] = md
        self.last_md = time.time()

    def contracts(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.contracts if p else 0.0

    def view(self, own_orders: tuple[OpenOrder, ...]) -> AccountView:
        own_ids = {o.client_id for o in own_orders}
        adopted = tuple(
            OpenOrder(str(o.get("client_id") or o.get("id")), o["symbol"], o["side"],
                      max(0.0, float(o.get("amount") or 0) - float(o.get("filled") or 0)),
                      o.get("price"), bool(o.get("reduce_only")))
            for o in self.adopted_orders
            if (o.get("client_id") or o.get("id")) not in own_ids and o.get("side") in ("buy", "sell")
        )
        return AccountView(
            equity=self.equity,
            positions=self.positions,
            marks={s: Mark(m.mark, m.ts) for s, m in self.marks.items()},
            open_orders=own_orders + adopted,
            margin_ratio=self.margin_ratio,
            confirmed=self.confirmed,
        )

    def position_rows(self) -> list[dict[str, Any]]:
        rows = []
        for sym, p in sorted(self.positions.items()):
            mark = self.marks[sym].mark if sym in self.marks else p.entry_price
            rows.append({"symbol": sym, "side": "long" if p.contracts > 0 else "short",
                         "contracts": p.contracts, "entry_price": p.entry_price,
                         "notional": abs(p.contracts) * mark,
                         "unrealized_pnl": (mark - p.entry_price) * p.contracts})
        return rows
