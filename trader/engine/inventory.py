"""What the trader believes about the account, built from the event feed.

The connector's ``account`` snapshots (after every feed change, every REST reconcile, and every
second) are the truth; fills that arrive between two snapshots are applied at once so the risk
checks never work from a position that is a fill behind. Orders the trader sent and has not seen
finish are kept by the order manager and added here, so exposure counts what may still fill.

Fills and snapshots race: the connector publishes a snapshot after an order update, before the
position update that carries the same fill, so a fill may arrive before or after the first
snapshot that includes it. Each fill applied since the last snapshot is kept as *unconfirmed*;
a new snapshot is matched against the previous one: if its position moved by the sum of the
first k unconfirmed fills, those k are in it and the rest are re-applied on top. If no k
explains the move, the snapshot wins, the unconfirmed fills count as in it, and what is left of
the move is kept as *ahead*: a fill the snapshot already shows but whose event has not arrived.
When that fill arrives it uses up the ahead amount instead of moving the position twice (a
bigger fill uses all of it and moves the position by the rest).

*Ahead* is only ever what our own orders may still deliver as fill events (``to_come``: the
order manager's count, per symbol and side). A move no order of ours can explain — a manual
trade on the exchange's web page, a liquidation, an ADL — is the account's, not a fill on its
way: counting it as ahead would swallow our next real fills of that side, or count the next
fill of the other side twice, for up to ``FILL_GRACE`` (an orderly stop then sent reduce-only
exits for a position it did not have, refused with -2022, for 10 s).
Unconfirmed fills and ahead amounts older than ``FILL_GRACE`` are dropped: by then the feed has
delivered the position, or the reconcile will. Whatever goes wrong, every snapshot resets the
positions to the connector's, so an error lasts one snapshot interval at most.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trader.engine.risk.view import AccountView, Mark, OpenOrder, Position
from trader.engine.strategy import MarketData

EPS = 1e-9
FILL_GRACE = 10.0  # s an unconfirmed fill is re-applied over snapshots that do not show it
SEEN_MEMORY = 10_000  # trade ids remembered against duplicate fill events


@dataclass(frozen=True)
class _Fill:
    trade_id: str
    symbol: str
    delta: float  # signed contracts
    price: float
    at: float  # local wall time it was applied


def _step(old: Position, delta: float, price: float) -> Position | None:
    """The position after a fill of signed ``delta`` at ``price``; None when flat."""
    new = old.contracts + delta
    if abs(new) < EPS:
        return None
    if abs(old.contracts) < EPS or (old.contracts > 0) == (delta > 0):  # opening or adding
        entry = (abs(old.contracts) * old.entry_price + abs(delta) * price) / abs(new)
    elif (old.contracts > 0) != (new > 0):  # flipped through zero: the rest opened at price
        entry = price
    else:  # reducing keeps the entry price
        entry = old.entry_price
    return Position(new, entry)


@dataclass
class Inventory:
    equity: float = 0.0
    balance: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)
    marks: dict[str, MarketData] = field(default_factory=dict)
    md_at: dict[str, float] = field(default_factory=dict)  # local receive time per symbol
    adopted_orders: list[dict[str, Any]] = field(default_factory=list)
    margin_ratio: float | None = None
    confirmed: float = 0.0
    last_md: float = 0.0
    snapshots: int = 0
    _snap_pos: dict[str, float] = field(default_factory=dict)  # last snapshot, contracts
    _unconfirmed: list[_Fill] = field(default_factory=list)
    _ahead: dict[str, tuple[float, float]] = field(default_factory=dict)  # sym -> (contracts, at)
    _seen: dict[str, None] = field(default_factory=dict)  # trade ids applied (ordered)

    # --- from the connector ------------------------------------------------------------------

    def apply_account(self, snap: dict[str, Any], now: float | None = None,
                      to_come: Mapping[str, tuple[float, float]] | None = None) -> None:
        """Take the connector's snapshot as the truth and re-apply the fills it does not show.

        ``to_come``: per symbol, the (buy, sell) contracts our own orders may still deliver as
        fill events (``OrderManager.fills_to_come``); what the snapshot moved beyond our fills
        is kept as ahead only within it. None: unbounded (no order manager; tests of the
        matching alone)."""
        now = time.time() if now is None else now
        if snap.get("source") != "none" or not self.snapshots:
            # a connector that has not read the account yet says 0: not a loss to act on
            self.equity = float(snap.get("equity") or 0.0)
            self.balance = float(snap.get("balance") or 0.0)
        positions = {
            str(p["symbol"]): Position(float(p.get("contracts") or 0.0),
                                       float(p.get("entry_price") or 0.0))
            for p in snap.get("positions", [])
            if abs(float(p.get("contracts") or 0.0)) > EPS
        }
        self.adopted_orders = [o for o in snap.get("open_orders", []) if isinstance(o, dict)]
        mr = snap.get("margin_ratio")
        self.margin_ratio = float(mr) if mr is not None else None
        # "fresh" is how far the connector vouches for the state (a live feed keeps it current);
        # "confirmed" (the last REST read) when it does not say.
        self.confirmed = float(snap.get("fresh") or snap.get("confirmed") or 0.0)
        self.snapshots += 1
        prev, self._snap_pos = self._snap_pos, {s: p.contracts for s, p in positions.items()}
        self.positions = positions
        pending = [f for f in self._unconfirmed if now - f.at <= FILL_GRACE]
        self._unconfirmed = []
        self._ahead = {s: a for s, a in self._ahead.items() if now - a[1] <= FILL_GRACE}
        for sym in sorted(set(prev) | set(self._snap_pos) | set(self._ahead)
                          | {f.symbol for f in pending}):
            fills = [f for f in pending if f.symbol == sym]
            moved = self._snap_pos.get(sym, 0.0) - prev.get(sym, 0.0)
            k = self._included(fills, moved)
            left, since = self._ahead.get(sym, (0.0, now))
            left = self._bound(sym, left, to_come)
            if k is None:  # the snapshot shows more than the fills we have: it wins
                k = len(fills)
                if self.snapshots > 1:  # the first one is the starting point, not a move
                    left = self._bound(sym, left + moved - sum(f.delta for f in fills), to_come)
                    since = now
            if abs(left) > EPS:
                self._ahead[sym] = (left, since)
            else:
                self._ahead.pop(sym, None)
            for f in fills[k:]:
                self._apply(f)

    @staticmethod
    def _bound(sym: str, ahead: float, to_come: Mapping[str, tuple[float, float]] | None
               ) -> float:
        """``ahead`` within what our own orders may still deliver on ``sym`` (see module)."""
        if to_come is None:
            return ahead
        buy, sell = to_come.get(sym, (0.0, 0.0))
        return min(max(ahead, -sell), buy)

    @staticmethod
    def _included(fills: list[_Fill], moved: float) -> int | None:
        """The largest k such that the first k fills explain the move, or None."""
        total, best = 0.0, 0 if abs(moved) < EPS else None
        for k, f in enumerate(fills, 1):
            total += f.delta
            if abs(total - moved) < EPS * max(1.0, abs(moved)):
                best = k
        return best

    def apply_fill(self, symbol: str, side: str, amount: float, price: float,
                   trade_id: str = "", now: float | None = None) -> bool:
        """Apply one own fill now; False (and nothing changes) for a trade already applied."""
        if trade_id:
            if trade_id in self._seen:
                return False
            self._seen[trade_id] = None
            if len(self._seen) > SEEN_MEMORY:
                self._seen.pop(next(iter(self._seen)))
        delta = amount if side == "buy" else -amount
        ahead = self._ahead.get(symbol)
        if ahead is not None and ahead[0] * delta > 0:
            # the last snapshot already holds this fill (or part of it): use that up, do not
            # apply it twice; only what is beyond it moves the position
            if abs(delta) <= abs(ahead[0]) + EPS:
                left = ahead[0] - delta
                if abs(left) < EPS:
                    del self._ahead[symbol]
                else:
                    self._ahead[symbol] = (left, ahead[1])
                return True
            del self._ahead[symbol]
            delta -= ahead[0]
        self._apply(_Fill(trade_id, symbol, delta, price, time.time() if now is None else now))
        return True

    def _apply(self, f: _Fill) -> None:
        new = _step(self.positions.get(f.symbol, Position(0.0, 0.0)), f.delta, f.price)
        if new is None:
            self.positions.pop(f.symbol, None)
        else:
            self.positions[f.symbol] = new
        self._unconfirmed.append(f)

    def apply_md(self, md: MarketData, now: float | None = None) -> None:
        self.marks[md.symbol] = md
        # staleness is judged by when *we* saw it: an exchange clock that runs behind or ahead
        # must neither halt trading nor hide a frozen feed
        self.last_md = self.md_at[md.symbol] = time.time() if now is None else now

    # --- reading -----------------------------------------------------------------------------

    def contracts(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.contracts if p else 0.0

    def entry_price(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.entry_price if p else 0.0

    def adopted_ids(self) -> set[str]:
        return {str(o.get("client_id") or o.get("id")) for o in self.adopted_orders}

    def view(self, own_orders: tuple[OpenOrder, ...]) -> AccountView:
        own_ids = {o.client_id for o in own_orders}
        adopted = tuple(
            OpenOrder(str(o.get("client_id") or o.get("id")), str(o["symbol"]), o["side"],
                      max(0.0, float(o.get("amount") or 0) - float(o.get("filled") or 0)),
                      float(o["price"]) if o.get("price") else None, bool(o.get("reduce_only")))
            for o in self.adopted_orders
            if str(o.get("client_id") or o.get("id")) not in own_ids
            and o.get("side") in ("buy", "sell") and o.get("symbol")
        )
        return AccountView(
            equity=self.equity,
            positions=dict(self.positions),
            marks={s: Mark(m.mark, self.md_at.get(s, m.ts)) for s, m in self.marks.items()},
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
