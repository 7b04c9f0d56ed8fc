"""Conditional orders on Binance USDⓈ-M's Algo Service (the December 2025 migration).

STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT and TRAILING_STOP_MARKET no longer exist on
``/fapi/v1/order`` (-4120 there); they rest here, outside the matching engine, invisible to
``openOrders`` and untouched by ``allOpenOrders``. When the working price crosses the trigger
they become a regular order (MARKET for the *_MARKET types, LIMIT at ``price`` otherwise) in
``book.Account`` and execute: a resting STOP_MARKET can re-open a position after a flatten
that did not cancel it. That is the point of simulating them.

Trigger rules (Binance's): STOP/STOP_MARKET trigger a BUY when price >= triggerPrice and a SELL
when price <= triggerPrice; TAKE_PROFIT/TAKE_PROFIT_MARKET the other way round; a trailing stop
activates at ``activatePrice`` (or at once) and triggers when the price retraces
``callbackRate`` % from its best since. An order that would trigger at once is refused (-2021).
``workingType`` picks the price: MARK_PRICE the mark, CONTRACT_PRICE (the default) the last
trade's price.

Statuses: NEW (resting) → TRIGGERING → TRIGGERED (the order is in the matching engine) →
FINISHED (that order filled, expired or was cancelled); CANCELED; REJECTED (the triggered order
was refused, e.g. margin or reduce-only); EXPIRED (closePosition with nothing to close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from trader.sim.book import Account, Order, Position, Trade
from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError
from trader.sim.ids import IdSequence
from trader.sim.records import OrderRequest, _closes

Json = dict[str, object]
# algo order type -> the order type it becomes in the matching engine
CHILD_TYPE = {"STOP_MARKET": "MARKET", "TAKE_PROFIT_MARKET": "MARKET", "STOP": "LIMIT",
              "TAKE_PROFIT": "LIMIT", "TRAILING_STOP_MARKET": "MARKET"}
OPEN_STATES = frozenset({"NEW"})
MAX_ALGO_ORDERS = 10  # exchangeInfo MAX_NUM_ALGO_ORDERS per symbol


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    position_side: str
    time_in_force: str
    quantity: Decimal | None  # None with closePosition
    price: Decimal | None  # limit price of STOP / TAKE_PROFIT
    trigger_price: Decimal | None  # None for a trailing stop
    working_type: str
    close_position: bool
    reduce_only: bool
    price_protect: bool
    activate_price: Decimal | None
    callback_rate: Decimal | None
    create_time: int
    update_time: int
    trigger_time: int = 0
    status: str = "NEW"
    actual_order_id: int | None = None
    reject_reason: str = ""
    activated: bool = False  # trailing stop: past its activation price
    extreme: Decimal | None = None  # trailing stop: best price since activation

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


class AlgoBook:
    """Every algo order of the account; triggers them on price updates."""

    def __init__(self, account: Account, clock: SimClock) -> None:
        self.account = account
        self.clock = clock
        self.ids = IdSequence()
        self.orders: dict[int, AlgoOrder] = {}
        # the user-data stream's ALGO_UPDATE publisher (set by SimState)
        self.publish: Callable[[AlgoOrder, Order | None], None] | None = None
        account.listeners.append(self)

    # ---- reads -------------------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[AlgoOrder]:
        return [a for a in self.orders.values()
                if a.is_open and (symbol is None or a.symbol == symbol)]

    def find(self, algo_id: int | None, client_id: str | None, *, code: int) -> AlgoOrder:
        for a in reversed(self.orders.values()):
            if (a.algo_id == algo_id) if algo_id is not None else (a.client_algo_id == client_id):
                return a
        raise BinanceError(code)

    def child(self, a: AlgoOrder) -> Order | None:
        return self.account.orders.get(a.actual_order_id) if a.actual_order_id else None

    # ---- commands ----------------------------------------------------------------------

    def place(self, a: AlgoOrder) -> AlgoOrder:
        """Accept a parsed algo order after the account-level checks Binance makes."""
        acct = self.account
        a.position_side = acct.check_position_side(OrderRequest(
            a.symbol, a.side, "MARKET", Decimal(0), reduce_only=a.reduce_only,
            position_side=a.position_side))
        if a.quantity is not None:
            acct.check_filters(OrderRequest(a.symbol, a.side, CHILD_TYPE[a.order_type],
                                            a.quantity, reduce_only=a.reduce_only))
        inst = acct.instrument(a.symbol)
        for value in (a.price, a.trigger_price, a.activate_price):
            if value is not None:
                inst.check_price_tick(value)
        if len(self.open_orders(a.symbol)) >= MAX_ALGO_ORDERS:
            raise BinanceError(-4045, "Reach max stop order limit.")
        if any(o.client_algo_id == a.client_algo_id for o in self.open_orders()):
            raise BinanceError(-4116)
        price = self.working_price(a)
        if a.order_type == "TRAILING_STOP_MARKET":
            if a.activate_price is None:
                a.activated, a.extreme = True, price
        elif _crossed(a, price):
            raise BinanceError(-2021, "Order would immediately trigger.")
        self.orders[a.algo_id] = a
        self._publish(a)
        return a

    def working_price(self, a: AlgoOrder) -> Decimal:
        quote = self.account.feed.quotes[a.symbol]
        return quote.mark if a.working_type == "MARK_PRICE" else quote.last_price

    def cancel(self, algo_id: int | None, client_id: str | None) -> AlgoOrder:
        a = self.find(algo_id, client_id, code=-2011)
        if not a.is_open:
            raise BinanceError(-2011)
        self._set(a, "CANCELED")
        return a

    def cancel_all(self, symbol: str) -> list[AlgoOrder]:
        cancelled = self.open_orders(symbol)
        for a in cancelled:
            self._set(a, "CANCELED")
        return cancelled

    def on_prices(self, symbols: Iterable[str]) -> None:
        """Trigger every resting algo order the new working price crosses."""
        wanted = set(symbols)
        for a in [a for a in self.open_orders() if a.symbol in wanted]:
            if a.is_open and _crossed(a, self.working_price(a)):
                self._trigger(a)

    # ---- AccountListener: a triggered order finishing finishes its algo order -----------

    def on_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        if order.is_open or order.orig_type is None:
            return
        for a in self.orders.values():
            if a.actual_order_id == order.order_id and a.status == "TRIGGERED":
                self._set(a, "FINISHED")

    def on_account(self, reason: str, positions: list[Position]) -> None:
        pass

    # ---- internals ---------------------------------------------------------------------

    def _child_request(self, a: AlgoOrder, quantity: Decimal) -> OrderRequest:
        child = CHILD_TYPE[a.order_type]
        reduce = (a.reduce_only or a.close_position) and not self.account.dual_side
        return OrderRequest(
            symbol=a.symbol, side=a.side, type=child, quantity=quantity,
            price=a.price if child == "LIMIT" else None,
            time_in_force=a.time_in_force if child == "LIMIT" else None,
            reduce_only=reduce, position_side=a.position_side,
            client_order_id=a.client_algo_id, orig_type=a.order_type)

    def _trigger(self, a: AlgoOrder) -> None:
        a.trigger_time = self.clock.now_ms()
        self._set(a, "TRIGGERING")
        quantity = a.quantity
        if a.close_position:
            pos = self.account.position(a.symbol, a.position_side)
            quantity = abs(pos.amt) if _closes(pos, a.side) else Decimal(0)
            if not quantity:
                self._set(a, "EXPIRED")
                return
        assert quantity is not None
        try:
            order = self.account.place(self._child_request(a, quantity))
        except BinanceError as err:
            a.reject_reason = err.msg
            self._set(a, "REJECTED")
            return
        a.actual_order_id = order.order_id
        self._set(a, "TRIGGERED")
        if not order.is_open:
            self._set(a, "FINISHED")

    def _set(self, a: AlgoOrder, status: str) -> None:
        a.status = status
        a.update_time = self.clock.now_ms()
        self._publish(a)

    def _publish(self, a: AlgoOrder) -> None:
        if self.publish is not None:
            self.publish(a, self.child(a))


def _crossed(a: AlgoOrder, price: Decimal) -> bool:
    buy = a.side == "BUY"
    if a.order_type in ("STOP", "STOP_MARKET"):
        assert a.trigger_price is not None
        return price >= a.trigger_price if buy else price <= a.trigger_price
    if a.order_type in ("TAKE_PROFIT", "TAKE_PROFIT_MARKET"):
        assert a.trigger_price is not None
        return price <= a.trigger_price if buy else price >= a.trigger_price
    return _trailing(a, price, buy)


def _trailing(a: AlgoOrder, price: Decimal, buy: bool) -> bool:
    if not a.activated:
        assert a.activate_price is not None
        if not (price <= a.activate_price if buy else price >= a.activate_price):
            return False
        a.activated, a.extreme = True, price
    assert a.extreme is not None and a.callback_rate is not None
    a.extreme = min(a.extreme, price) if buy else max(a.extreme, price)
    rate = a.callback_rate / 100
    return price >= a.extreme * (1 + rate) if buy else price <= a.extreme * (1 - rate)
