"""The in-flight bound the connector's fence gives the kill switch (supervisor/fencing.py), with
a fake connector and a fake wall clock: an order signed before the fence may land until its
timestamp + recvWindow (+ the clock offset); none in flight, nothing to wait for."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor import fencing
from tests.unit.supervisor.fakesup import FakeSup
from trader.kernel import bus
from trader.kernel.protocol import CONNECTOR

NOW = 1_700_000_000.0


class Connector:
    def __init__(self, reply: dict[str, Any] | Exception) -> None:
        self.reply = reply
        self.asked: list[tuple[str, dict[str, Any], float]] = []

    async def __call__(self, op: str, args: dict[str, Any], timeout: float) -> Any:
        self.asked.append((op, args, timeout))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def sup(reply: dict[str, Any] | Exception, offset_ms: float | None = -400.0,
        connector_up: bool = True) -> FakeSup:
    s = FakeSup(exchange={"recv_window": 5000}, killswitch={"fence_timeout": 2.0})
    s.wall.t = NOW
    s.ask_connector = Connector(reply)  # type: ignore[attr-defined]
    s.flattener = None if offset_ms is None else SimpleNamespace(  # type: ignore[attr-defined]
        ex=SimpleNamespace(options={"timeDifference": offset_ms}))
    if connector_up:
        s.run(CONNECTOR)
    return s


def fence(s: FakeSup) -> float:
    return asyncio.run(fencing.fence_orders(s, "trader exited"))  # type: ignore[arg-type]


def test_nothing_in_flight_means_no_wait() -> None:
    s = sup({"fenced_at": NOW - 0.1, "inflight_until": 0})
    assert fence(s) == NOW - 0.1
    assert s.ask_connector.asked == [("fence", {"reason": "trader exited"}, 2.0)]  # type: ignore[attr-defined]


def test_an_order_in_flight_bounds_the_wait_plus_the_clock_offset() -> None:
    s = sup({"fenced_at": NOW, "inflight_until": NOW + 3.0})
    assert fence(s) == pytest.approx(NOW + 3.0 + 0.4)


def test_a_connector_without_inflight_tracking_gets_a_whole_recv_window() -> None:
    s = sup({"fenced_at": NOW, "recv_window_ms": 10_000})  # its own window is the larger
    assert fence(s) == pytest.approx(NOW + 10.0 + 0.4)


def test_no_confirmation_kills_and_restarts_the_connector_and_waits_a_window() -> None:
    s = sup(bus.RequestError("timeout", "no reply within 2 s"), offset_ms=None)  # no kill-path session: 1 s slack
    assert fence(s) == pytest.approx(NOW + 5.0 + 1.0)
    assert s.killed == [CONNECTOR]
    assert s.restarted == [(CONNECTOR, "killed by the fence (it did not confirm)")]


def test_no_connector_alive_means_one_may_have_signed_until_now() -> None:
    s = sup({}, connector_up=False)
    assert fence(s) == pytest.approx(NOW + 5.0 + 0.4)
    assert s.ask_connector.asked == []  # type: ignore[attr-defined]


def test_unfence_failing_restarts_the_connector_and_disarm_failing_is_harmless() -> None:
    s = sup(bus.RequestError("refused", "unknown op"))
    asyncio.run(fencing.unfence(s))  # type: ignore[arg-type]
    assert s.restarted == [(CONNECTOR, "restarted to serve the resumed trader")]
    s.run(CONNECTOR)
    assert asyncio.run(fencing.disarm_dms(s)) is False  # type: ignore[arg-type]
    s.ask_connector.reply = {}  # type: ignore[attr-defined]
    assert asyncio.run(fencing.disarm_dms(s)) is True  # type: ignore[arg-type]
