"""One simulated USDⓈ-M futures account: orders, matching, positions, fees, margin.

A crossing order walks the book (``depth.py``: finite levels from the liquidity profile, eaten
by the account and refilled over market time): a MARKET order fills at several prices, an IOC
beyond the ladder fills partially and expires, a FOK that cannot fill in full expires. A MARKET
order that cannot fill within the PERCENT_PRICE band is refused (-4131) like Binance's price
protection. Resting limit orders fill as maker at their price when the quotes cross them.
Funding and liquidation live in ``funding.py`` and ``liquidation.py`` (they act on this
account); maintenance margin comes from the leverage brackets (``margin.py``). Margin is cross
only (``marginType`` is recorded and reported but computes the same way), and only LIMIT and
MARKET orders exist on ``/fapi/v1/order`` (conditional orders live on Binance's algo
endpoints: ``algo.py``, which places its triggered orders here). A symbol's lot filters can be
changed live (``filters``, ``/_sim/filters``); order and trade ids come from ``ids.py`` and
never repeat across runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.sim import checks, depth, margin
from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError
from trader.sim.ids import IdSequence, PerSymbolIds
from trader.sim.market import Instrument, PriceFeed, instrument
from trader.sim.records import (  # noqa: F401  (re-exported: the records' old home)
    FINAL_STATES,
    AccountListener,
    D,
    Income,
    Order,
    OrderRequest,
    Position,
    Trade,
    _closes,
    _decimals,
)

TAKER_FEE = D("0.0004")
MAKER_FEE = D("0.0002")
MAINT_MARGIN_RATE = margin.BRACKETS[0].mmr  # the first bracket's (kept for old importers)


@dataclass
class Account:
    feed: PriceFeed
    clock: SimClock
    wallet: Decimal = D(10000)
    default_leverage: int = 20
    dual_side: bool = False
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    listeners: list[AccountListener] = field(default_factory=list)
    wallet_update_time: int = 0
    filters: dict[str, Instrument] = field(default_factory=dict)  # live filter changes
    order_ids: IdSequence = field(default_factory=IdSequence)
    trade_ids: PerSymbolIds = field(default_factory=PerSymbolIds)
    income: list[Income] = field(default_factory=list)
    income_ids: IdSequence = field(default_factory=IdSequence)

    # ---- reads -------------------------------------------------------------------------

    def instrument(self, symbol: str | None) -> Instrument:
        """The symbol's instrument with any live filter change applied (validation, exchangeInfo)."""
        inst = instrument(symbol)
        return self.filters.get(inst.symbol, inst)

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.default_leverage)

    def position(self, symbol: str, side: str) -> Position:
        return self.positions.setdefault((symbol, side), Position(symbol, side))

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.amt != 0]

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values()
                if o.is_open and (symbol is None or o.symbol == symbol)]

    def mark(self, symbol: str) -> Decimal:
        return self.feed.quotes[symbol].mark

    def unrealized(self, p: Position) -> Decimal:
        return (self.mark(p.symbol) - p.entry) * p.amt if p.amt else D(0)

    def position_margin(self, p: Position) -> Decimal:
        return abs(p.amt) * self.mark(p.symbol) / self.leverage_of(p.symbol)

    def order_margin(self, o: Order) -> Decimal:
        return D(0) if o.reduce_only else o.remaining * o.price / self.leverage_of(o.symbol)

    def total_unrealized(self) -> Decimal:
        return sum((self.unrealized(p) for p in self.open_positions()), D(0))

    def initial_margin(self) -> Decimal:
        return (sum((self.position_margin(p) for p in self.open_positions()), D(0))
                + sum((self.order_margin(o) for o in self.open_orders()), D(0)))

    def position_maint(self, p: Position) -> Decimal:
        return margin.maint_margin(p.amt * self.mark(p.symbol))

    def maint_margin(self) -> Decimal:
        return sum((self.position_maint(p) for p in self.open_positions()), D(0))

    def margin_balance(self) -> Decimal:
        return self.wallet + self.total_unrealized()

    def available(self) -> Decimal:
        return self.wallet + self.total_unrealized() - self.initial_margin()

    def liquidation_price(self, p: Position) -> Decimal:
        """A single-position cross estimate: where wallet + PnL hits maintenance margin."""
        return margin.liquidation_price(p.amt, p.entry, self.wallet,
                                        p.amt * self.mark(p.symbol))

    def find_order(self, symbol: str, order_id: int | None, client_id: str | None,
                   *, code: int) -> Order:
        matches = (o for o in reversed(self.orders.values()) if o.symbol == symbol and (
            o.order_id == order_id if order_id is not None else o.client_order_id == client_id))
        found = next(matches, None)
        if found is None:
            raise BinanceError(code)
        return found

    # ---- commands ----------------------------------------------------------------------

    def place(self, req: OrderRequest) -> Order:
        inst = self.instrument(req.symbol)
        pos_side = self._check_position_side(req)
        self._check_filters(inst, req)
        if req.client_order_id and any(o.client_order_id == req.client_order_id
                                       for o in self.open_orders()):
            raise BinanceError(-4116)
        pos = self.position(inst.symbol, pos_side)
        closing = _closes(pos, req.side)
        if req.reduce_only and not closing:
            raise BinanceError(-2022)
        if pos_side != "BOTH" and closing and req.quantity > abs(pos.amt):
            raise BinanceError(-2022)  # hedge mode cannot close more than the position
        quote = self.feed.quotes[inst.symbol]
        touch = quote.ask if req.side == "BUY" else quote.bid
        crosses = req.type == "MARKET" or (
            req.price is not None and (req.price >= touch if req.side == "BUY"
                                       else req.price <= touch))
        band = quote.mark * (inst.multiplier_up if req.side == "BUY" else inst.multiplier_down)
        if req.type == "MARKET" and not (
                quote.mark * inst.multiplier_down <= touch <= quote.mark * inst.multiplier_up):
            raise BinanceError(-4131)
        if req.type == "MARKET" and _total(quote.levels(req.side, req.quantity,
                                                        band)) < req.quantity:
            raise BinanceError(-4131)  # it would have to trade beyond the band
        if crosses and req.time_in_force == "GTX":
            raise BinanceError(-5022)
        increase = req.quantity if not closing else max(D(0), req.quantity - abs(pos.amt))
        if pos_side != "BOTH" and closing:
            increase = D(0)  # a hedge-mode close never opens the other way
        if not req.reduce_only and increase > 0:
            cost_price = touch if crosses else (req.price or touch)
            if increase * cost_price / self.leverage_of(inst.symbol) > self.available():
                raise BinanceError(-2019)

        order = self._new_order(req, inst.symbol, pos_side)
        limit = band if req.type == "MARKET" else req.price
        if crosses and req.time_in_force == "FOK" and _total(quote.levels(
                req.side, self._fillable(order), limit)) < req.quantity:
            self._finish(order, "EXPIRED")  # fill-or-kill cannot fill in full
        elif crosses:
            self._take(order, limit)
            if order.is_open and req.time_in_force == "IOC":
                self._finish(order, "EXPIRED")  # the part the book could not fill
        elif req.time_in_force in ("IOC", "FOK"):
            self._finish(order, "EXPIRED")
        return order

    def _new_order(self, req: OrderRequest, symbol: str, pos_side: str,
                   client_id: str | None = None) -> Order:
        now = self.clock.now_ms()
        order_id = self.order_ids.next()
        order = Order(
            order_id=order_id,
            client_order_id=client_id or req.client_order_id or f"sim{order_id}",
            symbol=symbol, side=req.side, type=req.type,
            time_in_force=req.time_in_force or "GTC", qty=req.quantity,
            price=req.price if req.type != "MARKET" and req.price is not None else D(0),
            reduce_only=req.reduce_only, position_side=pos_side, time=now, update_time=now,
            orig_type=req.orig_type)
        self.orders[order.order_id] = order
        self._notify_order(order, None, "NEW")
        return order

    def cancel(self, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        order = self.find_order(instrument(symbol).symbol, order_id, client_id, code=-2011)
        if not order.is_open:
            raise BinanceError(-2011)
        self._finish(order, "CANCELED")
        return order

    def cancel_all(self, symbol: str) -> list[Order]:
        orders = self.open_orders(instrument(symbol).symbol)
        for order in orders:
            self._finish(order, "CANCELED")
        return orders

    def modify(self, symbol: str, order_id: int | None, client_id: str | None, side: str,
               quantity: Decimal, price: Decimal) -> Order:
        """``PUT /fapi/v1/order``: new price and quantity for an open LIMIT order. A change the
        filters refuse leaves the order as it was; a quantity at or below what has filled, or a
        GTX price that would cross, cancels it; a crossing price fills as taker at once."""
        order = self.find_order(instrument(symbol).symbol, order_id, client_id, code=-2013)
        if not order.is_open:
            raise BinanceError(-2013)
        if side != order.side:
            raise BinanceError(-1102, "Mandatory parameter 'side' was not sent, was "
                                      "empty/null, or malformed.")
        if quantity == order.qty and price == order.price:
            raise BinanceError(-5027)
        self._check_filters(self.instrument(order.symbol), OrderRequest(
            order.symbol, order.side, "LIMIT", quantity, price, order.time_in_force,
            order.reduce_only, order.position_side))
        if quantity <= order.executed:
            self._finish(order, "CANCELED")
            return order
        quote = self.feed.quotes[order.symbol]
        touch = quote.ask if order.side == "BUY" else quote.bid
        crosses = price >= touch if order.side == "BUY" else price <= touch
        if crosses and order.time_in_force == "GTX":
            self._finish(order, "EXPIRED")
            return order
        order.qty, order.price = quantity, price
        order.update_time = self.clock.now_ms()
        self._notify_order(order, None, "AMENDMENT")
        if crosses:
            self._take(order, price)
        return order

    def on_prices(self, symbols: Iterable[str]) -> None:
        """Fill resting limit orders the new quotes cross, as maker at the limit price (a thin
        book fills only its quantity at the touch per order)."""
        wanted = set(symbols)
        for order in [o for o in self.open_orders() if o.symbol in wanted]:
            quote = self.feed.quotes[order.symbol]
            if (order.side == "BUY" and quote.ask <= order.price) or (
                    order.side == "SELL" and quote.bid >= order.price):
                qty = self._fillable(order)
                if not quote.ladder.eaten:
                    qty = min(qty, quote.ladder.top)
                if qty > 0:
                    self._fill(order, order.price, qty, maker=True)
                else:
                    self._finish(order, "EXPIRED")

    def set_liquidity(self, symbol: str, qty: Decimal | None) -> None:
        """Make a book thin (``qty`` at the touch per order) or the run's profile again (None)."""
        sym = instrument(symbol).symbol
        if qty is not None and qty <= 0:
            raise BinanceError(-1102, "liquidity must be > 0")
        quote = self.feed.quotes[sym]
        quote.ladder = (depth.thin(qty) if qty is not None
                        else depth.profile(self.feed.profile)[sym])

    def set_leverage(self, symbol: str, leverage: int) -> None:
        if not 1 <= leverage <= 125:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        self.leverage[instrument(symbol).symbol] = leverage

    def set_margin_type(self, symbol: str, margin_type: str) -> None:
        sym = instrument(symbol).symbol
        wanted = margin_type.lower()
        if wanted not in ("isolated", "crossed", "cross"):
            raise BinanceError(-1102, "Mandatory parameter 'marginType' was not sent, was "
                                      "empty/null, or malformed.")
        wanted = "isolated" if wanted == "isolated" else "cross"
        if self.margin_type.get(sym, "cross") == wanted:
            raise BinanceError(-4046)
        if self.open_orders(sym):
            raise BinanceError(-4047)
        if any(p.amt for p in self.positions.values() if p.symbol == sym):
            raise BinanceError(-4048)
        self.margin_type[sym] = wanted

    def set_dual_side(self, dual: bool) -> None:
        if dual == self.dual_side:
            raise BinanceError(-4059)
        if self.open_orders():
            raise BinanceError(-4067)
        if self.open_positions():
            raise BinanceError(-4068)
        self.dual_side = dual

    def seed_position(self, symbol: str, amount: Decimal, entry: Decimal | None,
                      side: str = "BOTH") -> Position:
        """Put a position on the books directly (test setup), no order, no fee."""
        sym = instrument(symbol).symbol
        pos = self.position(sym, side)
        pos.amt = amount
        pos.entry = entry if entry is not None else self.mark(sym) if amount else D(0)
        pos.update_time = self.clock.now_ms()
        self._notify_account("ORDER", [pos])
        return pos

    # ---- internals ---------------------------------------------------------------------

    def check_position_side(self, req: OrderRequest) -> str:
        """The position side an order goes to, or Binance's refusal (-4061, -1106)."""
        return checks.position_side(req, self.dual_side)

    _check_position_side = check_position_side

    def check_filters(self, req: OrderRequest) -> None:
        """Binance's order filters for a request (also used by algo orders at placement)."""
        self._check_filters(self.instrument(req.symbol), req)

    def _check_filters(self, inst: Instrument, req: OrderRequest) -> None:
        checks.filters(inst, req, self.mark(inst.symbol))

    def _reduces_only(self, order: Order) -> bool:
        """Reduce-only orders and hedge-mode closes never flip or grow the position."""
        pos = self.position(order.symbol, order.position_side)
        return order.reduce_only or (_closes(pos, order.side) and pos.side != "BOTH")

    def _fillable(self, order: Order) -> Decimal:
        """What the order may still fill: a reduce-only order no more than the position
        (which may have shrunk since the order was accepted)."""
        if not self._reduces_only(order):
            return order.remaining
        pos = self.position(order.symbol, order.position_side)
        return min(order.remaining, abs(pos.amt)) if _closes(pos, order.side) else D(0)

    def _take(self, order: Order, limit: Decimal | None) -> None:
        """Match a crossing order as taker against the book, level by level."""
        want = self._fillable(order)
        if want <= 0:
            self._finish(order, "EXPIRED")
            return
        for price, qty in self.feed.quotes[order.symbol].take(order.side, want, limit):
            self._fill(order, price, qty, maker=False)

    def _fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool,
              exec_type: str = "TRADE") -> None:
        pos = self.position(order.symbol, order.position_side)
        reducing = self._reduces_only(order)
        signed = qty if order.side == "BUY" else -qty
        realized = D(0)
        if pos.amt == 0 or (pos.amt > 0) == (signed > 0):
            total = abs(pos.amt) + qty
            pos.entry = (abs(pos.amt) * pos.entry + qty * price) / total
        else:
            closed = min(qty, abs(pos.amt))
            realized = closed * (price - pos.entry) * (1 if pos.amt > 0 else -1)
            if qty > abs(pos.amt):
                pos.entry = price  # flipped: the remainder opens at the fill price
        pos.amt += signed
        if pos.amt == 0:
            pos.entry = D(0)
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        self.wallet += realized - fee
        now = self.clock.now_ms()
        pos.update_time = self.wallet_update_time = now
        order.executed += qty
        order.cum_quote += qty * price
        order.update_time = now
        if order.remaining == 0:
            order.status = "FILLED"
        else:  # the book leaves the rest working; a reduce-only close with nothing left expires
            order.status = "EXPIRED" if reducing and pos.amt == 0 else "PARTIALLY_FILLED"
        trade = Trade(self.trade_ids.next(order.symbol), order.order_id, order.symbol,
                      order.side, order.position_side, price, qty, fee, realized, maker, now)
        self.trades.append(trade)
        for kind, amount in (("REALIZED_PNL", realized), ("COMMISSION", -fee)):
            if amount:
                self.income.append(Income(self.income_ids.next(), order.symbol, kind, amount,
                                          now, trade.trade_id))
        self.feed.record_trade(order.symbol, qty, price)
        self._notify_account("ORDER", [pos])
        self._notify_order(order, trade, exec_type)

    def _finish(self, order: Order, status: str) -> None:
        order.status = status
        order.update_time = self.clock.now_ms()
        self._notify_order(order, None, "CANCELED" if status == "CANCELED" else "EXPIRED")

    def _notify_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        for listener in self.listeners:
            listener.on_order(order, trade, exec_type)

    def notify_account(self, reason: str, positions: list[Position]) -> None:
        self._notify_account(reason, positions)

    def _notify_account(self, reason: str, positions: list[Position]) -> None:
        for listener in self.listeners:
            listener.on_account(reason, positions)


def _total(levels: list[tuple[Decimal, Decimal]]) -> Decimal:
    return sum((q for _, q in levels), D(0))
