"""Market and account history: ``GET /fapi/v1/klines``, ``/fapi/v1/aggTrades``,
``/fapi/v1/income`` and ``/fapi/v1/fundingRate``.

Aggregate trades are the account's own fills (one per fill: the sim never has two fills at one
price and instant to aggregate; the market's background trades move the last price and the
volume but are not listed). Income holds REALIZED_PNL and COMMISSION rows from the fills,
FUNDING_FEE rows from settlements (``funding.py``) and INSURANCE_CLEAR rows from liquidations;
``fundingRate`` lists the settlements' rates.
"""

from __future__ import annotations

from trader.sim import candles, shapes
from trader.sim.book import Trade
from trader.sim.errors import BinanceError
from trader.sim.market import INSTRUMENTS, instrument
from trader.sim.params import Params
from trader.sim.rest import Route, _window
from trader.sim.state import SimState

INCOME_TYPES = frozenset({
    "TRANSFER", "WELCOME_BONUS", "REALIZED_PNL", "FUNDING_FEE", "COMMISSION",
    "INSURANCE_CLEAR", "REFERRAL_KICKBACK", "COMMISSION_REBATE", "API_REBATE",
    "CONTEST_REWARD", "CROSS_COLLATERAL_TRANSFER", "OPTIONS_PREMIUM_FEE",
    "OPTIONS_SETTLE_PROFIT", "INTERNAL_TRANSFER", "AUTO_EXCHANGE", "DELIVERED_SETTELMENT",
    "COIN_SWAP_DEPOSIT", "COIN_SWAP_WITHDRAW", "POSITION_LIMIT_INCREASE_FEE",
    "STRATEGY_UMFUTURES_TRANSFER", "FEE_RETURN", "BFUSD_REWARD",
})
_WEEK_MS = 7 * 86_400_000


def _limit(p: Params, default: int, maximum: int) -> int:
    limit = p.integer("limit", default)
    if limit is None or not 1 <= limit <= maximum:
        raise BinanceError(-1102, "Mandatory parameter 'limit' was not sent, was empty/null, "
                                  "or malformed.")
    return limit


def _kline_weight(p: Params) -> int:
    limit = p.integer("limit", 500) or 500
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


async def klines(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    interval = candles.check_interval(p.text("interval"))
    limit = _limit(p, 500, 1500)
    start, end = p.integer("startTime"), p.integer("endTime")
    rows = [r for r in s.candles.klines(sym, interval)
            if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
    rows = rows[:limit] if start is not None else rows[-limit:]
    return [candles.row(sym, *r) for r in rows]


async def agg_trades(s: SimState, p: Params) -> object:
    sym = instrument(p.req("symbol")).symbol
    _limit(p, 500, 1000)
    start, end = p.integer("startTime"), p.integer("endTime")
    if start is not None and end is not None and not 0 <= end - start <= 3_600_000:
        raise BinanceError(-1127, "More than 1 hours between startTime and endTime.")
    rows: list[object] = [agg_trade_row(t) for t in s.account.trades if t.symbol == sym]
    return _window(p, rows, "T", "a", "fromId")


def agg_trade_row(t: Trade) -> dict[str, object]:
    inst = INSTRUMENTS[t.symbol]
    # The counterparty of a fill is the market: the buyer is the maker when the account
    # bought as maker or sold as taker.
    return {"a": t.trade_id, "p": inst.fmt_price(t.price), "q": inst.fmt_qty(t.qty),
            "f": t.trade_id, "l": t.trade_id, "T": t.time,
            "m": (t.side == "BUY") == t.maker}


async def income(s: SimState, p: Params) -> object:
    sym = instrument(p.text("symbol")).symbol if "symbol" in p else None
    kind = p.text("incomeType")
    if kind is not None and kind not in INCOME_TYPES:
        raise BinanceError(-1102, "Mandatory parameter 'incomeType' was not sent, was "
                                  "empty/null, or malformed.")
    limit = _limit(p, 100, 1000)
    start, end = p.integer("startTime"), p.integer("endTime")
    if start is None and end is None:  # Binance: the last 7 days when no window is given
        start = s.clock.now_ms() - _WEEK_MS
    rows = [i for i in s.account.income
            if (sym is None or i.symbol == sym) and (kind is None or i.income_type == kind)
            and (start is None or i.time >= start) and (end is None or i.time <= end)]
    return [shapes.income(i) for i in rows[:limit]]


async def funding_rate(s: SimState, p: Params) -> object:
    sym = instrument(p.text("symbol")).symbol if "symbol" in p else None
    limit = _limit(p, 100, 1000)
    start, end = p.integer("startTime"), p.integer("endTime")
    rows = [r for r in s.funding.history if (sym is None or r.symbol == sym)
            and (start is None or r.time >= start) and (end is None or r.time <= end)]
    rows = rows[:limit] if start is not None else rows[-limit:]
    return [{"symbol": r.symbol, "fundingRate": f"{r.rate:.8f}", "fundingTime": r.time,
             "markPrice": f"{r.mark:.8f}"} for r in rows]


ROUTES: dict[tuple[str, str], Route] = {
    (r.method, r.path): r for r in (
        Route("GET", "/fapi/v1/klines", klines, weight=_kline_weight),
        Route("GET", "/fapi/v1/aggTrades", agg_trades, weight=20),
        Route("GET", "/fapi/v1/income", income, "SIGNED", 30),
        Route("GET", "/fapi/v1/fundingRate", funding_rate),
    )
}
