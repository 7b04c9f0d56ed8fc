"""The main bus payloads as frozen dataclasses (``protocol.py`` documents every op and payload).

``to_wire()`` gives the msgpack map with exactly today's keys; ``from_wire()`` checks every field
it reads and raises ``PayloadError`` naming the payload, the field and what is wrong, instead of
a ``KeyError`` deep inside a handler. Keys a payload does not know are ignored (a newer sender
may add fields). Numbers accept int or float (msgpack keeps ``1.0`` a float, but a sender may
write ``1``); bools are never numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trader.kernel.errors import FlatguardError


class PayloadError(FlatguardError, ValueError):
    """A payload with a missing or mistyped field. Policy: reply ``bad_request``; nothing done."""

    kind = "bad_request"

    def __init__(self, payload: str, name: str, problem: str) -> None:
        super().__init__(f"{payload}: field {name!r} {problem}")
        self.payload, self.field, self.problem = payload, name, problem


_MISSING: Any = object()


class _Reader:
    """Typed reads from one wire map, every error naming the payload and the field."""

    def __init__(self, payload: str, d: Any) -> None:
        if not isinstance(d, Mapping):
            raise PayloadError(payload, "*", f"payload is a {type(d).__name__}, not a map")
        self.payload, self.d = payload, d

    def _get(self, name: str, default: Any) -> Any:
        v = self.d.get(name, _MISSING)
        if v is _MISSING:
            if default is _MISSING:
                raise PayloadError(self.payload, name, "is missing")
            return default
        return v

    def bad(self, name: str, v: Any, want: str) -> PayloadError:
        return PayloadError(self.payload, name, f"must be {want}, got {v!r}")

    def str(self, name: str, default: Any = _MISSING) -> Any:
        v = self._get(name, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, str):
            raise self.bad(name, v, "a string")
        return v

    def opt_str(self, name: str) -> str | None:
        v = self._get(name, None)
        if v is not None and not isinstance(v, str):
            raise self.bad(name, v, "a string or null")
        return v

    def num(self, name: str, default: Any = _MISSING) -> Any:
        v = self._get(name, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.bad(name, v, "a finite number")
        return float(v)

    def opt_num(self, name: str) -> float | None:
        v = self._get(name, None)
        return None if v is None else self.num(name)

    def int(self, name: str, default: Any = _MISSING) -> Any:
        v = self._get(name, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.bad(name, v, "an integer")
        return v

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        v = self._get(name, default)
        if not isinstance(v, bool):
            raise self.bad(name, v, "true or false")
        return v

    def list(self, name: str, default: Any = _MISSING) -> Any:
        v = self._get(name, default)
        if not isinstance(v, list | tuple):
            raise self.bad(name, v, "a list")
        return v

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        v = self.str(name)
        if v not in allowed:
            raise self.bad(name, v, " or ".join(repr(a) for a in allowed))
        return v


def _finite(v: Any) -> bool:
    """A finite float, fast (``inf - inf`` and ``nan - nan`` are NaN, which is != 0)."""
    return type(v) is float and v - v == 0.0


SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit")


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketData:
    """``md.<symbol>``: the mark is always there (nothing is published before it), bid/ask may
    not be; ``ts`` is the exchange's time of the mark in wall seconds."""

    symbol: str
    mark: float
    bid: float | None
    ask: float | None
    ts: float

    def to_wire(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "mark": self.mark, "bid": self.bid, "ask": self.ask,
                "ts": self.ts}

    @classmethod
    def from_wire(cls, d: Any) -> MarketData:
        # the hot path (every tick): plain type checks first, the reader only to explain
        if type(d) is dict:
            sym, mark, bid, ask, ts = (d.get("symbol"), d.get("mark"), d.get("bid"),
                                       d.get("ask"), d.get("ts", 0.0))
            if (type(sym) is str and _finite(mark) and (bid is None or _finite(bid))
                    and (ask is None or _finite(ask)) and _finite(ts)):
                return cls(sym, mark, bid, ask, ts)
        r = _Reader("md", d)
        return cls(r.str("symbol"), r.num("mark"), r.opt_num("bid"), r.opt_num("ask"),
                   r.num("ts", 0.0))


@dataclass(frozen=True, slots=True)
class Fill:
    """``fill.<symbol>``: one own trade, keyed by venue, symbol and ``trade_id``."""

    trade_id: str
    client_id: str | None
    order_id: str
    symbol: str
    side: str
    amount: float
    price: float
    fee: float
    fee_currency: str
    ts: float

    def to_wire(self) -> dict[str, Any]:
        return {"trade_id": self.trade_id, "client_id": self.client_id,
                "order_id": self.order_id, "symbol": self.symbol, "side": self.side,
                "amount": self.amount, "price": self.price, "fee": self.fee,
                "fee_currency": self.fee_currency, "ts": self.ts}

    @classmethod
    def from_wire(cls, d: Any) -> Fill:
        r = _Reader("fill", d)
        return cls(r.str("trade_id"), r.opt_str("client_id"), r.str("order_id", ""),
                   r.str("symbol"), r.choice("side", SIDES), r.num("amount"), r.num("price"),
                   r.num("fee", 0.0), r.str("fee_currency", ""), r.num("ts", 0.0))


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """``order.<symbol>``: an order as the connector's account knows it. ``error`` only on an
    order refused before it was placed."""

    client_id: str
    id: str
    symbol: str
    side: str | None
    type: str | None
    status: str | None
    amount: float | None
    filled: float | None
    price: float | None
    average: float | None
    reduce_only: bool
    ts: float
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out = {"client_id": self.client_id, "id": self.id, "symbol": self.symbol,
               "side": self.side, "type": self.type, "status": self.status,
               "amount": self.amount, "filled": self.filled, "price": self.price,
               "average": self.average, "reduce_only": self.reduce_only, "ts": self.ts}
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_wire(cls, d: Any) -> OrderUpdate:
        r = _Reader("order", d)
        return cls(r.str("client_id", ""), r.str("id", ""), r.str("symbol"), r.opt_str("side"),
                   r.opt_str("type"), r.opt_str("status"), r.opt_num("amount"),
                   r.opt_num("filled"), r.opt_num("price"), r.opt_num("average"),
                   r.bool("reduce_only", False), r.num("ts", 0.0), r.opt_str("error"))


@dataclass(frozen=True, slots=True)
class Position:
    """A row of the account snapshot's ``positions`` (signed contracts)."""

    symbol: str
    side: str
    contracts: float
    entry_price: float
    mark: float
    notional: float
    unrealized_pnl: float

    def to_wire(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "side": self.side, "contracts": self.contracts,
                "entry_price": self.entry_price, "mark": self.mark, "notional": self.notional,
                "unrealized_pnl": self.unrealized_pnl}

    @classmethod
    def from_wire(cls, d: Any) -> Position:
        r = _Reader("position", d)
        return cls(r.str("symbol"), r.choice("side", ("long", "short", "flat")),
                   r.num("contracts"), r.num("entry_price", 0.0), r.num("mark", 0.0),
                   r.num("notional", 0.0), r.num("unrealized_pnl", 0.0))


@dataclass(frozen=True, slots=True)
class AccountOrder:
    """A row of the account snapshot's ``open_orders``: an order open on the exchange (ours or
    not: the trader adopts the others and cancels them per symbol)."""

    client_id: str | None
    id: str
    symbol: str
    side: str
    type: str | None
    price: float | None
    amount: float
    filled: float
    reduce_only: bool

    def to_wire(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "id": self.id, "symbol": self.symbol,
                "side": self.side, "type": self.type, "price": self.price,
                "amount": self.amount, "filled": self.filled, "reduce_only": self.reduce_only}

    @classmethod
    def from_wire(cls, d: Any) -> AccountOrder:
        r = _Reader("open_order", d)
        return cls(r.opt_str("client_id"), r.str("id"), r.str("symbol"),
                   r.choice("side", SIDES), r.opt_str("type"), r.opt_num("price"),
                   r.num("amount"), r.num("filled", 0.0), r.bool("reduce_only", False))


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """``account`` (event, and the ``account`` op's reply): the connector's whole view of the
    account. ``confirmed`` is the wall time of the last REST read; ``fresh`` how far the
    connector vouches for it (a live feed keeps it current); ``source`` says what produced it
    (``none``: nothing read yet, its zeros are not a loss to act on)."""

    equity: float
    balance: float
    positions: tuple[Position, ...]
    open_orders: tuple[AccountOrder, ...]
    confirmed: float
    fresh: float
    source: str
    margin_ratio: float | None = None
    exposure: float = 0.0
    leverage: float = 0.0
    effective_leverage: float = 0.0
    adopted: tuple[dict[str, Any], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"equity": self.equity, "balance": self.balance,
                "positions": [p.to_wire() for p in self.positions],
                "open_orders": [o.to_wire() for o in self.open_orders],
                "confirmed": self.confirmed, "fresh": self.fresh, "source": self.source,
                "margin_ratio": self.margin_ratio, "exposure": self.exposure,
                "leverage": self.leverage, "effective_leverage": self.effective_leverage,
                "adopted": [dict(a) for a in self.adopted]}

    @classmethod
    def from_wire(cls, d: Any) -> AccountSnapshot:
        r = _Reader("account", d)
        rows = r.list("positions", [])
        orders = r.list("open_orders", [])
        adopted = r.list("adopted", [])
        for i, a in enumerate(adopted):
            if not isinstance(a, Mapping):
                raise r.bad(f"adopted[{i}]", a, "a map")
        return cls(r.num("equity", 0.0), r.num("balance", 0.0),
                   tuple(Position.from_wire(p) for p in rows),
                   tuple(AccountOrder.from_wire(o) for o in orders),
                   r.num("confirmed", 0.0), r.num("fresh", 0.0), r.str("source", ""),
                   r.opt_num("margin_ratio"), r.num("exposure", 0.0), r.num("leverage", 0.0),
                   r.num("effective_leverage", 0.0), tuple(dict(a) for a in adopted))


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderCreate:
    """``order.create`` args. ``price`` is None for a market order (sent as null); ``tif`` is
    sent only when set. The connector still checks the values against what it trades."""

    client_id: str
    symbol: str
    side: str
    type: str
    amount: float
    price: float | None = None
    reduce_only: bool = False
    tif: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"client_id": self.client_id, "symbol": self.symbol,
                               "side": self.side, "type": self.type, "amount": self.amount,
                               "price": self.price, "reduce_only": self.reduce_only}
        if self.tif:
            out["tif"] = self.tif
        return out

    @classmethod
    def from_wire(cls, d: Any) -> OrderCreate:
        r = _Reader("order.create", d)
        return cls(r.str("client_id"), r.str("symbol"), r.choice("side", SIDES),
                   r.choice("type", ORDER_TYPES), r.num("amount"), r.opt_num("price"),
                   r.bool("reduce_only", False), r.opt_str("tif"))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``hb`` (one-way to the supervisor), sent from the loop that does the work: ``loop`` is
    its counter; ``last_md``/``last_ok`` wall times of the last market data / exchange success.
    ``metrics`` ([name, [[label, value]...], value] rows) at most once a second."""

    proc: str
    pid: int
    state: str
    loop: int
    last_md: float = 0.0
    last_ok: float = 0.0
    metrics: list[Any] | None = field(default=None, compare=False)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proc": self.proc, "pid": self.pid, "state": self.state,
                               "loop": self.loop, "last_md": self.last_md,
                               "last_ok": self.last_ok}
        if self.metrics is not None:
            out["metrics"] = self.metrics
        return out

    @classmethod
    def from_wire(cls, d: Any) -> Heartbeat:
        r = _Reader("hb", d)
        metrics = d.get("metrics")
        if metrics is not None and not isinstance(metrics, list):
            raise r.bad("metrics", metrics, "a list")
        return cls(r.str("proc"), r.int("pid"), r.str("state", ""), r.int("loop", 0),
                   r.num("last_md", 0.0), r.num("last_ok", 0.0), metrics)


@dataclass(frozen=True, slots=True)
class Halt:
    """``halt``: run the kill switch. ``trigger`` names the rule that fired (journal, metrics)."""

    trigger: str = "request"
    reason: str = "halt requested"
    source: str = "?"

    def to_wire(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "reason": self.reason, "source": self.source}

    @classmethod
    def from_wire(cls, d: Any) -> Halt:
        r = _Reader("halt", d)
        # empty strings read as "not given", as before the payload had a type
        return cls(r.str("trigger", "") or "request", r.str("reason", "") or "halt requested",
                   r.str("source", "") or "?")
