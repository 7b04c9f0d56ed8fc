"""The strategy API: what a strategy sees and what it may do.

A strategy is plain synchronous code called from the engine's loop: ``on_start``, ``on_tick``
(market data), ``on_fill``, ``on_order`` (order updates), ``on_timer`` (every
``strategy.tick_interval``), ``on_stop``. It acts only through its ``Context``: every order it
asks for passes the risk checks before it leaves, and a refused order returns None. It never
touches the exchange or the bus, so it cannot fail at I/O; an exception it raises is a logic
error and trips the in-process dead switch (halt and flatten).

Built-ins: ``demo`` (small quotes and trades on the configured symbols), ``stuck`` (blocks its
tick handler: a rehearsal of a hang), ``churn`` (a runaway order loop: a rehearsal for the risk
guards). A user strategy is named ``module:Class``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from trader.kernel.errors import FlatguardError

BUILTINS = {
    "demo": "trader.engine.strategies.demo:Demo",
    "stuck": "trader.engine.strategies.stuck:Stuck",
    "churn": "trader.engine.strategies.churn:Churn",
}


class StrategyLoadError(FlatguardError, ValueError):
    """The configured strategy cannot be loaded. Fatal at start-up."""


@dataclass(frozen=True, slots=True)
class MarketData:
    symbol: str
    mark: float
    bid: float
    ask: float
    ts: float


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    client_id: str
    symbol: str
    side: str
    amount: float
    price: float
    fee: float
    ts: float


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    client_id: str
    symbol: str
    side: str
    status: str  # open, closed (filled), canceled, rejected, expired
    amount: float
    filled: float
    price: float | None
    reduce_only: bool


class Context(Protocol):
    params: Mapping[str, Any]
    symbols: tuple[str, ...]

    def buy(self, symbol: str, amount: float, price: float | None = None,
            reduce_only: bool = False) -> str | None: ...

    def sell(self, symbol: str, amount: float, price: float | None = None,
             reduce_only: bool = False) -> str | None: ...

    def cancel(self, symbol: str, client_id: str) -> None: ...

    def cancel_all(self, symbol: str | None = None) -> None: ...

    def position(self, symbol: str) -> float: ...

    def mark(self, symbol: str) -> MarketData | None: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]: ...

    def now(self) -> float: ...

    def log(self, text: str) -> None: ...


class Strategy:
    """Base class: override what you need. All methods run on the engine loop; never block."""

    name = "strategy"

    def on_start(self, ctx: Context) -> None:
        pass

    def on_tick(self, ctx: Context, md: MarketData) -> None:
        pass

    def on_timer(self, ctx: Context) -> None:
        pass

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        pass

    def on_order(self, ctx: Context, order: OrderUpdate) -> None:
        pass

    def on_stop(self, ctx: Context) -> None:
        pass

    def debug(self) -> dict[str, Any]:
        return {}


def load_strategy(name: str) -> type[Strategy]:
    target = BUILTINS.get(name, name)
    if ":" not in target:
        raise StrategyLoadError(
            f"strategy {name!r} is neither a built-in ({', '.join(BUILTINS)}) nor module:Class")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise StrategyLoadError(f"cannot load strategy {name!r}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"strategy {name!r} is not a trader.strategy.Strategy subclass")
    return cls
