"""Liquidation: when the margin balance falls to the maintenance margin, the exchange closes.

Checked after every market tick, price change and funding settlement (cross margin, the
account as a whole). At a margin ratio (maintenance / margin balance) of ``call_ratio`` the
user stream gets one ``MARGIN_CALL`` (again only after the ratio has dropped below
``rearm_ratio``). At 100 % Binance's sequence:

1. every open order expires (ORDER_TRADE_UPDATE ``x=EXPIRED``: "expired when the account was
   liquidated");
2. per position a liquidation order (client id ``autoclose-<time>``, type LIQUIDATION, IOC,
   reduce-only) takes the book like a market order with no price band (``x=TRADE`` per level);
   what the book cannot absorb the insurance fund takes at the bankruptcy price
   (``x=CALCULATED``, "liquidation execution");
3. the liquidation clearance fee (``liquidationFee`` of exchangeInfo, 1.25 % of the closed
   notional, at most what is left of the wallet) is an INSURANCE_CLEAR income row, and a wallet
   left negative is made whole by the insurance fund (another INSURANCE_CLEAR row), pushed as
   ``ACCOUNT_UPDATE`` with reason INSURANCE_CLEAR;
4. each liquidation order is published on ``<symbol>@forceOrder`` / ``!forceOrder@arr``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from trader.sim import events, margin
from trader.sim.book import Account
from trader.sim.clock import SimClock
from trader.sim.records import Income, Order, OrderRequest, Position

D = Decimal
Publish = Callable[[dict[str, object]], None]


class Liquidator:
    def __init__(self, account: Account, clock: SimClock, *, call_ratio: str = "0.8",
                 rearm_ratio: str = "0.7") -> None:
        self.account = account
        self.clock = clock
        self.call_ratio = D(call_ratio)
        self.rearm_ratio = D(rearm_ratio)
        self.publish_user: Publish = lambda payload: None
        self.publish_force: Callable[[str, dict[str, object]], None] = lambda sym, p: None
        self.called = False
        self.liquidations = 0

    def check(self) -> bool:
        """Margin call or liquidate as the account's margin ratio says; True if liquidated."""
        acct = self.account
        maint = acct.maint_margin()
        if not maint:
            self.called = False
            return False
        balance = acct.margin_balance()
        if balance <= maint:
            self.liquidate()
            return True
        ratio = maint / balance
        if ratio >= self.call_ratio and not self.called:
            self.called = True
            self.publish_user(events.margin_call(acct, acct.open_positions(),
                                                 self.clock.now_ms()))
        elif ratio < self.rearm_ratio:
            self.called = False
        return False

    def liquidate(self) -> None:
        acct = self.account
        now = self.clock.now_ms()
        for order in acct.open_orders():
            acct._finish(order, "EXPIRED")
        symbol = ""
        for n, pos in enumerate(acct.open_positions()):
            symbol = pos.symbol
            closed = self._close(pos, f"autoclose-{now}{n:03d}")
            self._charge(symbol, -min(closed * margin.LIQUIDATION_FEE, max(acct.wallet, D(0))),
                         now)
        self._charge(symbol, max(D(0), -acct.wallet), now)  # the insurance fund covers it
        acct.wallet_update_time = now
        acct.notify_account("INSURANCE_CLEAR", [])
        self.called = False
        self.liquidations += 1

    def _charge(self, symbol: str, amount: Decimal, now: int) -> None:
        if amount:
            self.account.wallet += amount
            self.account.income.append(Income(self.account.income_ids.next(), symbol,
                                              "INSURANCE_CLEAR", amount, now))

    def _close(self, pos: Position, client_id: str) -> Decimal:
        """One liquidation order for the position; the notional it closed."""
        acct = self.account
        qty = abs(pos.amt)
        bankrupt = self._bankruptcy_price(pos)
        side = "SELL" if pos.amt > 0 else "BUY"
        req = OrderRequest(pos.symbol, side, "LIQUIDATION", qty, bankrupt, "IOC",
                           reduce_only=True, position_side=pos.side)
        order = acct._new_order(req, pos.symbol, pos.side, client_id)
        acct._take(order, None)  # no price band: it takes whatever the book holds
        if order.is_open and order.remaining:
            acct._fill(order, bankrupt, order.remaining, maker=False, exec_type="CALCULATED")
        self.publish_force(pos.symbol, events.force_order(order, bankrupt, self.clock.now_ms()))
        return order.cum_quote

    def _bankruptcy_price(self, pos: Position) -> Decimal:
        """Where this position alone would take the wallet to zero (on the tick grid)."""
        inst = self.account.instrument(pos.symbol)
        per_unit = self.account.wallet / abs(pos.amt)
        price = pos.entry - per_unit if pos.amt > 0 else pos.entry + per_unit
        return inst.round_price(max(price, inst.tick), up=pos.amt < 0)


def liquidation_orders(orders: list[Order]) -> list[Order]:
    """The account's liquidation orders (their client ids start with ``autoclose-``)."""
    return [o for o in orders if o.client_order_id.startswith("autoclose-")]
