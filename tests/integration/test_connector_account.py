"""The connector process vouching for the account: listen-key loss, `fresh`, max_unconfirmed.

Real connector process, real sim (in a thread), real ccxt; the test plays the supervisor's
sockets only to observe (see ``test_connector_harness``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.connector_harness import ConnectorProc, wait_for
from tests.integration.test_connector_process import journal_row, order, recv_until

pytestmark = pytest.mark.integration
BTC = "BTC/USDT:USDT"


@pytest.fixture
def conn() -> Iterator[ConnectorProc]:
    c = ConnectorProc()
    try:
        yield c
    finally:
        c.close()


def test_listen_key_expired_recovers_reconciles_and_sees_later_orders(conn: ConnectorProc) -> None:
    wait_for(lambda: conn.request("status")["feed_connected"], 30, "feed subscribed")
    confirmed0 = conn.request("account")["confirmed"]
    posts = conn.sim.state()["requests"].get("POST /fapi/v1/listenKey", 0)
    conn.sim.control("expire_listen_keys", {})  # listenKeyExpired, then the key is gone
    wait_for(lambda: conn.request("status")["feed_restarts"] >= 1, 30, "user stream restarted")
    wait_for(lambda: conn.sim.state()["requests"].get("POST /fapi/v1/listenKey", 0) > posts,
             30, "a new listen key")
    st = wait_for(lambda: (s := conn.request("status"))["feed_connected"] and s, 30,
                  "feed reconnected")
    assert st["state"] == "RUNNING" and st["fatal"] is None
    wait_for(lambda: conn.request("account")["confirmed"] > confirmed0, 30,
             "a REST reconcile after the reconnect")
    sub = conn.plumbing.subscriber(["fill."], probe="md.")  # live before the order
    try:
        r = order(conn, "after-relisten")
        assert r["status"] == "closed"
        fill = recv_until(sub, lambda m: m.data.get("client_id") == "after-relisten")
        assert fill.data["amount"] == pytest.approx(0.01)
    finally:
        sub.close(0)
    wait_for(lambda: journal_row(conn, "SELECT 1 FROM fills WHERE client_id = 'after-relisten'"),
             20, "the fill in the journal")
    assert not conn.plumbing.sup("halt")


def test_fresh_is_live_with_the_feed_and_falls_back_when_it_is_down(conn: ConnectorProc) -> None:
    acct = wait_for(lambda: (a := conn.request("account"))["fresh"] > a["confirmed"] and a, 30,
                    "a live feed vouching past the last REST read")
    assert acct["fresh"] == pytest.approx(time.time(), abs=5)
    # The user stream cannot come back: its key expires and no new one can be had.
    conn.sim.control("fail", {"path": "/fapi/v1/listenKey", "method": "POST", "count": 100000,
                              "status": 503})
    conn.sim.control("expire_listen_keys", {})
    wait_for(lambda: not conn.request("status")["feed_connected"], 30, "feed down")
    acct = conn.request("account")
    assert acct["fresh"] == acct["confirmed"] > 0  # only what REST confirmed
    # REST keeps confirming while the feed is down: fresh moves on, never past a REST read.
    c0 = acct["confirmed"]
    acct = wait_for(lambda: (a := conn.request("account"))["confirmed"] > c0 and a, 30,
                    "a reconcile while the feed is down")
    assert acct["fresh"] == acct["confirmed"]
    assert conn.request("status")["state"] == "RUNNING"  # a feed outage alone is not fatal
    conn.sim.control("clear", {})
    wait_for(lambda: conn.request("status")["feed_connected"], 30, "feed back")
    wait_for(lambda: (a := conn.request("account"))["fresh"] > a["confirmed"], 30, "live again")


def test_fresh_in_poll_mode_is_the_last_successful_rest_read() -> None:
    c = ConnectorProc(feed="poll", poll_interval=0.2)
    try:
        a1 = wait_for(lambda: (a := c.request("account"))["confirmed"] > 0 and a, 30, "confirmed")
        assert a1["fresh"] == a1["confirmed"]
        a2 = wait_for(lambda: (a := c.request("account"))["confirmed"] > a1["confirmed"] and a,
                      30, "the next poll confirmed")
        assert a2["fresh"] == a2["confirmed"]
        for _ in range(3):  # every snapshot, whatever the moment: no more than REST confirmed
            a = c.request("account")
            assert a["fresh"] == a["confirmed"] <= time.time()
    finally:
        c.close()


def test_unconfirmed_too_long_is_fatal_and_halts() -> None:
    # A large retry budget so only exchange.max_unconfirmed can end it.
    c = ConnectorProc(max_unconfirmed=3.0, reconcile_interval=0.5, retry_budget=100000,
                      retry_window=3600.0)
    try:
        c.sim.control("retire", {"path": "/fapi/v3/account", "status": 503})
        halt = wait_for(lambda: c.plumbing.sup("halt"), 60, "halt request")[0]
        assert halt["trigger"] == "exchange_fatal" and "unconfirmed" in halt["reason"]
        st = c.request("status")
        assert st["state"] == "FATAL" and "max_unconfirmed" in st["fatal"]
        alert = wait_for(lambda: c.plumbing.notes_matching("exchange fatal"), 20, "alert")[0]
        assert alert["level"] == "critical"
        assert "equity" in c.request("account")  # still served to the kill path's readers
    finally:
        c.close()


def test_ws_url_is_used_and_a_dead_stream_is_not_fatal() -> None:
    """exchange.ws_url, not a base derived from url, is where the feed connects: pointed at a
    closed port, the feed never comes up; REST keeps trading and confirming the account."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = ConnectorProc(ws_url=f"ws://127.0.0.1:{port}/ws")
    try:
        assert order(c, "no-ws-1")["status"] == "closed"  # REST works
        c0 = c.request("account")["confirmed"]
        a = wait_for(lambda: (x := c.request("account"))["confirmed"] > c0 and x, 30,
                     "REST reconciles while the stream is down")
        st = c.request("status")
        assert not st["feed_connected"] and st["state"] == "RUNNING"
        assert a["fresh"] == a["confirmed"]
        assert not c.plumbing.sup("halt")
    finally:
        c.close()
