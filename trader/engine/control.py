"""``EngineControl``: what the trader's commands (``commands.py``) may do with the engine.

The commands see the engine only through this Protocol, never its internals, so they can be
tested in-process against a small fake, and ``commands`` does not import ``loop``.
``EngineControls`` is the engine's implementation of it (``loop.Engine`` inherits it); its
methods are named apart from the strategy's Context (``buy``/``sell``/``position``/...) so the
two surfaces can change independently.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from trader.engine.inventory import Inventory
from trader.engine.orders import OrderManager
from trader.engine.risk import RiskEngine
from trader.engine.risk.view import OpenOrder
from trader.engine.strategy import Context, MarketData, OrderUpdate, Strategy
from trader.kernel import proc
from trader.kernel.config import Config
from trader.kernel.protocol import TERMINAL, OrderStatus, TradingState


class Requesting(Protocol):
    """A DEALER client (``bus.Requester``) as the commands use it."""

    @property
    def in_flight(self) -> int: ...

    async def request(self, op: str, args: dict[str, Any] | None = None,
                      timeout: float = 5.0) -> Any: ...


class EngineControl(Protocol):
    cfg: Config
    symbols: tuple[str, ...]
    state: str
    connector: Requesting
    supervisor: Requesting

    def set_state(self, state: TradingState) -> None: ...

    # risk
    def risk_status(self) -> dict[str, Any]: ...
    def risk_state(self) -> str: ...
    def ban(self, symbol: str) -> None: ...
    def unban(self, symbol: str) -> None: ...

    # strategy
    def strategy_name(self) -> str: ...
    def strategy_debug(self) -> Any: ...
    def strategy_stop(self) -> None: ...

    # account, as the trader knows it
    def held(self, symbol: str) -> float: ...
    def quote(self, symbol: str) -> MarketData | None: ...
    def position_rows(self) -> list[dict[str, Any]]: ...
    def equity(self) -> float: ...
    def last_md(self) -> float: ...  # wall time of the last market data, 0 = none

    # orders
    def open_order_rows(self) -> tuple[OpenOrder, ...]: ...  # ours, pending included
    def live_orders(self, symbol: str) -> list[OrderUpdate]: ...
    def order_status(self, client_id: str) -> str | None: ...  # None: not tracked
    def pending_orders(self, symbols: tuple[str, ...]) -> list[tuple[str, str]]: ...
    def orders_tracked(self) -> int: ...
    def rejections(self) -> int: ...
    def place(self, symbol: str, side: str, amount: float, price: float | None,
              reduce_only: bool) -> str | None: ...
    def cancel_order(self, symbol: str, client_id: str) -> None: ...
    async def cancel_all_now(self, symbols: tuple[str, ...]) -> None: ...
    def exit_client_id(self) -> str: ...  # for the self-flatten's market orders

    # process
    def loops(self) -> int: ...
    def notify(self, level: str, title: str, text: str, key: str | None = None) -> None: ...
    def stop_process(self) -> None: ...


class EngineControls:
    """The engine's side of ``EngineControl`` (a mixin of ``loop.Engine``)."""

    cfg: Config
    child: proc.Child
    conn: Any
    inv: Inventory
    orders: OrderManager
    risk: RiskEngine
    strategy: Strategy
    strategy_ctx: Context  # what the strategy sees (``context.StrategyContext``)

    @property
    def connector(self) -> Requesting:
        return self.conn  # type: ignore[no-any-return]

    @property
    def supervisor(self) -> Requesting:
        return self.child.sup

    def risk_status(self) -> dict[str, Any]:
        return self.risk.status(self.inv.view(self.orders.open_orders()), time.time())

    def risk_state(self) -> str:
        return self.risk.account_state()

    def ban(self, symbol: str) -> None:
        self.risk.ban(symbol)

    def unban(self, symbol: str) -> None:
        self.risk.unban(symbol)

    def strategy_name(self) -> str:
        return self.strategy.name

    def strategy_debug(self) -> Any:
        return self.strategy.debug()

    def strategy_stop(self) -> None:
        self.strategy.on_stop(self.strategy_ctx)

    def held(self, symbol: str) -> float:
        return self.inv.contracts(symbol)

    def quote(self, symbol: str) -> MarketData | None:
        return self.inv.marks.get(symbol)

    def position_rows(self) -> list[dict[str, Any]]:
        return self.inv.position_rows()

    def equity(self) -> float:
        return self.inv.equity

    def last_md(self) -> float:
        return self.inv.last_md

    def open_order_rows(self) -> tuple[OpenOrder, ...]:
        return self.orders.open_orders()

    def live_orders(self, symbol: str) -> list[OrderUpdate]:
        return [t.update() for t in self.orders.orders.values()
                if t.status not in TERMINAL and t.intent.symbol == symbol]

    def order_status(self, client_id: str) -> str | None:
        t = self.orders.orders.get(client_id)
        return None if t is None else t.status

    def pending_orders(self, symbols: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(t.intent.symbol, cid) for cid, t in self.orders.orders.items()
                if t.status == OrderStatus.PENDING and t.intent.symbol in symbols]

    def orders_tracked(self) -> int:
        return len(self.orders.orders)

    def rejections(self) -> int:
        return self.orders.rejections

    def place(self, symbol: str, side: str, amount: float, price: float | None,
              reduce_only: bool) -> str | None:
        return self.orders.submit(symbol, side, amount, price, reduce_only)

    def cancel_order(self, symbol: str, client_id: str) -> None:
        self.orders.cancel(symbol, client_id)

    async def cancel_all_now(self, symbols: tuple[str, ...]) -> None:
        await self.orders.cancel_all(symbols)

    def exit_client_id(self) -> str:
        return f"{self.orders._prefix}-x{int(time.time() * 1000) % 10**8}"

    def loops(self) -> int:
        return self.child.loops

    def notify(self, level: str, title: str, text: str, key: str | None = None) -> None:
        if self.child.notify is not None:
            self.child.notify.send(level, title, text, key=key)

    def stop_process(self) -> None:
        self.child.stop.set()
