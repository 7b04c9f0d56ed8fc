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
    """What a strategy may use: these names and nothing else (the engine passes a
    ``context.StrategyContext``). Calls never block and never raise on a refusal."""

    params: Mapping[str, Any]  # ``[strategy.params]`` from the config
    symbols: tuple[str, ...]  # ``exchange.symbols``

    def buy(self, symbol: str, amount: float, price: float | None = None,
            reduce_only: bool = False) -> str | None:
        """Place a buy (market when ``price`` is None); its client id, or None when a risk check
        refused it (counted and logged). The send runs in the background."""
        ...

    def sell(self, symbol: str, amount: float, price: float | None = None,
             reduce_only: bool = False) -> str | None:
        """As ``buy``, selling."""
        ...

    def cancel(self, symbol: str, client_id: str) -> None:
        """Cancel one of our orders (in the background)."""
        ...

    def cancel_all(self, symbol: str | None = None) -> None:
        """Cancel every order on ``symbol``, or on every symbol (in the background)."""
        ...

    def position(self, symbol: str) -> float:
        """Signed position in contracts, as the trader knows it (fills applied at once)."""
        ...

    def mark(self, symbol: str) -> MarketData | None:
        """The last market data of ``symbol``, None before the first."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """Our orders that can still fill (pending ones included)."""
        ...

    def now(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        ...

    def log(self, text: str) -> None:
        """One log line, tagged with the strategy's name."""
        ...


# Every name of the Context, in one place: the context object carries exactly these.
CONTEXT_API = ("params", "symbols", "buy", "sell", "cancel", "cancel_all", "position", "mark",
               "open_orders", "now", "log")


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


_OLD_BUILTIN_PACKAGE = "trader.strategies."


def load_strategy(name: str) -> type[Strategy]:
    target = BUILTINS.get(name, name)
    if ":" not in target:
        raise StrategyLoadError(
            f"strategy {name!r} is neither a built-in ({', '.join(BUILTINS)}) nor module:Class")
    module, _, attr = target.partition(":")
    if module.startswith(_OLD_BUILTIN_PACKAGE):  # a config written before the engine layer
        module = "trader.engine.strategies." + module[len(_OLD_BUILTIN_PACKAGE):]
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise StrategyLoadError(f"cannot load strategy {name!r}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"strategy {name!r} is not a trader.strategy.Strategy subclass")
    return cls
