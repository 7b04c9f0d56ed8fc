"""The venue's own market-data sockets (``mdstream.py``) inside the real feed, against the sim.

Market data no longer goes through ccxt.pro (issue 11, point 7): the feed reads Binance's
markPrice@1s and bookTicker itself. What it promised as ccxt watches it keeps: quotes flow, a
dropped socket makes the feed disconnected until it is subscribed again, then quotes flow again,
and the loops' failures are counted under the same call names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.connector_harness import SimThread
from tests.integration.test_connector_feed import BTC, Recorder, run_feed, until
from trader.exchange import errors as E
from trader.exchange.feed import WsFeed
from trader.kernel.metrics import METRICS

pytestmark = pytest.mark.integration


class Quotes(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.quotes: list[tuple[Any, Any, Any, Any]] = []
        self.links: list[bool] = []

    def on_md(self, symbol: str, mark: Any, bid: Any, ask: Any, ts: Any) -> None:
        super().on_md(symbol, mark, bid, ask, ts)
        assert symbol == BTC and isinstance(ts, int)
        self.quotes.append((mark, bid, ask, ts))

    def connected(self, ok: bool) -> None:
        self.links.append(ok)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    s = SimThread(tick_interval=0.05)
    try:
        yield s
    finally:
        s.close()


def _errors(call: str) -> float:
    return sum(float(v) for n, lbl, v in METRICS.samples()  # type: ignore[arg-type,misc]
               if n == "flatguard_exchange_errors_total" and dict(lbl).get("call") == call)


def test_own_streams_deliver_and_survive_drops(sim: SimThread) -> None:
    rec = Quotes()

    async def body(feed: WsFeed, _: Recorder, fatal: list[E.Classification]) -> None:
        assert [s.name for s in feed.streams or []] == ["watch_mark_price", "watch_bids_asks"]
        assert not any(t.get_name().startswith("watch_mark_price:") for t in feed.tasks)
        await until(lambda: any(q[0] for q in rec.quotes) and any(q[1] for q in rec.quotes),
                    20, "marks and quotes")
        errors = _errors("watch_mark_price")
        for i in range(2):
            await asyncio.to_thread(sim.control, "drop_ws", {})
            await until(lambda: not feed.is_connected or False in rec.links, 10, f"drop {i}")
            n = len(rec.quotes)
            await until(lambda: feed.is_connected, 30, f"resubscribed {i}")
            await until(lambda n=n: any(q[0] for q in rec.quotes[n:]), 20, f"marks again {i}")
        assert _errors("watch_mark_price") > errors  # counted under the watch's name
        assert not fatal

    run_feed(sim, body, recorder=rec)
