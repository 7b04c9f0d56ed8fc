"""The WebSocket feed's user-data stream against the real sim and the real ccxt.pro, in-process.

The feed, the guarded calls and ccxt are the real ones; only the connector process around them
is left out (the sink records what the feed delivers), so listen-key life cycles can be driven
in seconds: the keep-alive interval is a constructor argument here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.connector_harness import SimThread
from trader.exchange import errors as E
from trader.exchange.calls import Guard, install_recorder
from trader.exchange.clock import ExchangeClock
from trader.exchange.feed import WsFeed
from trader.exchange.ratelimit import RateLimits
from trader.exchange.session import build_exchange
from trader.exchange.venues.binanceusdm import RULES
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET

pytestmark = pytest.mark.integration
BTC = "BTC/USDT:USDT"
PUT_KEY, POST_KEY = "PUT /fapi/v1/listenKey", "POST /fapi/v1/listenKey"


class Recorder:
    def __init__(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.reconnects: list[str] = []
        self.md = 0

    def on_md(self, symbol: str, mark: Any, bid: Any, ask: Any, ts: Any) -> None:
        self.md += 1

    def on_order(self, o: dict[str, Any]) -> None:
        self.orders.append(o)

    def on_trade(self, t: dict[str, Any]) -> None:
        self.trades.append(t)

    def on_position(self, p: dict[str, Any]) -> None:
        pass

    def on_balance(self, b: dict[str, Any]) -> None:
        pass

    def reconnected(self, why: str) -> None:
        self.reconnects.append(why)

    def connected(self, ok: bool) -> None:
        pass


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    s = SimThread(tick_interval=0.05)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(autouse=True)
def _clear(sim: SimThread) -> Iterator[None]:
    yield
    sim.control("clear", {})


async def until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = await asyncio.to_thread(cond)  # conditions may call the sim over HTTP
        if v:
            return v
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def run_feed(sim: SimThread, body: Callable[[WsFeed, Recorder, list[E.Classification]],
                                            Awaitable[None]], recorder: Recorder | None = None,
             **kw: Any) -> None:
    async def main() -> None:
        ex = build_exchange("binanceusdm", url=sim.url, api_key=SIM_API_KEY,
                            api_secret=SIM_API_SECRET, pro=True)
        limits = RateLimits()
        install_recorder(ex, limits)
        fatal: list[E.Classification] = []
        guard = Guard(limits, ExchangeClock(ex), rules=RULES, retry_budget=3, retry_window=30.0,
                      on_fatal=fatal.append)
        rec = recorder or Recorder()
        feed = WsFeed(ex, guard, [BTC], rec, **kw)
        try:
            await ex.load_markets()
            feed.start()
            await until(lambda: feed.is_connected, 30, "the feed subscribed")
            await body(feed, rec, fatal)
        finally:
            await feed.stop()
            await ex.close()

    asyncio.run(main())


def requests(sim: SimThread, key: str) -> int:
    return int(sim.state()["requests"].get(key, 0))


def market_order(sim: SimThread, cid: str) -> None:
    sim.control("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                          "quantity": "0.01", "newClientOrderId": cid})


def saw(rec: Recorder, cid: str) -> bool:
    """The order's update and its fill both came over the stream."""
    ids = {str(o.get("id")) for o in rec.orders if o.get("clientOrderId") == cid}
    return bool(ids) and any(str(t.get("order")) in ids for t in rec.trades)


def test_listen_key_kept_alive_on_our_interval(sim: SimThread) -> None:
    async def body(feed: WsFeed, rec: Recorder, fatal: list[E.Classification]) -> None:
        before = await asyncio.to_thread(requests, sim, PUT_KEY)
        for _ in range(3):
            await asyncio.sleep(0.35)
            await feed.housekeeping()
        assert await asyncio.to_thread(requests, sim, PUT_KEY) >= before + 2
        assert feed.restarts == 0 and not fatal

    run_feed(sim, body, keepalive_interval=0.3)


def test_listen_key_expired_event_restarts_stream_and_events_flow(sim: SimThread) -> None:
    async def body(feed: WsFeed, rec: Recorder, fatal: list[E.Classification]) -> None:
        posts = await asyncio.to_thread(requests, sim, POST_KEY)
        await asyncio.to_thread(sim.control, "expire_listen_keys", {})
        await until(lambda: feed.restarts >= 1, 20, "a user-stream restart")
        await until(lambda: requests(sim, POST_KEY) > posts, 20, "a new listen key")
        await until(lambda: feed.is_connected and "watch_orders" in rec.reconnects, 30,
                    "reconnected with a reconcile asked for")
        await asyncio.to_thread(market_order, sim, "after-expiry")
        await until(lambda: saw(rec, "after-expiry"), 20, "the order and fill on the new stream")
        assert not fatal

    run_feed(sim, body)


def test_keepalive_1125_restarts_stream(sim: SimThread) -> None:
    async def body(feed: WsFeed, rec: Recorder, fatal: list[E.Classification]) -> None:
        await asyncio.to_thread(sim.control, "fail", {"path": "/fapi/v1/listenKey",
                                                      "method": "PUT", "count": 1,
                                                      "code": -1125})
        feed.keepalive_at = 0.0
        await feed.housekeeping()
        await until(lambda: feed.restarts == 1, 20, "a user-stream restart")
        await until(lambda: feed.is_connected, 30, "the feed back")
        await asyncio.to_thread(market_order, sim, "after-1125")
        await until(lambda: saw(rec, "after-1125"), 20, "events on the new stream")
        assert not fatal

    run_feed(sim, body)


def test_dead_key_on_reconnect_gets_a_new_key(sim: SimThread) -> None:
    """Expired key and no event seen (a drop right after): ccxt reconnects with the dead key,
    the handshake is refused, the stream is restarted with a new key."""
    async def body(feed: WsFeed, rec: Recorder, fatal: list[E.Classification]) -> None:
        orig = feed.ex.handle_message
        feed.ex.handle_message = lambda c, m: None if m.get("e") == "listenKeyExpired" else orig(c, m)
        for c in list(feed.ex.clients.values()):  # existing sockets keep the bound handler
            c.on_message_callback = feed.ex.handle_message
        await asyncio.to_thread(sim.control, "expire_listen_keys", {})
        await asyncio.to_thread(sim.control, "drop_ws", {})
        await until(lambda: feed.restarts >= 1, 30, "a user-stream restart")
        await until(lambda: feed.is_connected, 30, "the feed back")
        await asyncio.to_thread(market_order, sim, "after-dead-key")
        await until(lambda: saw(rec, "after-dead-key"), 20, "events on the new stream")
        assert not fatal

    run_feed(sim, body)


def test_repeated_drops_are_never_fatal(sim: SimThread) -> None:
    async def body(feed: WsFeed, rec: Recorder, fatal: list[E.Classification]) -> None:
        for i in range(6):  # twice the retry budget
            await asyncio.to_thread(sim.control, "drop_ws", {})
            await until(lambda: not feed.is_connected, 20, f"drop {i} seen")
            await until(lambda: feed.is_connected, 30, f"reconnect {i}")
        assert not fatal
        assert feed.vouched() > 0

    run_feed(sim, body)
