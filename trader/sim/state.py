"""The simulator's configuration and the state its HTTP and WebSocket sides share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

from trader.sim import depth
from trader.sim.algo import AlgoBook
from trader.sim.auth import Credentials
from trader.sim.ban import Ban
from trader.sim.book import Account
from trader.sim.candles import Candles
from trader.sim.clock import SimClock
from trader.sim.faults import Faults
from trader.sim.funding import Funding
from trader.sim.garbage import Garbage
from trader.sim.liquidation import Liquidator
from trader.sim.market import PriceFeed
from trader.sim.ws import StreamHub

log = logging.getLogger("flatguard.sim")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
SIM_API_KEY = "sim-key"
SIM_API_SECRET = "sim-secret"


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0 picks a free port
    api_key: str = SIM_API_KEY
    api_secret: str = SIM_API_SECRET
    seed: int = 1
    tick_interval: float = 0.1  # seconds between mark-price steps
    volatility: float = 0.0002  # stdev of one step's log return
    spread: float = 0.0001  # relative bid/ask spread around the mark
    start_balance: Decimal = Decimal(10000)
    default_leverage: int = 20
    weight_limit: int = 2400  # request weight per minute (Binance's); 0 disables
    order_limit_10s: int = 300  # new orders per 10 s (Binance's ORDERS rate limits); 0 disables
    order_limit_1m: int = 1200  # new orders per minute; 0 disables
    listen_key_ttl: float = 3600.0  # seconds without keep-alive before a key expires
    skew: float = 0.0  # exchange clock offset, seconds
    # The market model (depth.py, funding.py, liquidation.py). ``speed`` runs the market
    # (walk, trades, book refill, funding) that many times faster than the API clock, which
    # stays real: timestamps, recvWindow and countdowns behave as on Binance.
    liquidity: str = depth.DEFAULT_PROFILE  # "realistic" | "deep"
    speed: float = 1.0
    funding_interval: float = 28_800.0  # market seconds between funding settlements
    book_half_life: float = 1.0  # market seconds for eaten depth to come half back

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS:
            # The control API is unauthenticated: the simulator never leaves the machine.
            raise ValueError(f"sim host must be a loopback address, not {self.host!r}")
        if self.tick_interval <= 0:
            raise ValueError("tick_interval must be > 0")
        if not self.speed > 0:
            raise ValueError("speed must be > 0")
        if not self.funding_interval > 0:
            raise ValueError("funding_interval must be > 0")
        depth.profile(self.liquidity)  # a ValueError naming the profiles


class WeightMeter:
    """Request weight per exchange-clock minute (X-MBX-USED-WEIGHT-1M) and the order counts
    per 10 s and per minute (X-MBX-ORDER-COUNT-10S / -1M), in fixed windows like Binance's."""

    def __init__(self, clock: SimClock, limit: int, order_limit_10s: int = 300,
                 order_limit_1m: int = 1200) -> None:
        self.clock = clock
        self.limit = limit
        self.order_limit_10s = order_limit_10s
        self.order_limit_1m = order_limit_1m
        self._minute = -1
        self._ten = -1
        self.used = 0
        self.orders = 0
        self.orders_10s = 0

    def _roll(self) -> None:
        now = self.clock.now_ms()
        if now // 60_000 != self._minute:
            self._minute, self.used, self.orders = now // 60_000, 0, 0
        if now // 10_000 != self._ten:
            self._ten, self.orders_10s = now // 10_000, 0

    def add(self, weight: int) -> bool:
        """Count a request; False when it pushes the minute over the limit."""
        self._roll()
        self.used += weight
        return not self.limit or self.used <= self.limit

    def add_orders(self, ten_s: int, minute: int) -> str | None:
        """Count new orders; the -1015 message when a window is over its limit, else None."""
        self._roll()
        self.orders_10s += ten_s
        self.orders += minute
        if self.order_limit_10s and self.orders_10s > self.order_limit_10s:
            return f"Too many new orders; current limit is {self.order_limit_10s} orders " \
                   "per 10 SECOND."
        if self.order_limit_1m and self.orders > self.order_limit_1m:
            return f"Too many new orders; current limit is {self.order_limit_1m} orders " \
                   "per 1 MINUTE."
        return None

    def retry_after_s(self) -> int:
        return max(1, 60 - (self.clock.now_ms() // 1000) % 60)


class Countdowns:
    """``countdownCancelAll``: per symbol, cancel all open orders when the timer runs out."""

    def __init__(self, account: Account, clock: SimClock) -> None:
        self.account = account
        self.clock = clock
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.deadlines: dict[str, int] = {}
        self.fired: Counter[str] = Counter()

    def arm(self, symbol: str, countdown_ms: int) -> None:
        old = self._timers.pop(symbol, None)
        if old is not None:
            old.cancel()
        self.deadlines.pop(symbol, None)
        if countdown_ms > 0:
            loop = asyncio.get_running_loop()
            self._timers[symbol] = loop.call_later(countdown_ms / 1000, self._fire, symbol)
            self.deadlines[symbol] = self.clock.now_ms() + countdown_ms

    def _fire(self, symbol: str) -> None:
        self._timers.pop(symbol, None)
        self.deadlines.pop(symbol, None)
        cancelled = self.account.cancel_all(symbol)
        self.fired[symbol] += 1
        log.info("countdown fired symbol=%s cancelled=%d", symbol, len(cancelled))

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


@dataclass
class SimState:
    config: SimConfig
    clock: SimClock
    feed: PriceFeed
    account: Account
    hub: StreamHub
    countdowns: Countdowns
    meter: WeightMeter
    creds: Credentials
    algos: AlgoBook
    funding: Funding
    liquidator: Liquidator
    market_ms: int  # the market model's clock (runs ``speed`` times the API clock)
    candles: Candles = field(default_factory=Candles)
    faults: Faults = field(default_factory=Faults)
    ban: Ban = field(default_factory=Ban)
    garbage: Garbage = field(default_factory=Garbage)
    # requests held inside the exchange by an injected latency (see pipeline.py)
    in_flight: dict[int, dict[str, object]] = field(default_factory=dict)
    frozen: bool = False
    # Simulator bugs (an exception where Binance would answer): each answered -1000 and logged
    # loudly; a test fixture asserts this stays 0 (/_sim/state "bugs").
    bugs: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    order_log: list[dict[str, object]] = field(default_factory=list)
    # time.time_ns() when the account last became flat (no position, no open order), noted
    # after every REST and control request; None while it is not flat. For benchmarks.
    flat_since_ns: int | None = None
    ticks: int = 0  # market steps taken (advance calls)

    @classmethod
    def build(cls, config: SimConfig) -> SimState:
        clock = SimClock(config.skew)
        feed = PriceFeed(clock, config.seed, config.volatility, config.spread,
                         config.liquidity, config.tick_interval, config.book_half_life)
        account = Account(feed, clock, wallet=config.start_balance,
                          default_leverage=config.default_leverage)
        account.wallet_update_time = clock.now_ms()
        hub = StreamHub(feed, account, clock, config.listen_key_ttl)
        algos = AlgoBook(account, clock)
        algos.publish = hub.on_algo
        liquidator = Liquidator(account, clock)
        liquidator.publish_user = hub.publish_user
        liquidator.publish_force = hub.publish_force
        market_ms = clock.now_ms()
        funding = Funding(account, feed, config.funding_interval, market_ms)
        return cls(config=config, clock=clock, feed=feed, account=account, hub=hub,
                   funding=funding, liquidator=liquidator, market_ms=market_ms,
                   countdowns=Countdowns(account, clock),
                   meter=WeightMeter(clock, config.weight_limit, config.order_limit_10s,
                                     config.order_limit_1m),
                   creds=Credentials(config.api_key, config.api_secret), algos=algos)

    def __post_init__(self) -> None:
        self.hub.garbage = self.garbage  # one fault, REST and WebSocket alike
        self.hub.candles = self.candles
        self.account.listeners.append(self.candles)
        now = self.clock.now_ms()
        for sym, q in self.feed.quotes.items():  # klines have a bar from the first minute
            self.candles.on_price(sym, q.mark, now)
        self.funding.on_tick(0.0, self.market_ms, now, self.config.speed)

    def bug(self, what: str) -> None:
        """Count a simulator bug and log it loudly (with the traceback being handled)."""
        self.bugs += 1
        log.exception("SIM BUG #%d (answered -1000): %s", self.bugs, what)

    def note_flat(self) -> None:
        if (self.account.open_positions() or self.account.open_orders()
                or self.algos.open_orders()):
            self.flat_since_ns = None
        elif self.flat_since_ns is None:
            self.flat_since_ns = time.time_ns()

    def advance(self, wall_s: float) -> list[str]:
        """Run the market for ``wall_s`` seconds of API time (``speed`` times as much market
        time): walk, trades and book refill, funding, then one tick. The ticker calls it with
        the time since its last call; tests call it directly (deterministic)."""
        dt = wall_s * self.config.speed
        self.market_ms += round(dt * 1000)
        self.ticks += 1
        symbols = self.feed.step(dt)
        self.funding.on_tick(dt, self.market_ms, self.clock.now_ms(), self.config.speed)
        self.tick(symbols)
        return symbols

    def tick(self, symbols: list[str]) -> None:
        """Publish new quotes, match resting orders, trigger algo orders against them and
        liquidate an account under its maintenance margin."""
        now = self.clock.now_ms()
        for sym in symbols:
            self.candles.on_price(sym, self.feed.quotes[sym].mark, now)
        self.account.on_prices(symbols)
        self.algos.on_prices(symbols)
        self.liquidator.check()
        self.hub.publish_market(symbols)


STATE_KEY = web.AppKey("sim_state", SimState)
