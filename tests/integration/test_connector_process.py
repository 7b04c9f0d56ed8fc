"""The connector as a real process against the real sim and ccxt: orders, errors, feed, start-up.

One connector (and sim) per module where the test leaves it usable; the tests that end in a
fatal state or need a special start get their own.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from tests.connector_harness import ConnectorProc, SimThread, wait_for
from trader.kernel import wire
from trader.kernel.bus import RequestError

pytestmark = pytest.mark.integration
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


@pytest.fixture(scope="module")
def conn() -> Iterator[ConnectorProc]:
    c = ConnectorProc()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "conn" in request.fixturenames:
        request.getfixturevalue("conn").sim.control("clear", {})


def order(c: ConnectorProc, cid: str, **kw: Any) -> Any:
    args = {"client_id": cid, "symbol": BTC, "side": "buy", "type": "market", "amount": 0.01, **kw}
    return c.request("order.create", args)


def accepted(c: ConnectorProc, cid: str) -> list[dict[str, Any]]:
    """Order requests with this client id that the sim accepted (its own request log)."""
    log = c.sim.control("orders")
    return [e for e in log if e.get("clientOrderId") == cid and e.get("method") == "POST"
            and e.get("accepted")]


def journal_row(c: ConnectorProc, sql: str, *args: Any) -> Any:
    db = sqlite3.connect(c.paths.journal)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def recv_until(sub: zmq.Socket[Any], pred: Any, timeout: float = 20) -> wire.Message:
    def one() -> wire.Message | None:
        if sub.poll(100):
            m = wire.decode(sub.recv_multipart())
            return m if pred(m) else None
        return None
    return wait_for(one, timeout, "an event", interval=0)


def test_order_round_trip_journal_and_events(conn: ConnectorProc) -> None:
    sub = conn.plumbing.subscriber(["fill.", "order.", "md."])
    recv_until(sub, lambda m: m.topic == f"md.{BTC}")  # market data flows over the bus
    r = order(conn, "rt-1")
    assert r["client_id"] == "rt-1" and r["status"] == "closed" and r["filled"] == pytest.approx(0.01)
    fill = recv_until(sub, lambda m: m.topic == f"fill.{BTC}" and m.data["client_id"] == "rt-1")
    assert fill.data["amount"] == pytest.approx(0.01)
    sub.close(0)
    rows = wait_for(lambda: [r for r in journal_row(
        conn, "SELECT status, exchange_id FROM orders WHERE client_id = 'rt-1'")
        if r[0] == "closed"], 20, "the order closed in the journal")
    assert rows[0][1] == r["id"]
    wait_for(lambda: journal_row(conn, "SELECT 1 FROM fills WHERE client_id = 'rt-1'"), 20,
             "the fill in the journal")
    acct = wait_for(lambda: (a := conn.request("account"))["positions"] and a, 20, "position")
    assert any(p["symbol"] == BTC and p["contracts"] > 0 for p in acct["positions"])


def test_rejected_order_is_refused_and_trading_continues(conn: ConnectorProc) -> None:
    conn.sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1,
                              "code": -2019})
    with pytest.raises(RequestError) as ei:
        order(conn, "rej-1")
    assert ei.value.kind == "rejected" and "-2019" in ei.value.message
    assert order(conn, "rej-2")["status"] == "closed"
    assert conn.request("status")["state"] == "RUNNING"


def test_bad_request_is_rejected_without_sending(conn: ConnectorProc) -> None:
    with pytest.raises(RequestError) as ei:
        order(conn, "bad id with spaces")
    assert ei.value.kind == "rejected"
    with pytest.raises(RequestError) as ei:
        order(conn, "bad-sym", symbol="DOGE/USDT:USDT")
    assert ei.value.kind == "rejected" and "not tradable" in ei.value.message


def test_create_refused_before_processing_is_not_placed_and_never_resent(conn: ConnectorProc) -> None:
    # A 503 before processing looks like an unknown outcome: looked up after its recvWindow,
    # not found, reported not placed -- never re-sent (tests/test_connector_orders.py has more).
    conn.sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1,
                              "status": 503})
    with pytest.raises(RequestError) as ei:
        order(conn, "tr-1")
    assert ei.value.kind == "rejected" and "not placed" in ei.value.message
    assert accepted(conn, "tr-1") == []
    assert order(conn, "tr-2")["status"] == "closed"


@pytest.mark.parametrize("fault", [{"code": -1007}, {"status": 504}])
def test_lost_reply_after_placement_no_duplicate(conn: ConnectorProc, fault: dict[str, int]) -> None:
    cid = f"lost-{abs(next(iter(fault.values())))}"
    conn.sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1,
                              "after": True, **fault})
    r = order(conn, cid, type="limit", price=50000.0)  # rests below the market
    assert r["client_id"] == cid and r["status"] == "open"
    assert len(accepted(conn, cid)) == 1
    conn.request("order.cancel", {"symbol": BTC, "client_id": cid})


def test_cancel_unknown_order_is_success(conn: ConnectorProc) -> None:
    r = conn.request("order.cancel", {"symbol": BTC, "client_id": "never-placed"})
    assert r["status"] == "gone"


def test_clock_skew_15s_orders_still_accepted(conn: ConnectorProc) -> None:
    conn.sim.control("skew", {"seconds": 15})
    assert order(conn, "skew-1")["status"] == "closed"  # -1021 -> resync -> accepted
    st = conn.request("status")
    assert st["clock_offset_s"] == pytest.approx(15, abs=1.0)
    wait_for(lambda: conn.plumbing.notes_matching("clock offset"), 10, "clock warning")


def test_ws_drop_reconnects_and_reconciles_nothing_lost(conn: ConnectorProc) -> None:
    before = conn.request("account")
    pos0 = sum(p["contracts"] for p in before["positions"] if p["symbol"] == ETH)
    conn.sim.control("drop_ws", {})
    r = order(conn, "ws-1", symbol=ETH, amount=0.1)  # placed around the gap
    assert r["status"] == "closed"
    conn.sim.control("drop_ws", {})
    wait_for(lambda: conn.request("status")["feed_connected"], 30, "feed reconnected")
    acct = wait_for(lambda: (a := conn.request("account")) and any(
        p["symbol"] == ETH and p["contracts"] == pytest.approx(pos0 + 0.1)
        for p in a["positions"]) and a, 30, "position after reconnect")
    assert acct["confirmed"] > before["confirmed"]  # a REST reconcile ran after the reconnect
    wait_for(lambda: journal_row(conn, "SELECT 1 FROM fills WHERE client_id = 'ws-1'"), 30,
             "the fill from the gap in the journal")


def test_status_and_dead_man_switch(conn: ConnectorProc) -> None:
    assert conn.req is not None
    for _ in range(3):
        conn.req.sock.send_multipart(conn.req.frames("alive", {"args": {}}))
    # armed one symbol after the other (a REST call each): wait for both, not for the first
    wait_for(lambda: len(conn.sim.state()["countdowns"]) == 2, 20, "countdownCancelAll armed")
    st = wait_for(lambda: (s := conn.request("status")) and set(s["dms_armed"]) == {BTC, ETH}
                  and s, 20, "both symbols armed in the connector's status")
    assert st["feed"] == "ws" and st["weight_used"] > 0


# --- fresh processes ----------------------------------------------------------------------


def test_unknown_code_is_fatal_halts_and_stops_trading() -> None:
    c = ConnectorProc()
    try:
        c.sim.control("fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1,
                               "code": -9999})
        with pytest.raises(RequestError) as ei:
            order(c, "unk-1")
        assert ei.value.kind == "fatal"
        halt = wait_for(lambda: c.plumbing.sup("halt"), 20, "halt request")[0]
        assert halt["trigger"] == "exchange_fatal" and "POST /fapi/v1/order" in halt["reason"]
        with pytest.raises(RequestError) as ei:
            order(c, "unk-2")
        assert ei.value.kind == "fatal"
        assert c.request("status")["state"] == "FATAL"
        assert "equity" in c.request("account")  # still served
    finally:
        c.close()


def test_seed_incident_account_endpoint_retired_404() -> None:
    c = ConnectorProc()
    try:
        for path in ("/fapi/v2/account", "/fapi/v3/account", "/fapi/v2/balance",
                     "/fapi/v3/balance"):
            c.sim.control("retire", {"path": path, "status": 404})
        with pytest.raises(RequestError) as ei:
            c.request("sync")
        assert ei.value.kind == "fatal"
        halt = wait_for(lambda: c.plumbing.sup("halt"), 20, "halt request")[0]
        assert "fetch_balance" in halt["reason"]
        assert "/account" in halt["reason"] or "/balance" in halt["reason"]
        alert = wait_for(lambda: [n for n in c.plumbing.notes if n.get("level") == "critical"],
                         20, "critical alert")[0]
        assert "fetch_balance" in alert["title"] and "/fapi/" in alert["title"]
    finally:
        c.close()


def test_adopts_position_and_resting_order_at_start() -> None:
    sim = SimThread(tick_interval=0.05)
    try:
        sim.control("position", {"symbol": "BTCUSDT", "amount": "0.02", "entry_price": "60000"})
        sim.control("order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                              "quantity": "0.01", "price": "50000", "timeInForce": "GTC",
                              "newClientOrderId": "manual-1"})
        c = ConnectorProc(sim)
        try:
            acct = c.request("account")
            kinds = {(a["kind"], a["symbol"]) for a in acct["adopted"]}
            assert kinds == {("position", BTC), ("order", BTC)}
            assert any(p["contracts"] == pytest.approx(0.02) for p in acct["positions"])
            assert any(o["client_id"] == "manual-1" for o in acct["open_orders"])
            wait_for(lambda: c.plumbing.notes_matching("adopted"), 10, "adoption warning")
        finally:
            c.close()
    finally:
        sim.close()


def test_key_file_mode_0644_refused() -> None:
    sim = SimThread()
    try:
        c = ConnectorProc(sim, start=False, key_file="/dev/null")
        kf = c.dir / "keys"
        kf.write_text("sim-key\nsim-secret\n")
        os.chmod(kf, 0o644)
        c.paths.config_json.write_text(c.paths.config_json.read_text().replace(
            '"/dev/null"', f'"{kf}"'))
        try:
            c.start(wait_ready=False)
            assert c.proc is not None
            assert c.proc.wait(60) != 0
            err = c.stderr()
            assert "mode 0644" in err and "chmod 600" in err
            assert "sim-secret" not in err
        finally:
            c.close()
    finally:
        sim.close()


def test_poll_feed_works_as_well_as_ws() -> None:
    c = ConnectorProc(feed="poll", poll_interval=0.2)
    try:
        assert c.request("status")["feed"] == "poll"
        sub = c.plumbing.subscriber(["md.", "fill."])
        recv_until(sub, lambda m: m.topic == f"md.{BTC}" and m.data["bid"])
        r = order(c, "poll-1")
        fill = recv_until(sub, lambda m: m.topic == f"fill.{BTC}")
        assert fill.data["client_id"] == "poll-1" and r["status"] == "closed"
        sub.close(0)
        wait_for(lambda: any(p["symbol"] == BTC for p in c.request("account")["positions"]),
                 20, "position via polling")
    finally:
        c.close()


def test_dead_man_switch_left_armed_on_sigterm() -> None:
    # Only the supervisor's dms.disarm (after a verified flat) disarms it; a SIGTERM or a lost
    # supervisor leaves it armed (tests/test_connector_fence.py covers dms.disarm).
    c = ConnectorProc(dms_interval=0.5, dms_timeout=600)
    try:
        assert c.req is not None
        c.req.sock.send_multipart(c.req.frames("alive", {"args": {}}))
        wait_for(lambda: len(c.sim.state()["countdowns"]) == 2, 20,  # one call per symbol
                 "countdownCancelAll armed on both symbols")
        assert c.stop() == 0
        assert set(c.sim.state()["countdowns"]) == {"BTCUSDT", "ETHUSDT"}
        assert "dead-man switch left armed; the exchange cancels all orders in" in c.stderr()
    finally:
        c.close()
