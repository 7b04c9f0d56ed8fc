"""One simulated USDⓈ-M futures account: orders, matching, positions, fees, margin.

Deliberate simplifications (documented so nobody mistakes them for Binance behaviour):
liquidity is infinite at the best price (no slippage beyond the spread) unless a symbol is made
*thin* (``liquidity``): then each crossing order finds only that quantity at the touch and the
next level lies beyond the PERCENT_PRICE band, so a larger MARKET order is refused by price
protection (-4131) and a crossing limit order fills partially (IOC: the rest expires),
there is no liquidation and no funding, margin is cross only (``marginType`` is recorded and
reported but computes the same way), and only LIMIT and MARKET orders exist on
``/fapi/v1/order`` (conditional orders live on Binance's algo endpoints: ``algo.py``, which
places its triggered orders here). A symbol's lot filters can be changed live (``filters``,
``/_sim/filters``); order and trade ids come from ``ids.py`` and never repeat across runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError, not_required
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
MAINT_MARGIN_RATE = D("0.004")


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
    liquidity: dict[str, Decimal] = field(default_factory=dict)  # thin books: qty at the touch
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

    def maint_margin(self) -> Decimal:
        return sum((abs(p.amt) * self.mark(p.symbol) * MAINT_MARGIN_RATE
                    for p in self.open_positions()), D(0))

    def available(self) -> Decimal:
        return self.wallet + self.total_unrealized() - self.initial_margin()

    def liquidation_price(self, p: Position) -> Decimal:
        """A single-position cross estimate: where wallet + PnL hits maintenance margin."""
        if not p.amt:
            return D(0)
        qty = abs(p.amt)
        if p.amt > 0:
            price = (p.entry * qty - self.wallet) / (qty * (1 - MAINT_MARGIN_RATE))
        else:
            price = (p.entry * qty + self.wallet) / (qty * (1 + MAINT_MARGIN_RATE))
        return max(price, D(0))

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
        if req.type == "MARKET" and not (
                quote.mark * inst.multiplier_down <= touch <= quote.mark * inst.multiplier_up):
            raise BinanceError(-4131)
        thin = self.liquidity.get(inst.symbol)
        if req.type == "MARKET" and thin is not None and req.quantity > thin:
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

        now = self.clock.now_ms()
        order_id = self.order_ids.next()
        order = Order(
            order_id=order_id, client_order_id=req.client_order_id or f"sim{order_id}",
            symbol=inst.symbol, side=req.side, type=req.type,
            time_in_force=req.time_in_force or "GTC", qty=req.quantity,
            price=req.price if req.type == "LIMIT" and req.price is not None else D(0),
            reduce_only=req.reduce_only, position_side=pos_side, time=now, update_time=now,
            orig_type=req.orig_type)
        self.orders[order.order_id] = order
        self._notify_order(order, None, "NEW")
        if crosses and thin is not None and req.time_in_force == "FOK" and req.quantity > thin:
            self._finish(order, "EXPIRED")  # fill-or-kill cannot fill in full
        elif crosses:
            self._fill(order, touch, maker=False, limit=thin)
            if order.is_open and req.time_in_force == "IOC":
                self._finish(order, "EXPIRED")  # the part the thin book could not fill
        elif req.time_in_force in ("IOC", "FOK"):
            self._finish(order, "EXPIRED")
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
            self._fill(order, touch, maker=False, limit=self.liquidity.get(order.symbol))
        return order

    def on_prices(self, symbols: Iterable[str]) -> None:
        """Fill resting limit orders the new quotes cross, as maker at the limit price."""
        wanted = set(symbols)
        for order in [o for o in self.open_orders() if o.symbol in wanted]:
            quote = self.feed.quotes[order.symbol]
            if (order.side == "BUY" and quote.ask <= order.price) or (
                    order.side == "SELL" and quote.bid >= order.price):
                self._fill(order, order.price, maker=True,
                           limit=self.liquidity.get(order.symbol))

    def set_liquidity(self, symbol: str, qty: Decimal | None) -> None:
        """Make a book thin (``qty`` at the touch per order) or deep again (None)."""
        sym = instrument(symbol).symbol
        if qty is None:
            self.liquidity.pop(sym, None)
        elif qty <= 0:
            raise BinanceError(-1102, "liquidity must be > 0")
        else:
            self.liquidity[sym] = qty

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
        return self._check_position_side(req)

    def _check_position_side(self, req: OrderRequest) -> str:
        ps = (req.position_side or "BOTH").upper()
        if self.dual_side:
            if ps not in ("LONG", "SHORT"):
                raise BinanceError(-4061)
            if req.reduce_only:
                raise not_required("reduceOnly")
            return ps
        if ps != "BOTH":
            raise BinanceError(-4061)
        return ps

    def check_filters(self, req: OrderRequest) -> None:
        """Binance's order filters for a request (also used by algo orders at placement)."""
        self._check_filters(self.instrument(req.symbol), req)

    def _check_filters(self, inst: Instrument, req: OrderRequest) -> None:
        if req.quantity <= 0:
            raise BinanceError(-4003)
        if _decimals(req.quantity) > inst.qty_precision:
            raise BinanceError(-1111)
        if req.quantity % inst.step:
            raise BinanceError(-4023)
        if req.quantity < inst.min_qty:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        max_qty = inst.market_max_qty if req.type == "MARKET" else inst.max_qty
        if req.quantity > max_qty:
            raise BinanceError(-4005)
        mark = self.mark(inst.symbol)
        if req.price is not None:
            if _decimals(req.price) > inst.price_precision:
                raise BinanceError(-1111)
            if req.price < inst.min_price:
                raise BinanceError(-4013, "Price less than min price.")
            if req.price % inst.tick:
                raise BinanceError(-4014)
            if req.side == "BUY" and req.price > mark * inst.multiplier_up:
                raise BinanceError(-4016, "Limit price can't be higher than "
                                   f"{inst.fmt_price(mark * inst.multiplier_up)}.")
            if req.side == "SELL" and req.price < mark * inst.multiplier_down:
                raise BinanceError(-4024, "Limit price can't be lower than "
                                   f"{inst.fmt_price(mark * inst.multiplier_down)}.")
        notional = req.quantity * (req.price if req.price is not None else mark)
        if not req.reduce_only and notional < inst.min_notional:
            raise BinanceError(-4164, f"Order's notional must be no smaller than "
                                      f"{inst.min_notional} (unless you choose reduce only).")

    def _fill(self, order: Order, price: Decimal, *, maker: bool,
              limit: Decimal | None = None) -> None:
        pos = self.position(order.symbol, order.position_side)
        qty = order.remaining if limit is None else min(order.remaining, limit)
        capped = False
        if order.reduce_only or _closes(pos, order.side) and pos.side != "BOTH":
            # Reduce-only and hedge-mode closes never flip or grow the position; the
            # position may have shrunk since the order was accepted.
            allowed = min(qty, abs(pos.amt)) if _closes(pos, order.side) else D(0)
            qty, capped = allowed, allowed < qty
            if qty == 0:
                self._finish(order, "EXPIRED")
                return
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
        else:  # a thin book leaves the rest working; a capped reduce-only close expires it
            order.status = "EXPIRED" if capped else "PARTIALLY_FILLED"
        trade = Trade(self.trade_ids.next(order.symbol), order.order_id, order.symbol,
                      order.side, order.position_side, price, qty, fee, realized, maker, now)
        self.trades.append(trade)
        for kind, amount in (("REALIZED_PNL", realized), ("COMMISSION", -fee)):
            if amount:
                self.income.append(Income(self.income_ids.next(), order.symbol, kind, amount,
                                          now, trade.trade_id))
        self.feed.record_trade(order.symbol, qty, price)
        self._notify_account("ORDER", [pos])
        self._notify_order(order, trade, "TRADE")

    def _finish(self, order: Order, status: str) -> None:
        order.status = status
        order.update_time = self.clock.now_ms()
        self._notify_order(order, None, "CANCELED" if status == "CANCELED" else "EXPIRED")

    def _notify_order(self, order: Order, trade: Trade | None, exec_type: str) -> None:
        for listener in self.listeners:
            listener.on_order(order, trade, exec_type)

    def _notify_account(self, reason: str, positions: list[Position]) -> None:
        for listener in self.listeners:
            listener.on_account(reason, positions)
