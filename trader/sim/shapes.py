"""The JSON shapes Binance USDⓈ-M uses, rendered from the simulator's state.

Field names and string/number types follow the Binance API reference (and the sample
responses quoted in ccxt's binance.py); ccxt parses these, so a renamed field is a bug.
"""

from __future__ import annotations

from decimal import Decimal

from trader.sim.book import Account, Income, Order, Position, Trade
from trader.sim.market import INSTRUMENTS, Quote

Json = dict[str, object]


def _f(value: Decimal, places: int = 8) -> str:
    return f"{value:.{places}f}"


def order(o: Order, *, with_time: bool = True) -> Json:
    inst = INSTRUMENTS[o.symbol]
    out: Json = {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": inst.fmt_price(o.price) if o.price else "0",
        "avgPrice": _f(o.avg_price, inst.price_precision + 3) if o.executed else "0.00",
        "origQty": inst.fmt_qty(o.qty),
        "executedQty": inst.fmt_qty(o.executed),
        "cumQty": inst.fmt_qty(o.executed),
        "cumQuote": _f(o.cum_quote, inst.price_precision + inst.qty_precision),
        "timeInForce": o.time_in_force,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": o.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.orig_type or o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.update_time,
    }
    if with_time:
        out["time"] = o.time
    return out


def order_ack(o: Order) -> Json:
    """A new order's reply under ``newOrderRespType=ACK`` (USDⓈ-M's default): the order as it
    was accepted, NEW with nothing executed, whatever happened to it next (the outcome comes on
    the user stream or from a query). Binance answers the same fields as RESULT."""
    inst = INSTRUMENTS[o.symbol]
    zero_qty = inst.fmt_qty(Decimal(0))
    return order(o, with_time=False) | {
        "status": "NEW", "avgPrice": "0.00", "executedQty": zero_qty, "cumQty": zero_qty,
        "cumQuote": _f(Decimal(0), inst.price_precision + inst.qty_precision),
        "updateTime": o.time}


def income(i: Income) -> Json:
    return {"symbol": i.symbol, "incomeType": i.income_type, "income": _f(i.amount),
            "asset": "USDT", "info": i.income_type, "time": i.time, "tranId": i.tran_id,
            "tradeId": str(i.trade_id) if i.trade_id is not None else ""}


def trade(t: Trade) -> Json:
    inst = INSTRUMENTS[t.symbol]
    return {
        "buyer": t.side == "BUY",
        "commission": _f(t.commission),
        "commissionAsset": "USDT",
        "id": t.trade_id,
        "maker": t.maker,
        "orderId": t.order_id,
        "price": inst.fmt_price(t.price),
        "qty": inst.fmt_qty(t.qty),
        "quoteQty": _f(t.price * t.qty, inst.price_precision + inst.qty_precision),
        "realizedPnl": _f(t.realized_pnl),
        "side": t.side,
        "positionSide": t.position_side,
        "symbol": t.symbol,
        "time": t.time,
    }


def position_risk(acct: Account, p: Position, *, v2: bool) -> Json:
    """A ``positionRisk`` row; v3 drops leverage/marginType and adds margin fields."""
    inst = INSTRUMENTS[p.symbol]
    mark = acct.mark(p.symbol)
    notional = p.amt * mark
    out: Json = {
        "symbol": p.symbol,
        "positionSide": p.side,
        "positionAmt": inst.fmt_qty(p.amt),
        "entryPrice": _f(p.entry, inst.price_precision + 5) if p.amt else "0.0",
        "breakEvenPrice": _f(p.entry, inst.price_precision + 5) if p.amt else "0.0",
        "markPrice": _f(mark),
        "unRealizedProfit": _f(acct.unrealized(p)),
        "liquidationPrice": _f(acct.liquidation_price(p)) if p.amt else "0",
        "isolatedMargin": "0.00000000",
        "notional": _f(notional),
        "isolatedWallet": "0",
        "updateTime": p.update_time,
    }
    if v2:
        out.update({
            "marginType": acct.margin_type.get(p.symbol, "cross"),
            "isAutoAddMargin": "false",
            "leverage": str(acct.leverage_of(p.symbol)),
            "maxNotionalValue": "20000000",
        })
    else:
        margin = acct.position_margin(p)
        out.update({
            "marginAsset": "USDT",
            "initialMargin": _f(margin),
            "maintMargin": _f(acct.position_maint(p)),
            "positionInitialMargin": _f(margin),
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
        })
    return out


def asset(acct: Account) -> Json:
    upnl = acct.total_unrealized()
    available = acct.available()
    im = acct.initial_margin()
    order_im = sum((acct.order_margin(o) for o in acct.open_orders()), Decimal(0))
    return {
        "asset": "USDT",
        "walletBalance": _f(acct.wallet),
        "unrealizedProfit": _f(upnl),
        "marginBalance": _f(acct.wallet + upnl),
        "maintMargin": _f(acct.maint_margin()),
        "initialMargin": _f(im),
        "positionInitialMargin": _f(im - order_im),
        "openOrderInitialMargin": _f(order_im),
        "crossWalletBalance": _f(acct.wallet),
        "crossUnPnl": _f(upnl),
        "availableBalance": _f(available),
        "maxWithdrawAmount": _f(min(acct.wallet, available)),
        "marginAvailable": True,
        # ccxt skips assets whose updateTime is 0 (never touched); the wallet always is.
        "updateTime": acct.wallet_update_time,
    }


def account(acct: Account, *, v2: bool) -> Json:
    a = asset(acct)
    totals: Json = {
        "totalInitialMargin": a["initialMargin"],
        "totalMaintMargin": a["maintMargin"],
        "totalWalletBalance": a["walletBalance"],
        "totalUnrealizedProfit": a["unrealizedProfit"],
        "totalMarginBalance": a["marginBalance"],
        "totalPositionInitialMargin": a["positionInitialMargin"],
        "totalOpenOrderInitialMargin": a["openOrderInitialMargin"],
        "totalCrossWalletBalance": a["crossWalletBalance"],
        "totalCrossUnPnl": a["crossUnPnl"],
        "availableBalance": a["availableBalance"],
        "maxWithdrawAmount": a["maxWithdrawAmount"],
    }
    if v2:  # v2 lists every symbol (and side), in its own row shape
        rows = [_account_v2_row(acct, p) for p in _all_positions(acct)]
        totals = {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
                  "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False,
                  "tradeGroupId": -1} | totals
        return totals | {"assets": [a], "positions": rows}
    rows = []
    for p in acct.open_positions():  # v3 lists only the positions held
        row = position_risk(acct, p, v2=False)
        rows.append({k: row[k] for k in ("symbol", "positionSide", "positionAmt",
                                         "isolatedMargin", "notional", "isolatedWallet",
                                         "initialMargin", "maintMargin", "updateTime")}
                    | {"unrealizedProfit": row["unRealizedProfit"]})
    return totals | {"assets": [a], "positions": rows}


def _all_positions(acct: Account) -> list[Position]:
    sides = ("LONG", "SHORT") if acct.dual_side else ("BOTH",)
    return [acct.position(sym, side) for sym in INSTRUMENTS for side in sides]


def _account_v2_row(acct: Account, p: Position) -> Json:
    inst = INSTRUMENTS[p.symbol]
    margin = acct.position_margin(p)
    order_im = sum((acct.order_margin(o) for o in acct.open_orders(p.symbol)
                    if o.position_side == p.side), Decimal(0))
    return {
        "symbol": p.symbol,
        "initialMargin": _f(margin + order_im),
        "maintMargin": _f(acct.position_maint(p)),
        "unrealizedProfit": _f(acct.unrealized(p)),
        "positionInitialMargin": _f(margin),
        "openOrderInitialMargin": _f(order_im),
        "leverage": str(acct.leverage_of(p.symbol)),
        "isolated": acct.margin_type.get(p.symbol, "cross") == "isolated",
        "entryPrice": _f(p.entry, inst.price_precision + 5) if p.amt else "0.0",
        "breakEvenPrice": _f(p.entry, inst.price_precision + 5) if p.amt else "0.0",
        "maxNotional": "20000000",
        "bidNotional": "0",
        "askNotional": "0",
        "positionSide": p.side,
        "positionAmt": inst.fmt_qty(p.amt),
        "updateTime": p.update_time,
    }


def balance(acct: Account) -> list[Json]:
    a = asset(acct)
    return [{
        "accountAlias": "SgsR",
        "asset": "USDT",
        "balance": a["walletBalance"],
        "crossWalletBalance": a["crossWalletBalance"],
        "crossUnPnl": a["crossUnPnl"],
        "availableBalance": a["availableBalance"],
        "maxWithdrawAmount": a["maxWithdrawAmount"],
        "marginAvailable": True,
        "updateTime": acct.wallet_update_time,
    }]


# ---- market data ---------------------------------------------------------------------


def premium_index(q: Quote, now: int) -> Json:
    return {
        "symbol": q.inst.symbol,
        "markPrice": _f(q.mark),
        "indexPrice": _f(q.index),
        "estimatedSettlePrice": _f(q.index),
        "lastFundingRate": _f(q.funding_rate),  # Binance: the estimate for the next one
        "interestRate": "0.00010000",
        "nextFundingTime": q.next_funding_ms or (now // 28_800_000 + 1) * 28_800_000,
        "time": q.time_ms,
    }


def ticker_24hr(q: Quote) -> Json:
    inst = q.inst
    change = q.last_price - q.open
    return {
        "symbol": inst.symbol,
        "priceChange": inst.fmt_price(change),
        "priceChangePercent": f"{change / q.open * 100:.3f}",
        "weightedAvgPrice": inst.fmt_price(q.quote_volume / q.volume if q.volume else q.mark),
        "lastPrice": inst.fmt_price(q.last_price),
        "lastQty": inst.fmt_qty(q.last_qty),
        "openPrice": inst.fmt_price(q.open),
        "highPrice": inst.fmt_price(q.high),
        "lowPrice": inst.fmt_price(q.low),
        "volume": inst.fmt_qty(q.volume),
        "quoteVolume": _f(q.quote_volume, 2),
        "openTime": q.time_ms - 86_400_000,
        "closeTime": q.time_ms,
        "firstId": 1,
        "lastId": q.trades,
        "count": q.trades,
    }


def book_ticker(q: Quote) -> Json:
    inst = q.inst
    bids, asks = q.levels("SELL", top=1), q.levels("BUY", top=1)
    return {
        "symbol": inst.symbol,
        "bidPrice": inst.fmt_price(bids[0][0] if bids else q.bid),
        "bidQty": inst.fmt_qty(bids[0][1] if bids else Decimal(0)),
        "askPrice": inst.fmt_price(asks[0][0] if asks else q.ask),
        "askQty": inst.fmt_qty(asks[0][1] if asks else Decimal(0)),
        "time": q.time_ms,
        "lastUpdateId": q.update_id,
    }


def depth(q: Quote, limit: int, now: int) -> Json:
    """The ladder as the account would find it (levels it ate are gone until they refill)."""
    inst = q.inst

    def rows(side: str) -> list[list[str]]:
        return [[inst.fmt_price(p), inst.fmt_qty(size)] for p, size in q.levels(side, top=limit)]

    return {
        "lastUpdateId": q.update_id,
        "E": now,
        "T": q.time_ms,
        "bids": rows("SELL"),
        "asks": rows("BUY"),
    }
