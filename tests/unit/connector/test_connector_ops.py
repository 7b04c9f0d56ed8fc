"""The connector's request handling in-process: its dispatch table on a fake ``ops.Host`` (no
exchange, no sockets). What the exchange answers is covered by tests/integration."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from trader.connector import ops, orders
from trader.connector.fence import Fence, Fenced
from trader.exchange.reconcile import Account
from trader.kernel import bus
from trader.kernel.protocol import ConnectorOp
from trader.kernel.wire import Message

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


class FakeGuard:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.last_error = ""
        self.errors: dict[str, int] = {}

    async def call(self, call: str, fn: Any, *args: Any, essential: bool = False) -> Any:
        self.calls.append((call, args))
        return await fn(*args)


class FakeExchange:
    async def cancel_order(self, oid: Any, sym: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": "42", "status": "canceled", "symbol": sym}

    async def cancel_all_orders(self, sym: str, params: dict[str, Any]) -> list[Any]:
        return []


class FakeDms:
    def __init__(self) -> None:
        self.alive = 0
        self.armed = {BTC}
        self.mode = "countdown"
        self.stopped = False

    def trader_alive(self) -> None:
        self.alive += 1

    async def disarm(self) -> None:
        self.armed.clear()


class FakeHost:
    def __init__(self) -> None:
        self.cfg = SimpleNamespace(killswitch=SimpleNamespace(recv_window=10_000))
        self.xc = SimpleNamespace(recv_window=5_000)
        self.state = "RUNNING"
        self.account = Account()
        self.journal = None
        self.pub = None
        self.ex = FakeExchange()
        self.guard = FakeGuard()
        self.clock = None
        self.feed = None
        self.dms = FakeDms()
        self.limits = SimpleNamespace(weight_used=lambda: 1, banned_for=lambda: 0.0)
        self.fence = Fence(5.0)
        self.fatal: Any = None
        self.tradable = [BTC, ETH]
        self.trader_alive = 0.0
        self.trader_seen = 0.0
        self.reconciled: list[str] = []

    def snapshot(self, source: str) -> dict[str, Any]:
        return {"source": source, "positions": []}

    def fresh(self) -> float:
        return 0.0

    def on_bad_number(self, e: Any) -> None:
        raise AssertionError(e)

    async def reconcile(self, why: str, *, adopt: bool = False) -> list[str]:
        self.reconciled.append(why)
        return ["BTC: 1 != 0"]


def call(host: FakeHost, op: str, args: dict[str, Any] | None = None, src: str = "trader",
         ts: float | None = None) -> Any:
    d = ops.dispatcher(host)  # type: ignore[arg-type]
    msg = Message(op, src, 1, time.time() if ts is None else ts, {})
    return asyncio.run(d(op, args or {}, msg))


def test_alive_keeps_the_dead_man_switch_refreshing_and_any_trader_request_is_seen() -> None:
    h = FakeHost()
    assert call(h, ConnectorOp.ALIVE) is None
    assert h.dms.alive == 1 and h.trader_alive > 0 and h.trader_seen > 0
    seen = h.trader_seen
    call(h, ConnectorOp.ACCOUNT, src="supervisor")
    assert h.trader_seen == seen  # only the trader's requests count as the trader's


def test_account_and_status_are_served() -> None:
    h = FakeHost()
    assert call(h, ConnectorOp.ACCOUNT) == {"source": "none", "positions": []}
    st = call(h, ConnectorOp.STATUS)
    assert st["symbols"] == [BTC, ETH] and st["dms_armed"] == [BTC] and st["fenced"] is False


def test_fence_refuses_every_create_before_anything_until_unfenced() -> None:
    h = FakeHost()
    r = call(h, ConnectorOp.FENCE, {"reason": "kill switch"})
    assert r["recv_window_ms"] == 5_000 and r["inflight_until"] == 0.0 and r["fenced_at"] > 0
    with pytest.raises(Fenced) as e:
        call(h, ConnectorOp.ORDER_CREATE, {"client_id": "c1", "symbol": BTC})
    assert e.value.kind == "fenced" and not h.guard.calls
    assert call(h, ConnectorOp.UNFENCE) == {"fenced": False} and not h.fence.fenced


def test_after_a_fatal_error_creates_and_syncs_are_refused_reads_are_not() -> None:
    h = FakeHost()
    h.fatal = SimpleNamespace(describe=lambda: "GET /fapi/v1/account: 404")
    for op in (ConnectorOp.ORDER_CREATE, ConnectorOp.SYNC):
        with pytest.raises(orders.Refused, match="trading stopped.*404") as e:
            call(h, op, {})
        assert e.value.kind == "fatal"
    assert call(h, ConnectorOp.ACCOUNT)["source"] == "none"
    assert call(h, ConnectorOp.ORDER_CANCEL_ALL, {"symbol": BTC}) == {"symbols": [BTC]}


def test_stale_or_malformed_creates_are_rejected_unsent() -> None:
    h = FakeHost()
    with pytest.raises(orders.BadRequest, match="refused as stale") as e:
        call(h, ConnectorOp.ORDER_CREATE, {"client_id": "c1"}, ts=time.time() - 10)
    assert e.value.kind == "rejected"
    with pytest.raises(orders.BadRequest, match="symbol 'DOGE' is not tradable"):
        call(h, ConnectorOp.ORDER_CREATE, {"client_id": "c1", "symbol": "DOGE", "side": "buy",
                                           "type": "market", "amount": 1.0})
    assert not h.guard.calls


def test_cancels() -> None:
    h = FakeHost()
    with pytest.raises(orders.BadRequest, match="needs symbol and client_id or id"):
        call(h, ConnectorOp.ORDER_CANCEL, {"symbol": BTC})
    r = call(h, ConnectorOp.ORDER_CANCEL, {"symbol": BTC, "client_id": "c1"})
    assert r == {"status": "canceled", "client_id": "c1", "id": "42"}
    assert h.guard.calls[-1] == ("cancel_order", (None, BTC, {"recvWindow": 10_000,
                                                              "origClientOrderId": "c1"}))
    assert call(h, ConnectorOp.ORDER_CANCEL_ALL) == {"symbols": [BTC, ETH]}


def test_sync_reconciles_and_disarm_reports_what_was_armed() -> None:
    h = FakeHost()
    assert call(h, ConnectorOp.SYNC) == {"differences": ["BTC: 1 != 0"]}
    assert h.reconciled == ["sync"]
    assert call(h, ConnectorOp.DMS_DISARM) == {"disarmed": [BTC], "mode": "countdown"}


def test_an_unknown_op_is_a_bad_request_naming_the_known_ones() -> None:
    with pytest.raises(bus.UnknownOp, match="unknown op 'order.amend' for the connector; "
                                            "known ops: account, alive"):
        call(FakeHost(), "order.amend")
