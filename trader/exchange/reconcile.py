"""The account as the connector knows it: built from the event feed, confirmed against REST.

Inventory comes from the feed (orders, positions, balance); every ``reconcile_interval`` and
after every feed reconnect the REST state is read and compared. A difference is logged, alerted
and corrected from the exchange (REST wins). ``confirmed`` is the wall time of the last REST
read that succeeded; unconfirmed for ``max_unconfirmed`` is fatal (checked by the service).
Every row is converted strictly (``numbers.py``): a read carrying a NaN or infinite value
raises ``BadExchangeData`` before anything is replaced, so it never confirms the account.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from trader.exchange import numbers as N
from trader.exchange.venues.base import market_contract_size, notional
from trader.kernel.protocol import TERMINAL  # noqa: F401  (the one set; importers use it here)

OPEN = frozenset({"open", "new", "partially_filled"})
EPS = 1e-9
DONE_MEMORY = 10_000


def position_row(p: dict[str, Any]) -> dict[str, Any]:
    """A ccxt unified position as the wire's Position (signed contracts; notional = contracts x
    ccxt's ``contractSize`` x price). Raises :class:`BadExchangeData` for a non-finite amount or
    price (NaN contracts are not "flat")."""
    info = p.get("info") or {}
    where = f"position {p.get('symbol')}"
    raw = N.amount(p.get("contracts"), "contracts", where)
    amt = info.get("positionAmt")
    contracts = N.amount(amt, "contracts", where) if amt is not None else (raw or 0.0) * (
        -1.0 if p.get("side") == "short" else 1.0)
    mark = (N.price(p.get("markPrice"), "mark", where, zero_is_missing=True)
            or N.price(info.get("markPrice"), "mark", where, zero_is_missing=True) or 0.0)
    entry = (N.price(p.get("entryPrice"), "entry_price", where, zero_is_missing=True)
             or N.price(info.get("entryPrice"), "entry_price", where, zero_is_missing=True) or 0.0)
    size = market_contract_size(p)
    upnl = N.number(p.get("unrealizedPnl"), "unrealized_pnl", where)
    if upnl is None:
        upnl = (mark - entry) * contracts * size if mark else 0.0
    return {
        "symbol": p["symbol"],
        "side": "long" if contracts > EPS else "short" if contracts < -EPS else "flat",
        "contracts": contracts, "entry_price": entry, "mark": mark,
        "notional": notional(contracts, mark or entry, size),
        "unrealized_pnl": upnl,
    }


def order_row(o: dict[str, Any]) -> dict[str, Any]:
    info = o.get("info") or {}
    where = f"order {o.get('symbol')} {o.get('id')}"

    def size(v: Any, name: str) -> float:
        f = N.amount(v, name, where) or 0.0
        if f < 0:
            raise N.refuse(name, v, where)
        return f

    return {
        "client_id": o.get("clientOrderId") or info.get("clientOrderId") or info.get("c") or "",
        "id": str(o.get("id") or ""), "symbol": o.get("symbol"), "side": o.get("side"),
        "type": o.get("type"),
        "price": N.price(o.get("price"), "order_price", where, zero_is_missing=True),
        "amount": size(o.get("amount"), "order_amount"),
        "filled": size(o.get("filled"), "order_filled"), "status": o.get("status"),
        "average": N.price(o.get("average"), "order_average", where, zero_is_missing=True),
        "reduce_only": bool(o.get("reduceOnly") or info.get("reduceOnly") or info.get("R")),
    }


def balance_of(b: dict[str, Any], quote: str = "USDT") -> tuple[float | None, float | None]:
    """(wallet balance, margin balance/equity) from a ccxt balance, None where not present;
    a present value that is not finite raises :class:`BadExchangeData`."""
    info = b.get("info") or {}
    where = f"balance {quote}"
    total = N.number((b.get("total") or {}).get(quote), "balance", where)
    wallet = N.number(info.get("totalWalletBalance"), "balance", where)
    equity = N.number(info.get("totalMarginBalance"), "equity", where)
    return (wallet if wallet is not None else total), equity


def margin_ratio_of(b: dict[str, Any]) -> float | None:
    """Maintenance margin / margin balance (Binance's "margin ratio": 1.0 is liquidation), or
    None where the exchange does not report both."""
    info = b.get("info") or {}
    maint = N.number(info.get("totalMaintMargin"), "maint_margin", "balance")
    bal = N.number(info.get("totalMarginBalance"), "equity", "balance")
    if maint is None or bal is None or bal <= 0:
        return None
    return maint / bal


@dataclass
class RestState:
    positions: dict[str, dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    balance: float
    equity: float | None
    read_at: float
    margin_ratio: float | None = None


@dataclass
class Account:
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> Position
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # exchange id -> Order
    balance: float = 0.0
    equity_rest: float | None = None
    margin_ratio: float | None = None
    confirmed: float = 0.0  # wall time of the last REST confirmation
    version: int = 0  # bumped by every change from the feed
    adopted: list[dict[str, Any]] = field(default_factory=list)
    leverage: int = 0
    _done: dict[str, None] = field(default_factory=dict)  # ids seen closed (insertion-ordered)

    # --- from the feed ----------------------------------------------------------------------

    def apply_order(self, o: dict[str, Any]) -> dict[str, Any]:
        """Apply an update; a late "open" for an order already seen closed is ignored (the
        feed and a REST reply race each other)."""
        row = order_row(o)
        if row["status"] in OPEN:
            if row["id"] not in self._done:
                self.orders[row["id"]] = row
        else:
            self.orders.pop(row["id"], None)
            self._done[row["id"]] = None
            if len(self._done) > DONE_MEMORY:
                self._done.pop(next(iter(self._done)))
        self.version += 1
        return row

    def apply_position(self, p: dict[str, Any]) -> dict[str, Any]:
        row = position_row(p)
        if abs(row["contracts"]) > EPS:
            self.positions[row["symbol"]] = row
        else:
            self.positions.pop(row["symbol"], None)
        self.version += 1
        return row

    def apply_balance(self, b: dict[str, Any]) -> None:
        wallet, equity = balance_of(b)
        ratio = margin_ratio_of(b)  # all checked before anything changes
        if wallet is not None:
            self.balance = wallet
        if equity is not None:
            self.equity_rest = equity
        if ratio is not None:
            self.margin_ratio = ratio
        self.version += 1

    def mark(self, symbol: str, price: float) -> None:
        p = self.positions.get(symbol)
        if p is not None and price > 0:
            p["mark"] = price
            p["notional"] = abs(p["contracts"]) * price
            p["unrealized_pnl"] = (price - p["entry_price"]) * p["contracts"]

    # --- against REST -----------------------------------------------------------------------

    def differences(self, rest: RestState) -> list[str]:
        out = []
        for sym in sorted(set(self.positions) | set(rest.positions)):
            mine = self.positions.get(sym, {}).get("contracts", 0.0)
            theirs = rest.positions.get(sym, {}).get("contracts", 0.0)
            if abs(mine - theirs) > EPS:
                out.append(f"position {sym}: feed {mine:g}, exchange {theirs:g}")
        for oid in sorted(set(self.orders) - set(rest.orders)):
            o = self.orders[oid]
            out.append(f"order {o['client_id'] or oid} {o['symbol']}: open here, gone on exchange")
        for oid in sorted(set(rest.orders) - set(self.orders)):
            o = rest.orders[oid]
            out.append(f"order {o['client_id'] or oid} {o['symbol']}: on exchange, unknown here")
        for oid in sorted(set(rest.orders) & set(self.orders)):
            a, b = self.orders[oid]["filled"], rest.orders[oid]["filled"]
            if abs(a - b) > EPS:
                out.append(f"order {oid}: filled feed {a:g}, exchange {b:g}")
        return out

    def replace(self, rest: RestState) -> None:
        self.positions = {s: dict(p) for s, p in rest.positions.items()}
        self.orders = {i: dict(o) for i, o in rest.orders.items()}
        self.balance = rest.balance
        self.equity_rest = rest.equity
        if rest.margin_ratio is not None:
            self.margin_ratio = rest.margin_ratio
        self.confirmed = rest.read_at

    # --- views ------------------------------------------------------------------------------

    def equity(self) -> float:
        return self.balance + sum(p["unrealized_pnl"] for p in self.positions.values())

    def exposure(self) -> float:
        return sum(p["notional"] for p in self.positions.values())

    def snapshot(self, source: str) -> dict[str, Any]:
        eq = self.equity()
        return {
            "equity": eq, "balance": self.balance,
            "positions": [dict(p) for _, p in sorted(self.positions.items())],
            "open_orders": [{k: o[k] for k in ("client_id", "id", "symbol", "side", "type",
                                                "price", "amount", "filled", "reduce_only")}
                            for o in self.orders.values()],
            "confirmed": self.confirmed, "exposure": self.exposure(),
            "leverage": self.leverage, "effective_leverage": self.exposure() / eq if eq > 0 else 0.0,
            "adopted": list(self.adopted), "source": source, "margin_ratio": self.margin_ratio,
        }


def rest_state(positions: list[dict[str, Any]], orders: list[dict[str, Any]],
               balance: dict[str, Any], read_at: float | None = None) -> RestState:
    """``read_at``: when the reads began (the state is vouched for from then, not from when
    the last read answered)."""
    pos = {}
    for p in positions:
        row = position_row(p)
        if abs(row["contracts"]) > EPS:
            pos[row["symbol"]] = row
    ords = {}
    for o in orders:
        row = order_row(o)
        if row["status"] in OPEN:
            ords[row["id"]] = row
    wallet, equity = balance_of(balance)
    return RestState(pos, ords, wallet or 0.0, equity, time.time() if read_at is None else read_at,
                     margin_ratio_of(balance))
