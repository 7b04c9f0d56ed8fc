"""The ban board (trader/exchange/ban.py) and the weight shares (ratelimit.py).

Units with an injected ``now``; then the real ccxt against the sim's IP ban, in-process: two
exchange objects sharing one run-directory board play the connector and the kill path.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest
from ccxt.base.errors import BaseError

from tests.sim_harness import SimHarness
from trader.exchange import errors as E
from trader.exchange.ban import BAN_418_S, MARGIN_S, BanBoard, host_of, retry_after
from trader.exchange.calls import Guard, install_recorder
from trader.exchange.clock import ExchangeClock
from trader.exchange.ratelimit import RateLimits
from trader.exchange.venues import venue_for

H = "fapi.example:443"
T0 = (int(time.time()) // 60 + 1) * 60 + 10.0  # 10 s into a minute (near now: old bans are pruned)


def test_defaults_without_retry_after(tmp_path: Path) -> None:
    b = BanBoard.in_run_dir(tmp_path)
    assert b.banned_for(H, now=T0) == 0.0  # no file yet
    assert b.record(H, 418, None, now=T0) == pytest.approx(T0 + BAN_418_S)
    other = "other:1"
    until = b.record(other, 429, None, now=T0)
    assert until == pytest.approx(T0 + 50 + MARGIN_S)  # the next minute window, plus margin
    # the exchange's clock 20 s ahead: its minute ends 20 s earlier for us
    assert b.record("x:1", 429, None, offset_s=20.0, now=T0) == pytest.approx(T0 + 30 + MARGIN_S)
    assert b.banned_for(H, now=T0 + 60) == pytest.approx(BAN_418_S - 60)
    assert b.banned_for(None, now=T0) == pytest.approx(BAN_418_S)  # any host


def test_retry_after_is_honoured_and_a_ban_is_never_shortened(tmp_path: Path) -> None:
    b = BanBoard.in_run_dir(tmp_path)
    assert b.record(H, 429, 7.0, now=T0) == pytest.approx(T0 + 7)
    assert b.record(H, 429, 2.0, now=T0 + 1) == pytest.approx(T0 + 7)
    assert b.record(H, 418, 300.0, now=T0 + 2) == pytest.approx(T0 + 302)
    assert retry_after({"Retry-After": "12"}) == 12.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"Retry-After": "nan"}) is None
    assert retry_after(None) is None


def test_repeated_418_doubles_the_guess(tmp_path: Path) -> None:
    b = BanBoard.in_run_dir(tmp_path)
    u1 = b.record(H, 418, None, now=T0)
    u2 = b.record(H, 418, None, now=u1 + 1)  # banned again right after we resumed
    assert u2 - (u1 + 1) == pytest.approx(2 * BAN_418_S)


def test_shared_through_the_file_atomic_0600_and_garbage_tolerant(tmp_path: Path) -> None:
    a, b = BanBoard.in_run_dir(tmp_path), BanBoard.in_run_dir(tmp_path)  # two processes
    a.record(H, 418, 30.0)
    assert 29 < b.banned_for(H) <= 30
    path = tmp_path / "ban.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".ban.")]  # no temp left
    b.record("other:1", 429, 5.0)
    assert a.banned_for(H) > 29 and a.banned_for("other:1") > 4  # merged, not overwritten
    path.write_text("{not json")
    assert a.banned_for(H) == 0.0 and a.banned_for() == 0.0
    path.write_text('{"hosts": {"h": {"until": "tomorrow"}}, "x": 1}')
    assert a.banned_for("h") == 0.0
    a.record(H, 429, 3.0)  # a garbled file is replaced by a good one
    assert b.banned_for(H) > 2

BINANCE = venue_for("binanceusdm")


def test_host_of() -> None:
    assert host_of("https://fapi.binance.com/fapi/v1/order?x=1") == "fapi.binance.com"
    assert host_of("http://127.0.0.1:8123/fapi/v2/balance") == "127.0.0.1:8123"


def test_weight_shares_keep_the_kill_path_reserve() -> None:
    lim = RateLimits(limit=1000, headroom=0.8, reserve=0.25)
    assert lim.share == 750
    lim.observe(BINANCE.weight_used({"X-MBX-USED-WEIGHT-1M": "599"}) or 0)
    assert lim.delay(essential=False) == 0 and lim.delay(essential=True) == 0
    lim.observe(BINANCE.weight_used({"X-MBX-USED-WEIGHT-1M": "600"}) or 0)  # 0.8 x 750: polls wait
    assert lim.delay(essential=False) > 0 and lim.delay(essential=True) == 0
    # the reserve: even orders wait
    lim.observe(BINANCE.weight_used({"X-MBX-USED-WEIGHT-1M": "750"}) or 0)
    assert 0 < lim.delay(essential=True) <= 60.1
    assert RateLimits(limit=1000, reserve=0.0).share == 1000  # the kill path's view


def test_two_sessions_share_a_ban_and_nothing_is_sent_during_it(h: SimHarness,
                                                                tmp_path: Path) -> None:
    board_conn, board_kill = BanBoard.in_run_dir(tmp_path), BanBoard.in_run_dir(tmp_path)
    conn = h.exchange(pro=False, ban_board=board_conn)
    kill = h.exchange(pro=False, ban_board=board_kill)

    async def main() -> None:
        await conn.load_markets()
        await kill.load_markets()
        # 2 s: the Retry-After (whole seconds) must outlast the refusals below with room
        await h.control.call("ban", seconds=2, status=418, retry_after=True)
        with pytest.raises(BaseError) as ei:
            await conn.fetch_balance()  # the one request the exchange sees
        assert "418" in str(ei.value) or "-1003" in str(ei.value)
        assert 1 < board_kill.banned_for() <= 2.5
        for ex in (kill, conn):  # every session, the kill path's included: refused unsent
            with pytest.raises(BaseError) as ei:
                await ex.fetch_positions()
            assert type(ei.value).__name__ == "DDoSProtection", ei.value
            assert "not sent" in str(ei.value)
        assert (await h.control.state())["ban"]["requests_during_ban"] == 1
        # A guarded call waits the ban out instead of failing (and spends no budget).
        limits = RateLimits(board=board_conn)
        install_recorder(conn, limits)
        fatal: list[E.Classification] = []
        g = Guard(limits, ExchangeClock(conn), rules=BINANCE.rules, retry_budget=2,
                  retry_window=1.0, on_fatal=fatal.append)
        t0 = time.monotonic()
        bal = await g.call("fetch_balance", conn.fetch_balance)
        assert bal and not fatal and time.monotonic() - t0 > 1.0
        assert (await h.control.state())["ban"]["requests_during_ban"] == 1

    h.run(main(), timeout=30)


def test_a_429_without_retry_after_waits_for_the_next_minute(h: SimHarness,
                                                             tmp_path: Path) -> None:
    board = BanBoard.in_run_dir(tmp_path)
    ex = h.exchange(pro=False, ban_board=board)

    async def main() -> None:
        await ex.load_markets()
        await h.control.call("ban", seconds=1, status=429)
        with pytest.raises(BaseError):
            await ex.fetch_balance()
        left = board.banned_for()
        ex_now = time.time() - float(ex.options.get("timeDifference") or 0) / 1000
        assert left == pytest.approx(60 - ex_now % 60 + MARGIN_S, abs=0.5)
        await asyncio.sleep(0)

    h.run(main(), timeout=30)
