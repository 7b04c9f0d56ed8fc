"""Instruments, their exchange filters, seeded random-walk mark prices and the book around them.

The filters mirror what Binance publishes for these perpetuals in ``/fapi/v1/exchangeInfo``
(price/lot steps, precisions, min notional), except MARKET_LOT_SIZE.maxQty, which is kept
small on purpose so that closing a position in several market orders can be exercised.

Each ``step`` covers ``dt`` seconds of *market* time (``SimConfig.speed`` times the wall time):
the log-return stdev grows with its square root, the book refills (``depth.py``) and one market
trade prints at the touch. The last price comes from trades (the market's and the account's),
the mark from the walk; the index lags the mark (a mean of its last ten values).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from trader.sim import depth
from trader.sim.clock import SimClock
from trader.sim.depth import Ladder
from trader.sim.errors import BinanceError

D = Decimal


@dataclass(frozen=True)
class Instrument:
    symbol: str
    base: str
    tick: Decimal
    step: Decimal
    price_precision: int
    qty_precision: int
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    start_price: Decimal
    quote: str = "USDT"
    multiplier_up: Decimal = D("1.0500")
    multiplier_down: Decimal = D("0.9500")
    onboard_ms: int = 1569398400000

    def info(self) -> dict[str, object]:
        """The symbol entry of ``/fapi/v1/exchangeInfo``."""
        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": self.onboard_ms,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base,
            "quoteAsset": self.quote,
            "marginAsset": self.quote,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.qty_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": str(self.min_price),
                    "maxPrice": str(self.max_price),
                    "tickSize": str(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": str(self.min_qty),
                    "maxQty": str(self.max_qty),
                    "stepSize": str(self.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": str(self.min_qty),
                    "maxQty": str(self.market_max_qty),
                    "stepSize": str(self.step),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": str(self.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": str(self.multiplier_up),
                    "multiplierDown": str(self.multiplier_down),
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT", "MARKET", "STOP", "STOP_MARKET",
                "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    def round_price(self, price: Decimal, *, up: bool) -> Decimal:
        """Snap a price to the tick grid, outward (up for asks, down for bids)."""
        ticks = (price / self.tick).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
        return max(ticks, D(1)) * self.tick

    def with_filters(self, changes: Mapping[str, Decimal]) -> Instrument:
        """This instrument after a lot-filter change (``/_sim/filters``, Binance's names:
        ``stepSize``, ``minQty``, ``maxQty``, ``marketMaxQty``, ``minNotional``).

        Binance moves ``quantityPrecision`` with the step size, so a quantity with more
        decimals than the new step is refused with -1111; a minQty below a coarser step rises
        to the step.
        """
        unknown = set(changes) - set(FILTER_KEYS)
        if unknown:
            raise ValueError(f"unknown filter field(s) {sorted(unknown)}: use {FILTER_KEYS}")
        step = changes.get("stepSize", self.step)
        if step <= 0:
            raise ValueError("stepSize must be > 0")
        min_qty = changes.get("minQty", max(self.min_qty, step))
        if min_qty <= 0 or min_qty % step:
            raise ValueError("minQty must be a positive multiple of stepSize")
        return dataclasses.replace(
            self, step=step, qty_precision=_places(step), min_qty=min_qty,
            max_qty=changes.get("maxQty", self.max_qty),
            market_max_qty=changes.get("marketMaxQty", self.market_max_qty),
            min_notional=changes.get("minNotional", self.min_notional))

    def check_price_tick(self, price: Decimal) -> None:
        """PRICE_FILTER for a price that is not matched against the book (trigger prices)."""
        if _places(price) > self.price_precision:
            raise BinanceError(-1111)
        if price < self.min_price:
            raise BinanceError(-4013, "Price less than min price.")
        if price % self.tick:
            raise BinanceError(-4014)

    def fmt_price(self, value: Decimal) -> str:
        return f"{value:.{self.price_precision}f}"

    def fmt_qty(self, value: Decimal) -> str:
        # never truncate: a position opened before a step-size change keeps its digits
        return f"{value:.{max(self.qty_precision, _places(value))}f}"


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("BTCUSDT", "BTC", D("0.10"), D("0.001"), 2, 3, D("556.80"), D("4529764"),
                   D("0.001"), D("1000"), D("2"), D("100"), D("60000")),
        Instrument("ETHUSDT", "ETH", D("0.01"), D("0.001"), 2, 3, D("39.86"), D("306177"),
                   D("0.001"), D("10000"), D("50"), D("20"), D("3000")),
        Instrument("SOLUSDT", "SOL", D("0.0100"), D("1"), 4, 0, D("0.4200"), D("6857"),
                   D("1"), D("1000000"), D("500"), D("5"), D("150")),
    )
}


FILTER_KEYS = ("stepSize", "minQty", "maxQty", "marketMaxQty", "minNotional")


def instrument(symbol: str | None) -> Instrument:
    if not symbol:
        raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                  "or malformed.")
    try:
        return INSTRUMENTS[symbol]
    except KeyError:
        raise BinanceError(-1121) from None


@dataclass
class Quote:
    """Market state of one symbol. Bid/ask straddle the mark by half the spread; the book
    behind them is ``ladder`` minus what the account ate (``eaten``, per side)."""

    inst: Instrument
    mark: Decimal
    spread: Decimal  # relative, e.g. 0.0001 = 1 bp
    open: Decimal
    high: Decimal
    low: Decimal
    ladder: Ladder
    volume: Decimal = D(0)
    quote_volume: Decimal = D(0)
    trades: int = 0
    update_id: int = 1
    time_ms: int = 0
    last_qty: Decimal = D(0)
    last: Decimal = D(0)  # price of the last trade (0: none yet, the mark stands in)
    history: list[Decimal] = field(default_factory=list)
    eaten: dict[str, Decimal] = field(default_factory=lambda: {"BUY": D(0), "SELL": D(0)})
    funding_rate: Decimal = D("0.0001")  # the estimate for the next settlement (funding.py)
    next_funding_ms: int = 0  # API time of the next settlement

    @property
    def bid(self) -> Decimal:
        return self.inst.round_price(self.mark * (1 - self.spread / 2), up=False)

    @property
    def ask(self) -> Decimal:
        ask = self.inst.round_price(self.mark * (1 + self.spread / 2), up=True)
        return ask if ask > self.bid else self.bid + self.inst.tick

    @property
    def last_price(self) -> Decimal:
        return self.last or self.mark

    @property
    def index(self) -> Decimal:
        # A slightly lagging index (mean of the last marks) is enough for premiumIndex.
        window = self.history[-10:] or [self.mark]
        return self.inst.round_price(sum(window, D(0)) / len(window), up=False)

    def gap(self) -> Decimal:
        return max(self.inst.round_price(self.mark * self.ladder.gap_bp / 10000, up=False),
                   self.inst.tick)

    def levels(self, side: str, qty: Decimal | None = None, limit: Decimal | None = None,
               top: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """What a taker on ``side`` (BUY takes asks) finds, best first, without taking it
        (at most ``top`` levels)."""
        buy = side == "BUY"
        return depth.walk(self.ladder, self.ask if buy else self.bid, self.gap(),
                          1 if buy else -1, self.eaten[side] if self.ladder.eaten else D(0),
                          qty, limit, top)

    def take(self, side: str, qty: Decimal,
             limit: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
        """Fill up to ``qty`` for a taker on ``side`` and eat it from the book."""
        fills = self.levels(side, qty, limit)
        if self.ladder.eaten:
            self.eaten[side] += sum((q for _, q in fills), D(0))
        return fills

    def refill(self, dt: float, half_life: float) -> None:
        """Market makers come back: what was eaten decays with a half-life (market s)."""
        keep = D(repr(0.5 ** (dt / half_life))) if half_life > 0 else D(0)
        for side, eaten in self.eaten.items():  # on the lot grid: book sizes stay in steps
            self.eaten[side] = (eaten * keep / self.inst.step).to_integral_value(
                ROUND_FLOOR) * self.inst.step

    def impact(self, side: str, notional: Decimal) -> Decimal:
        """Average price of taking ``notional`` USDT on ``side`` (Binance's impact bid/ask);
        the last level's price when the ladder runs out."""
        got, cost = D(0), D(0)
        for price, size in self.levels(side):
            take = min(size, (notional - cost) / price)
            got, cost = got + take, cost + take * price
            if cost >= notional:
                break
        return cost / got if got else self.mark


class PriceFeed:
    """Seeded geometric random walk per symbol; one ``step()`` per market-data tick."""

    def __init__(self, clock: SimClock, seed: int = 1, volatility: float = 0.0002,
                 spread: float = 0.0001, liquidity: str = depth.DEFAULT_PROFILE,
                 tick_interval: float = 0.1, half_life: float = 1.0) -> None:
        self.clock = clock
        self.volatility = volatility
        self.tick_interval = tick_interval  # the dt whose stdev is ``volatility``
        self.half_life = half_life  # market seconds for eaten depth to come half back
        self.profile = liquidity
        ladders = depth.profile(liquidity)
        self._rngs = {s: random.Random(f"{seed}:{s}") for s in INSTRUMENTS}
        self._trade_rngs = {s: random.Random(f"{seed}:{s}:trades") for s in INSTRUMENTS}
        now = clock.now_ms()
        self.quotes = {
            s: Quote(i, i.start_price, D(str(spread)), i.start_price, i.start_price,
                     i.start_price, ladders[s], time_ms=now, history=[i.start_price])
            for s, i in INSTRUMENTS.items()
        }

    def step(self, dt: float | None = None) -> list[str]:
        """Advance the market by ``dt`` market seconds (default: one tick at speed 1)."""
        dt = self.tick_interval if dt is None else dt
        scale = math.sqrt(dt / self.tick_interval)
        for sym, q in self.quotes.items():
            shock = math.exp(self._rngs[sym].gauss(0.0, self.volatility * scale))
            self._set(q, q.inst.round_price(q.mark * D(repr(shock)), up=False))
            q.refill(dt, self.half_life)
            self._market_trade(q, dt)
        return list(self.quotes)

    def set_price(self, symbol: str, price: Decimal, spread: Decimal | None = None) -> None:
        q = self.quotes[instrument(symbol).symbol]
        if spread is not None:
            q.spread = spread
        self._set(q, q.inst.round_price(price, up=False))
        q.last = q.mark  # the market trades at the new price at once

    def set_profile(self, name: str, symbol: str | None = None) -> None:
        ladders = depth.profile(name)
        for sym, q in self.quotes.items():
            if symbol is None or sym == symbol:
                q.ladder = ladders[sym]
        if symbol is None:
            self.profile = name

    def record_trade(self, symbol: str, qty: Decimal, price: Decimal) -> None:
        q = self.quotes[symbol]
        q.volume += qty
        q.quote_volume += qty * price
        q.trades += 1
        q.last_qty = qty
        q.last = price

    def _market_trade(self, q: Quote, dt: float) -> None:
        """Someone else trades at the touch: the last price moves between bid and ask and
        the volume grows with market time (a few percent of the top level per tick)."""
        rng = self._trade_rngs[q.inst.symbol]
        buy = rng.random() < 0.5
        typical = depth.PROFILES[depth.DEFAULT_PROFILE][q.inst.symbol].top  # not the deep one
        size = D(repr(rng.expovariate(1.0) * 0.02 * dt / self.tick_interval)) * typical
        qty = max(q.inst.step, (size / q.inst.step).to_integral_value(ROUND_FLOOR) * q.inst.step)
        self.record_trade(q.inst.symbol, qty, q.ask if buy else q.bid)

    def _set(self, q: Quote, mark: Decimal) -> None:
        q.mark = mark
        q.high = max(q.high, mark)
        q.low = min(q.low, mark)
        q.update_id += 1
        q.time_ms = self.clock.now_ms()
        q.history.append(mark)
        del q.history[:-10]
