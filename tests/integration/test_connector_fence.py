"""The connector process's kill-path ops: ``fence``/``unfence``, ``dms.disarm``, and the shared ban.

A real connector process against the real sim (tests/test_connector_harness.py); the test plays
the supervisor and the trader through their sockets.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.connector_harness import ConnectorProc, wait_for
from trader.kernel import bus
from trader.kernel.bus import RequestError

pytestmark = pytest.mark.integration
BTC = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def conn() -> Iterator[ConnectorProc]:
    c = ConnectorProc(dms_interval=0.3, dms_timeout=600)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(autouse=True)
def _clear(conn: ConnectorProc) -> Iterator[None]:
    yield
    conn.sim.control("clear", {})
    conn.request("unfence")


def order(c: ConnectorProc, cid: str, **kw: Any) -> Any:
    args = {"client_id": cid, "symbol": BTC, "side": "buy", "type": "market", "amount": 0.01, **kw}
    return c.request("order.create", args)


def posts(c: ConnectorProc, cid: str) -> list[dict[str, Any]]:
    return [e for e in c.sim.control("orders") if e.get("clientOrderId") == cid
            and e.get("method") == "POST"]


def alive(c: ConnectorProc) -> None:
    assert c.req is not None
    c.req.sock.send_multipart(c.req.frames("alive", {"args": {}}))


def test_fence_refuses_creates_keeps_the_rest_and_is_idempotent(conn: ConnectorProc) -> None:
    before = time.time()
    r = conn.request("fence", {"reason": "kill switch"})
    assert before <= r["fenced_at"] <= time.time()
    assert r["recv_window_ms"] == conn.cfg.exchange.recv_window == 5000
    assert conn.request("fence", {"reason": "again"})["fenced_at"] == r["fenced_at"]
    with pytest.raises(RequestError) as ei:
        order(conn, "f-1")
    assert ei.value.kind == "fenced" and "kill switch" in ei.value.message
    assert posts(conn, "f-1") == []
    st = conn.request("status")
    assert st["fenced"] is True and st["fenced_at"] == r["fenced_at"]
    # what the kill path may need keeps working
    assert conn.request("order.cancel", {"symbol": BTC, "client_id": "nope"})["status"] == "gone"
    assert conn.request("order.cancel_all", {"symbol": BTC})["symbols"] == [BTC]
    assert "equity" in conn.request("account")
    assert conn.request("sync")["differences"] == []
    assert conn.request("unfence") == {"fenced": False}
    assert order(conn, "f-2")["status"] == "closed"


def test_fence_drops_a_create_waiting_on_a_lost_reply(conn: ConnectorProc) -> None:
    conn.sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1,
                              "status": 503})
    result: dict[str, Any] = {}

    def send() -> None:
        req = bus.SyncRequester(conn.paths.connector, "trader2", ctx=conn.plumbing.ctx)
        try:
            req.request("order.create", {"client_id": "f-3", "symbol": BTC, "side": "buy",
                                         "type": "market", "amount": 0.01}, 20)
        except RequestError as e:
            result["error"] = e
            result["at"] = time.monotonic()
        finally:
            req.close()

    t = threading.Thread(target=send)
    t.start()
    try:
        wait_for(lambda: posts(conn, "f-3"), 20, "the create to reach the exchange")
        time.sleep(0.3)  # its reply (503) is back: it waits ~7 s to look the id up
        fenced = time.monotonic()
        conn.request("fence", {"reason": "kill"})
    finally:
        t.join(30)
    assert result["error"].kind == "fenced" and result["at"] - fenced < 2.0
    assert len(posts(conn, "f-3")) == 1  # never re-sent


def test_fence_reports_until_when_an_order_on_the_wire_may_land(conn: ConnectorProc) -> None:
    # Nothing on the wire: nothing to wait for (a lost reply of an earlier test counts until its
    # window has passed, as it should).
    wait_for(lambda: conn.request("fence", {"reason": "idle"})["inflight_until"] == 0, 15,
             "nothing of the trader's in flight")
    conn.request("unfence")
    # A create the exchange holds for 2 s (its matching engine is busy) is on the wire.
    conn.sim.control("latency", {"ms": 2000, "path": "/fapi/v1/order", "method": "POST"})
    result: dict[str, Any] = {}

    def send() -> None:
        req = bus.SyncRequester(conn.paths.connector, "trader3", ctx=conn.plumbing.ctx)
        try:
            result["reply"] = req.request("order.create", {
                "client_id": "f-4", "symbol": BTC, "side": "buy", "type": "market",
                "amount": 0.01}, 20)
        finally:
            req.close()

    t = threading.Thread(target=send)
    sent = time.time()
    t.start()
    try:
        wait_for(lambda: conn.sim.state()["in_flight"], 20, "the create held by the exchange")
        r = conn.request("fence", {"reason": "kill"})
    finally:
        t.join(30)
    # Bounded by its recvWindow (5 s) + 1 s of clock the exchange tolerates, from its sending.
    assert sent + 5.0 < r["inflight_until"] <= time.time() + 6.0, r
    assert result["reply"]["status"] == "closed"  # it did land
    # Answered: nothing of it is in flight any more.
    assert conn.request("fence", {"reason": "again"})["inflight_until"] == 0


def test_dms_disarm_only_when_told_and_refresh_waits_for_a_trader(conn: ConnectorProc) -> None:
    alive(conn)
    wait_for(lambda: set(conn.sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}, 20,
             "countdownCancelAll armed")
    r = conn.request("dms.disarm")
    assert set(r["disarmed"]) == {BTC, "ETH/USDT:USDT"} and r["mode"] == "countdown"
    assert conn.sim.state()["countdowns"] == {}
    st = conn.request("status")
    assert st["dms_armed"] == [] and st["dms_refreshing"] is False
    # Over three refresh intervals, with the last alive still fresh, nothing re-arms (an
    # absence can only be shown by waiting; the refresh is off by a flag, not by timing).
    n0 = conn.sim.state()["requests"].get("POST /fapi/v1/countdownCancelAll", 0)
    time.sleep(1.0)
    assert conn.sim.state()["countdowns"] == {}
    assert conn.sim.state()["requests"].get("POST /fapi/v1/countdownCancelAll", 0) == n0
    alive(conn)  # a trader again (the resumed one): refreshing resumes
    wait_for(lambda: set(conn.sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}, 20,
             "countdownCancelAll re-armed")


def test_a_ban_is_shared_through_the_run_dir_and_exported(conn: ConnectorProc) -> None:
    conn.sim.control("ban", {"seconds": 4, "status": 418, "retry_after": True})
    conn.request("sync", timeout=30)  # the first request is banned; the rest wait it out
    ban = conn.dir / "ban.json"
    assert stat.S_IMODE(os.stat(ban).st_mode) == 0o600
    hosts = json.loads(ban.read_text())["hosts"]
    host = conn.sim.url.split("/")[2]
    assert list(hosts) == [host] and hosts[host]["status"] == 418
    during = conn.sim.state()["ban"]["requests_during_ban"]
    assert during <= 3, during  # the connector's whole stack: one, plus a racing poll or two
    hb = wait_for(lambda: [m for m in conn.plumbing.sup("hb") if any(
        s[0] == "flatguard_exchange_banned_seconds" for s in m.get("metrics") or [])], 20,
        "the banned-seconds gauge in a heartbeat")
    assert hb
