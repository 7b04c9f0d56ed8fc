"""Creates whose reply was lost, and the fence, in-process against the sim with the real ccxt.

``orders.create`` runs with the real guard, journal and fence, and sends through the venue's
``create_order`` as the connector does; the sim's ``after`` failures place the order and then
lose the reply (-1007, 504), its ``before`` failures refuse it unprocessed. Nothing is ever
re-sent: exactly one order (and one fill) per client id. The venue's create is checked against
ccxt's own: the same request, the same reply, the same classification of a refusal.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ccxt.base import errors as ccxt_errors

from tests.sim_harness import SimHarness
from trader.connector import fence as fence_mod
from trader.connector import orders
from trader.connector.fence import Fence, Fenced
from trader.exchange import errors as E
from trader.exchange.ban import BanBoard
from trader.exchange.calls import Guard, install_recorder
from trader.exchange.clock import ExchangeClock
from trader.exchange.ratelimit import RateLimits
from trader.exchange.venues.binanceusdm import RULES, BinanceUsdm, order_request
from trader.kernel.journal import Journal

BTC = "BTC/USDT:USDT"
RECV_MS = 1000  # exchange.recv_window for these tests: the lookup waits 1 s + the margin


@dataclass
class Rig:
    h: SimHarness
    ex: Any
    guard: Guard
    journal: Journal
    fence: Fence
    board: BanBoard
    fatal: list[E.Classification]

    @property
    def place(self) -> orders.Placer:
        return functools.partial(BinanceUsdm().create_order, self.ex)

    async def create(self, cid: str, **kw: Any) -> dict[str, Any]:
        req = {"client_id": cid, "symbol": BTC, "side": "buy", "type": "market",
               "amount": 0.01, "price": None, "reduce_only": False, "tif": None, **kw}
        return await orders.create(self.guard, self.ex, self.journal, req, fence=self.fence,
                                   recv_window_ms=RECV_MS, place=self.place)

    async def posts(self, cid: str) -> list[dict[str, Any]]:
        return [e for e in await self.h.control.orders() if e.get("clientOrderId") == cid
                and e.get("method") == "POST"]

    async def fills(self, order_id: str) -> list[dict[str, Any]]:
        return [t for t in await self.ex.fetch_my_trades(BTC) if str(t["order"]) == order_id]


@pytest.fixture
def rig(h: SimHarness, tmp_path: Path) -> Iterator[Rig]:
    board = BanBoard.in_run_dir(tmp_path)
    ex = h.exchange(pro=False, recv_window_ms=RECV_MS, ban_board=board)
    fence_mod.install(ex)
    limits = RateLimits(board=board)
    install_recorder(ex, limits)
    fatal: list[E.Classification] = []
    guard = Guard(limits, ExchangeClock(ex), rules=RULES, retry_budget=5, retry_window=60,
                  on_fatal=fatal.append)
    h.run(ex.load_markets())
    j = Journal(tmp_path / "journal.db")
    try:
        yield Rig(h, ex, guard, j, Fence(), board, fatal)
    finally:
        j.close()


@pytest.mark.parametrize("fault", [{"code": -1007}, {"status": 504}])
def test_lost_reply_of_a_filled_market_order_is_found_never_resent(rig: Rig,
                                                                   fault: dict[str, int]) -> None:
    async def main() -> None:
        await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                 after=True, **fault)
        o = await rig.create("lost-1")
        assert o["clientOrderId"] == "lost-1" and o["status"] == "closed"
        assert len(await rig.posts("lost-1")) == 1
        assert len(await rig.fills(str(o["id"]))) == 1
        assert rig.journal.order("lost-1")["status"] == "closed"

    rig.h.run(main(), timeout=30)


@pytest.fixture
def short_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup's margin past the recvWindow (2 s: clock error and the gateway hop) is not
    what these tests check, the wait for recvWindow + margin is: a 0.3 s margin shows it."""
    monkeypatch.setattr(orders, "LOOKUP_MARGIN_S", 0.3)


@pytest.mark.usefixtures("short_margin")
def test_lookup_failing_too_waits_out_the_recv_window_then_finds_it(rig: Rig) -> None:
    async def main() -> None:
        await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                 after=True, code=-1007)
        await rig.h.control.call("fail", path="/fapi/v1/order", method="GET", count=1,
                                 status=503)  # the immediate lookup fails as well
        t0 = time.monotonic()
        o = await rig.create("lost-2")
        assert time.monotonic() - t0 >= RECV_MS / 1000 + orders.LOOKUP_MARGIN_S - 0.05
        assert o["status"] == "closed"
        assert len(await rig.posts("lost-2")) == 1
        assert len(await rig.fills(str(o["id"]))) == 1

    rig.h.run(main(), timeout=30)


@pytest.mark.usefixtures("short_margin")
def test_unprocessed_create_is_reported_not_placed_after_the_bound(rig: Rig) -> None:
    async def main() -> None:
        await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                 status=503)  # before processing: nothing placed
        t0 = time.monotonic()
        with pytest.raises(orders.NotPlaced) as ei:
            await rig.create("gone-1")
        assert time.monotonic() - t0 >= RECV_MS / 1000 + orders.LOOKUP_MARGIN_S - 0.05
        assert ei.value.kind == "rejected" and "not re-sent" in str(ei.value)
        posts = await rig.posts("gone-1")
        assert len(posts) == 1 and not posts[0].get("accepted")
        j = rig.journal.order("gone-1")
        assert j["status"] == "rejected" and "not placed" in j["error"]
        assert not rig.fatal

    rig.h.run(main(), timeout=30)


def test_rate_limited_create_is_not_placed_at_once(rig: Rig) -> None:
    async def main() -> None:
        await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                 code=-1015)  # too many new orders: refused unprocessed
        with pytest.raises(orders.NotPlaced):
            await rig.create("rl-1")
        assert len(await rig.posts("rl-1")) == 1

    rig.h.run(main(), timeout=30)


def test_banned_create_is_not_sent(rig: Rig) -> None:
    async def main() -> None:
        host = next(iter(rig.ex.urls["api"].values())).split("/")[2]
        rig.board.record(host, 418, 30.0)
        with pytest.raises(orders.NotPlaced) as ei:
            await rig.create("ban-1")
        assert "ban" in str(ei.value)
        assert await rig.posts("ban-1") == []

    rig.h.run(main(), timeout=30)


def test_fence_ends_a_create_waiting_to_look_up_and_never_resends(rig: Rig) -> None:
    async def main() -> None:
        await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                 status=503)
        task = asyncio.ensure_future(rig.create("fence-1"))
        while rig.journal.order("fence-1") is None or \
                rig.journal.order("fence-1")["status"] != "unknown":
            await asyncio.sleep(0.01)  # the create is waiting out its recvWindow now
        t0 = time.monotonic()
        rig.fence.fence("kill switch")
        with pytest.raises(Fenced) as ei:
            await task
        assert time.monotonic() - t0 < 0.5 and ei.value.kind == "fenced"
        assert "outcome unknown" in str(ei.value)
        assert rig.journal.order("fence-1")["status"] == "unknown"  # it may have landed
        assert len(await rig.posts("fence-1")) == 1
        with pytest.raises(Fenced):  # later creates: refused, nothing sent
            await rig.create("fence-2")
        assert await rig.posts("fence-2") == []
        rig.fence.lift()
        assert (await rig.create("fence-3"))["status"] == "closed"

    rig.h.run(main(), timeout=30)


def test_the_gate_stops_a_create_already_inside_ccxt(rig: Rig) -> None:
    """The check sits in ``fetch``, after ccxt's rate limiter and signing: a create that was
    waiting inside ccxt when the fence went up is not sent either."""
    async def main() -> None:
        with rig.fence.gate():
            rig.fence.fence("test")
            with pytest.raises(Fenced):
                await rig.ex.create_order(BTC, "market", "buy", 0.01, None,
                                          {"clientOrderId": "gate-1"})
        assert await rig.posts("gate-1") == []
        await rig.ex.fetch_open_orders(BTC)  # reads are not gated
        assert await rig.guard.call("fetch_positions", rig.ex.fetch_positions, None) is not None

    rig.h.run(main(), timeout=30)


# --- the venue's create against ccxt's own ---------------------------------------------------

PLAIN = [("market", "buy", 0.002, None, {}),
         ("market", "sell", 0.0021234, None, {"reduceOnly": True}),
         ("limit", "buy", 0.002, 50000.123456, {}),
         ("limit", "sell", 0.002, 50000.1, {"timeInForce": "IOC"}),
         ("limit", "sell", 0.0029999, 50000.1, {"timeInForce": "GTX", "reduceOnly": True}),
         ("limit", "buy", 0.002, 50000.1, {"timeInForce": "FOK"})]


@pytest.mark.parametrize("order", PLAIN)
def test_venue_request_is_ccxts(rig: Rig, order: tuple[Any, ...]) -> None:
    typ, side, amount, price, extra = order
    params = {"clientOrderId": "par-1", **extra}
    ours = order_request(rig.ex, rig.ex.market(BTC), typ, side, amount, price, params)
    theirs = rig.ex.create_order_request(BTC, typ, side, amount, price,
                                         {**params, "isAlgoOrder": False})
    assert ours == {k: "true" if v is True else v for k, v in theirs.items()}


def test_remembered_rounding_is_ccxts_and_follows_a_changed_step(rig: Rig) -> None:
    m = rig.ex.market(BTC)
    first = order_request(rig.ex, m, "market", "buy", 0.0021234, None, {"clientOrderId": "a"})
    again = order_request(rig.ex, m, "market", "buy", 0.0021234, None, {"clientOrderId": "b"})
    assert first["quantity"] == again["quantity"] == rig.ex.amount_to_precision(BTC, 0.0021234)
    old = m["precision"]["amount"]
    m["precision"]["amount"] = old / 10  # the exchange made the lot step finer
    try:
        finer = order_request(rig.ex, m, "market", "buy", 0.0021234, None, {"clientOrderId": "c"})
        assert finer["quantity"] == rig.ex.amount_to_precision(BTC, 0.0021234)
        assert finer["quantity"] != first["quantity"]
    finally:
        m["precision"]["amount"] = old
    for _ in range(2):  # a refusal is ccxt's each time, never a remembered answer
        with pytest.raises(ccxt_errors.InvalidOrder):
            order_request(rig.ex, m, "market", "buy", old / 100, None, {"clientOrderId": "d"})


def test_venue_create_replies_as_ccxt_and_sends_the_same(rig: Rig) -> None:
    async def main() -> None:
        ccxt_o = await rig.ex.create_order(BTC, "limit", "buy", 0.2, 1000.0,
                                           {"clientOrderId": "same-c", "timeInForce": "GTC"})
        ours = await rig.place(BTC, "limit", "buy", 0.2, 1000.0,
                               {"clientOrderId": "same-v", "timeInForce": "GTC"})
        assert set(ours) == set(ccxt_o)
        for k in ("symbol", "type", "side", "status", "amount", "price", "filled",
                  "timeInForce", "reduceOnly"):
            assert ours[k] == ccxt_o[k], k
        assert ours["clientOrderId"] == "same-v"
        (pc,), (pv,) = await rig.posts("same-c"), await rig.posts("same-v")
        drop = {"clientOrderId", "newClientOrderId", "timestamp", "signature", "recv_ns", "time",
                "id", "orderId", "processed_ms"}
        assert {k: v for k, v in pv.items() if k not in drop} == \
            {k: v for k, v in pc.items() if k not in drop}
        await rig.ex.cancel_all_orders(BTC)

    rig.h.run(main(), timeout=30)


@pytest.mark.parametrize("code", [-2019, -4164, -1021, -1000])
def test_venue_create_refusals_classify_as_ccxts(rig: Rig, code: int) -> None:
    async def main() -> None:
        seen = []
        for cid, fn in (("cls-c", rig.ex.create_order), ("cls-v", rig.place)):
            await rig.h.control.call("fail", path="/fapi/v1/order", method="POST", count=1,
                                     code=code)
            with pytest.raises(E.ExchangeCallError) as ei:
                await rig.guard.attempt("create_order", fn, BTC, "market", "buy", 0.01, None,
                                        {"clientOrderId": cid})
            c = ei.value.classification
            seen.append((type(ei.value), c.kind, c.code, c.error, c.status, c.endpoint))
        assert seen[0] == seen[1]

    rig.h.run(main(), timeout=30)


def test_venue_create_with_ccxts_rate_limiter_goes_through_it(rig: Rig) -> None:
    async def main() -> None:
        rig.ex.enableRateLimit = True  # a remote venue: ccxt's limiter and signing
        o = await rig.place(BTC, "market", "buy", 0.002, None, {"clientOrderId": "rl-v"})
        assert o["clientOrderId"] == "rl-v" and o["status"] == "closed"
        assert len(await rig.posts("rl-v")) == 1

    rig.h.run(main(), timeout=30)


def test_venue_create_is_gated_by_the_fence(rig: Rig) -> None:
    async def main() -> None:
        with rig.fence.gate():
            rig.fence.fence("test")
            with pytest.raises(Fenced):
                await rig.place(BTC, "market", "buy", 0.01, None, {"clientOrderId": "gate-v"})
        assert await rig.posts("gate-v") == []

    rig.h.run(main(), timeout=30)
