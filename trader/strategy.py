"""The strategy API's public import path: ``from trader.strategy import Strategy``.

Users' strategies import from here, so this path stays whatever the engine's layout becomes.
The code lives in :mod:`trader.engine.strategy`.
"""

from trader.engine.strategy import (
    BUILTINS,
    Context,
    Fill,
    MarketData,
    OrderUpdate,
    Strategy,
    StrategyLoadError,
    load_strategy,
)

__all__ = ["BUILTINS", "Context", "Fill", "MarketData", "OrderUpdate", "Strategy",
           "StrategyLoadError", "load_strategy"]
