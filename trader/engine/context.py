"""The strategy's view of the engine: the documented ``Context`` methods and nothing else.

The engine used to hand itself to the strategy, so user code could reach the journal, the bus,
the risk engine and every private helper. ``StrategyContext`` carries only the names the
``Context`` Protocol documents (``strategy.CONTEXT_API``); each method is the engine's own bound
method, so the hot path (``on_tick`` -> ``ctx.buy``) pays no extra call. It is a narrow surface,
not a sandbox: a strategy runs in the trader's process and could still dig through dunders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from trader.engine.strategy import CONTEXT_API, MarketData, OrderUpdate


class _Implements(Protocol):
    """What the engine must provide for the context (``loop.Engine`` does)."""

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


class StrategyContext:
    """Implements ``strategy.Context`` by delegating to the engine; read-only."""

    __slots__ = CONTEXT_API

    params: Mapping[str, Any]
    symbols: tuple[str, ...]
    buy: Callable[..., str | None]
    sell: Callable[..., str | None]
    cancel: Callable[[str, str], None]
    cancel_all: Callable[..., None]
    position: Callable[[str], float]
    mark: Callable[[str], MarketData | None]
    open_orders: Callable[..., list[OrderUpdate]]
    now: Callable[[], float]
    log: Callable[[str], None]

    def __init__(self, engine: _Implements) -> None:
        for name in CONTEXT_API:
            object.__setattr__(self, name, getattr(engine, name))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"the strategy context is read-only ({name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the strategy context is read-only ({name!r})")

    def __repr__(self) -> str:
        return f"StrategyContext(symbols={self.symbols!r})"
