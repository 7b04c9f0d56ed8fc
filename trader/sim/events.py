"""WebSocket payloads: market streams and user-data events, in Binance USDⓈ-M's shapes."""

from __future__ import annotations

from decimal import Decimal

from trader.sim.algo import AlgoOrder
from trader.sim.book import Account, Order, Position, Trade
from trader.sim.candles import Candles
from trader.sim.market import INSTRUMENTS, Quote
from trader.sim.shapes import Json, book_ticker, depth, premium_index, ticker_24hr


def mark_price(q: Quote, now: int) -> Json:
    p = premium_index(q, now)
    return {"e": "markPriceUpdate", "E": now, "s": q.inst.symbol, "p": p["markPrice"],
            "ap": p["markPrice"], "i": p["indexPrice"], "P": p["estimatedSettlePrice"],
            "r": p["lastFundingRate"], "T": p["nextFundingTime"]}


def book(q: Quote, now: int) -> Json:
    b = book_ticker(q)
    return {"e": "bookTicker", "u": q.update_id, "s": q.inst.symbol, "b": b["bidPrice"],
            "B": b["bidQty"], "a": b["askPrice"], "A": b["askQty"], "T": q.time_ms, "E": now}


def ticker(q: Quote, now: int) -> Json:
    t = ticker_24hr(q)
    return {"e": "24hrTicker", "E": now, "s": q.inst.symbol, "p": t["priceChange"],
            "P": t["priceChangePercent"], "w": t["weightedAvgPrice"], "c": t["lastPrice"],
            "Q": t["lastQty"], "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
            "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"], "C": t["closeTime"],
            "F": t["firstId"], "L": t["lastId"], "n": t["count"]}


def mini_ticker(q: Quote, now: int) -> Json:
    t = ticker(q, now)
    return {"e": "24hrMiniTicker"} | {k: t[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}


# kind -> builder, for "<symbol>@<kind>" streams
MARKET_KINDS = {"markPrice": mark_price, "bookTicker": book, "ticker": ticker,
                "miniTicker": mini_ticker}


def partial_depth(q: Quote, levels: int, now: int) -> Json:
    """``<symbol>@depth<levels>[@speed]``: the top ``levels`` of the book, every update."""
    d = depth(q, levels, now)
    return {"e": "depthUpdate", "E": now, "T": q.time_ms, "s": q.inst.symbol,
            "U": q.update_id, "u": q.update_id, "pu": q.update_id - 1,
            "b": d["bids"], "a": d["asks"]}


def kline(candles: Candles, q: Quote, interval: str, now: int) -> Json | None:
    """``<symbol>@kline_<interval>``: the open bar (``x`` false until it closes)."""
    current = candles.current(q.inst.symbol, interval, now)
    if current is None:
        return None
    open_ms, close_ms, bar = current
    inst = q.inst
    return {"e": "kline", "E": now, "s": inst.symbol, "k": {
        "t": open_ms, "T": close_ms, "s": inst.symbol, "i": interval,
        "f": bar.first_trade, "L": bar.last_trade, "o": inst.fmt_price(bar.open),
        "c": inst.fmt_price(bar.close), "h": inst.fmt_price(bar.high),
        "l": inst.fmt_price(bar.low), "v": inst.fmt_qty(bar.volume), "n": bar.trades,
        "x": False, "q": f"{bar.quote_volume:.5f}", "V": inst.fmt_qty(bar.taker_buy),
        "Q": f"{bar.taker_buy_quote:.5f}", "B": "0"}}


def agg_trade(t: Trade, now: int) -> Json:
    """``<symbol>@aggTrade``: one per fill (the sim's only trades are the account's)."""
    inst = INSTRUMENTS[t.symbol]
    qty = inst.fmt_qty(t.qty)
    return {"e": "aggTrade", "E": now, "s": t.symbol, "a": t.trade_id,
            "p": inst.fmt_price(t.price), "q": qty, "nq": qty, "f": t.trade_id,
            "l": t.trade_id, "T": t.time, "m": (t.side == "BUY") == t.maker}


def order_trade_update(acct: Account, o: Order, t: Trade | None, exec_type: str,
                       now: int) -> Json:
    inst = INSTRUMENTS[o.symbol]
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": o.update_time, "o": {
        "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type,
        "f": o.time_in_force, "q": inst.fmt_qty(o.qty),
        "p": inst.fmt_price(o.price) if o.price else "0",
        "ap": f"{o.avg_price:.{inst.price_precision + 3}f}" if o.executed else "0",
        "sp": "0", "x": exec_type, "X": o.status, "i": o.order_id,
        "l": inst.fmt_qty(t.qty) if t else "0", "z": inst.fmt_qty(o.executed),
        "L": inst.fmt_price(t.price) if t else "0", "N": "USDT",
        "n": f"{t.commission:.8f}" if t else "0", "T": o.update_time,
        "t": t.trade_id if t else 0, "b": "0", "a": "0", "m": t.maker if t else False,
        "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.orig_type or o.type, "ps": o.position_side,
        "cp": False, "rp": f"{t.realized_pnl:.8f}" if t else "0", "pP": False, "si": 0,
        "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
    }}


def account_update(acct: Account, reason: str, positions: list[Position], now: int) -> Json:
    rows = []
    for p in positions:
        inst = INSTRUMENTS[p.symbol]
        rows.append({"s": p.symbol, "pa": inst.fmt_qty(p.amt), "ep": f"{p.entry:.8f}",
                     "bep": f"{p.entry:.8f}", "cr": "0", "up": f"{acct.unrealized(p):.8f}",
                     "mt": acct.margin_type.get(p.symbol, "cross"), "iw": "0",
                     "ps": p.side})
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
        "m": reason,
        "B": [{"a": "USDT", "wb": f"{acct.wallet:.8f}", "cw": f"{acct.wallet:.8f}",
               "bc": "0"}],
        "P": rows,
    }}


def algo_update(a: AlgoOrder, child: Order | None, now: int) -> Json:
    """ALGO_UPDATE: an algo order was placed or changed status (ccxt.pro parses it as an
    order whose id is the algoId)."""
    inst = INSTRUMENTS[a.symbol]
    return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": {
        "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.order_type,
        "s": a.symbol, "S": a.side, "ps": a.position_side, "f": a.time_in_force,
        "q": inst.fmt_qty(a.quantity) if a.quantity is not None else "0", "X": a.status,
        "ai": str(a.actual_order_id) if a.actual_order_id else "",
        "ap": (f"{child.avg_price:.{inst.price_precision + 3}f}"
               if child is not None and child.executed else "0.00000"),
        "aq": inst.fmt_qty(child.executed) if child is not None else "0.00000",
        "act": child.type if child is not None else "0",
        "tp": inst.fmt_price(a.trigger_price) if a.trigger_price else "0",
        "p": inst.fmt_price(a.price) if a.price is not None else "0",
        "V": "EXPIRE_MAKER", "wt": a.working_type, "pm": "NONE", "cp": a.close_position,
        "pP": a.price_protect, "R": a.reduce_only, "tt": a.trigger_time, "gtd": 0,
        "rm": a.reject_reason,
    }}


def margin_call(acct: Account, positions: list[Position], now: int) -> Json:
    """MARGIN_CALL: the margin ratio is high (cross: ``cw`` is the cross wallet)."""
    rows = []
    for p in positions:
        inst = INSTRUMENTS[p.symbol]
        rows.append({"s": p.symbol, "ps": p.side, "pa": inst.fmt_qty(p.amt), "mt": "CROSSED",
                     "iw": "0", "mp": f"{acct.mark(p.symbol):.8f}",
                     "up": f"{acct.unrealized(p):.8f}", "mm": f"{acct.position_maint(p):.8f}"})
    return {"e": "MARGIN_CALL", "E": now, "cw": f"{acct.wallet:.8f}", "p": rows}


def force_order(o: Order, price: Decimal, now: int) -> Json:
    """``<symbol>@forceOrder``: a liquidation order, as the market sees it (LIMIT IOC at the
    bankruptcy price)."""
    inst = INSTRUMENTS[o.symbol]
    return {"e": "forceOrder", "E": now, "o": {
        "s": o.symbol, "S": o.side, "o": "LIMIT", "f": "IOC", "q": inst.fmt_qty(o.qty),
        "p": inst.fmt_price(price), "ap": inst.fmt_price(o.avg_price), "X": o.status,
        "l": inst.fmt_qty(o.qty), "z": inst.fmt_qty(o.executed), "T": o.update_time}}


def listen_key_expired(key: str, now: int) -> Json:
    return {"e": "listenKeyExpired", "E": now, "listenKey": key}
