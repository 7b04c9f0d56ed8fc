"""The kill path's Flattener through the shared error taxonomy, its request count, and bans.

Real ccxt session against the in-process simulator (``h``): a close refused for stale filters
reloads the markets once and succeeds in the same round; a transient or fatal failure fails the
round with the taxonomy's description; a rate limit or ban stops the round at once; the requests
a round makes are counted (and match what the exchange received) and bounded.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from supervisor.flatten import Flattener
from tests.sim_harness import SimHarness
from tests.unit.supervisor.test_flatten_unit import (
    SYMBOLS,
    closes,
    ctl,
    ctl_body,
    flattener,
    sim_positions,
)

BTC, ETH = SYMBOLS


def received(h: SimHarness) -> dict[str, int]:
    """Requests the simulated exchange received, by "METHOD path"."""
    return dict(h.run(h.control.state())["requests"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_close_refused_for_a_lowered_max_market_qty_reloads_markets_and_splits(h) -> None:
    """The exchange lowered MARKET_LOT_SIZE since the markets were loaded (here: our copy says
    10, the exchange's is 2). The single close is refused (-4005, REJECTED with a filter code);
    the markets are reloaded and the position closed in three orders in the same round."""
    f = flattener(h)
    f.ex.markets[BTC]["limits"]["market"]["max"] = 10.0  # stale: loaded before the change
    ctl(h, "position", symbol="BTCUSDT", amount="5.5")
    before = received(h)
    r = h.run(f.round())
    assert r.flat and r.markets_reloaded and not r.error, r
    sent = closes(h)
    assert [(e["quantity"], e["code"]) for e in sent if not e["accepted"]] == [("5.5", -4005)]
    assert [e["quantity"] for e in sent if e["accepted"]] == ["2", "2", "1.5"]
    assert delta(before, received(h))["GET /fapi/v1/exchangeInfo"] == 1
    assert not sim_positions(h)


def test_remainder_below_a_stale_lot_step_reloads_markets(h) -> None:
    """Our step (0.01) is coarser than the exchange's (0.001): 0.125 closes as 0.12 and 0.005
    looks like dust. The exchange still holds it, so the markets are reloaded and the rest
    closed in the same round."""
    f = flattener(h)
    f.ex.markets[BTC]["precision"]["amount"] = 0.01
    ctl(h, "position", symbol="BTCUSDT", amount="0.125")
    r = h.run(f.round())
    assert r.flat and r.markets_reloaded, r
    assert [e["quantity"] for e in closes(h) if e["accepted"]] == ["0.12", "0.005"]


def test_market_reloads_are_bounded_per_round_and_in_time(h) -> None:
    """A filter refusal that a reload does not fix: one reload in the round, none in the next
    round within the interval; each round fails as REJECTED with the code, never raises."""
    f = flattener(h)
    ctl(h, "position", symbol="ETHUSDT", amount="0.4")
    ctl_body(h, "fail", {"path": "/fapi/v1/order", "method": "POST", "count": 3, "code": -1111})
    before = received(h)
    r1 = h.run(f.round())
    r2 = h.run(f.round())
    assert not r1.flat and r1.markets_reloaded and r1.failure == "rejected", r1
    assert "code -1111" in r1.error and "create_order" in r1.error
    assert not r2.flat and not r2.markets_reloaded, r2
    assert delta(before, received(h))["GET /fapi/v1/exchangeInfo"] == 1
    r3 = h.run(f.round())  # the fault is used up (3 refusals): the close goes through
    assert r3.flat, r3


def test_price_protection_still_goes_ioc_without_reloading(h) -> None:
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="-1.0")
    ctl(h, "liquidity", symbol="BTCUSDT", qty="0.3")
    r = h.run(f.round())
    assert r.flat and not r.markets_reloaded, r
    sent = closes(h)
    assert any(e["type"] == "MARKET" and e["code"] == -4131 for e in sent)
    assert any(e["type"] == "LIMIT" and e["timeInForce"] == "IOC" for e in sent)


def test_fatal_failure_fails_the_round_with_the_classification(h) -> None:
    """-2015 (key/IP/permissions) on the close: FATAL with the taxonomy's description; the
    round reports it (the kill switch keeps retrying) and a later round closes."""
    f = flattener(h)
    ctl(h, "position", symbol="ETHUSDT", amount="0.4")
    ctl_body(h, "fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1, "code": -2015})
    r = h.run(f.round())
    assert not r.flat and r.failure == "fatal" and not r.banned, r
    assert "create_order POST /fapi/v1/order: fatal" in r.error and "code -2015" in r.error
    assert r.positions
    assert h.run(f.round()).flat


def test_transient_failure_of_the_positions_read_fails_the_round(h) -> None:
    f = flattener(h)
    ctl(h, "position", symbol="ETHUSDT", amount="0.4")
    ctl_body(h, "fail", {"path": "/fapi/v3/positionRisk", "count": 1, "status": 503})
    r = h.run(f.round())
    assert not r.flat and r.failure == "transient" and "HTTP 503" in r.error, r
    assert sim_positions(h)  # nothing was closed blind
    assert h.run(f.round()).flat


def _seed_two_positions_two_orders(h: SimHarness) -> None:
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    ctl(h, "position", symbol="ETHUSDT", amount="-2")
    ctl(h, "order", symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.01", price="50000",
        timeInForce="GTC")
    ctl(h, "order", symbol="ETHUSDT", side="SELL", type="LIMIT", quantity="1", price="9000",
        timeInForce="GTC")


def test_requests_per_round_are_counted_and_bounded(h, capsys: Any) -> None:
    """Two positions and two orders on the two configured symbols. The count matches what the
    exchange received. Regular orders only: 1 orders read, 2 cancels, 1 positions read,
    2 closes, 1 positions re-read (the verify read), 1 orders verify read = 8; with the
    conditional kind: +1 read, +2 cancels, +1 verify read = 12."""
    f = flattener(h)
    _seed_two_positions_two_orders(h)
    before = received(h)
    r = h.run(f.round())
    got = delta(before, received(h))
    assert r.flat and r.cancelled == 2 and r.closes == 2, r
    assert r.requests == sum(got.values()), (r.requests, got)
    assert r.requests <= (12 if f.conditional else 8), got
    assert got.get("GET /fapi/v3/positionRisk") == 2  # read + verify, nothing redundant
    quiet = h.run(f.round())  # a flat account: reads and the configured cancels only
    assert quiet.flat and quiet.requests <= (9 if f.conditional else 5), quiet
    with capsys.disabled():
        print(f"\nkill path requests per round: 2 positions + 2 orders = {r.requests}, "
              f"flat account = {quiet.requests} (conditional={bool(f.conditional)}) {got}")


@pytest.mark.parametrize("fault", [{"code": -1003}, {"status": 418}, {"status": 429}],
                         ids=["code-1003", "http418", "http429"])
def test_a_ban_mid_round_stops_the_round(h, fault: dict[str, Any]) -> None:
    """The first close meets a rate limit / ban: nothing more is sent in that round (no second
    close, no re-read, no verify), and the round says banned. The next round, after the ban,
    goes flat."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    ctl(h, "position", symbol="ETHUSDT", amount="-2")
    ctl_body(h, "fail", {"path": "/fapi/v1/order", "method": "POST", "count": 1, **fault})
    before = received(h)
    r = h.run(f.round())
    got = delta(before, received(h))
    assert not r.flat and r.banned and r.failure == "banned", r
    assert r.error.startswith("banned"), r.error
    assert got["POST /fapi/v1/order"] == 1 and got["GET /fapi/v3/positionRisk"] == 1, got
    assert r.requests == sum(got.values())
    assert len(sim_positions(h)) == 2
    r2 = h.run(f.round())
    assert r2.flat and not r2.banned, r2


def test_a_ban_on_the_shared_board_is_not_sent_into(h) -> None:
    """The IP is banned (418 + Retry-After). With the stack's ban board on the session, the
    first round earns one 418 (recorded on the board); the next rounds send nothing at all --
    the board refuses before sending, even once the exchange itself has lifted the ban -- and
    say banned; after the board's ban, a round goes flat. The board runs on a fake clock, so
    the Retry-After is waited out by moving it, not in real time."""
    from trader.exchange.ban import BanBoard

    now = [time.time()]
    board = BanBoard(clock=lambda: now[0])
    f = Flattener(h.exchange(pro=False, ban_board=board), SYMBOLS, 60000)
    h.run(f.prepare())
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    ctl(h, "ban", seconds=30, status=418, retry_after=True)
    rounds = [h.run(f.round()) for _ in range(3)]  # refused rounds send nothing: instant
    assert all(r.banned and not r.flat for r in rounds), rounds
    assert [r.requests for r in rounds] == [1, 0, 0]
    assert "not sent" in rounds[1].error
    assert h.run(h.control.state())["ban"]["requests_during_ban"] == 1
    assert 29 < board.banned_for() <= 30  # the Retry-After, not the default 418 (120 s)
    ctl(h, "clear")  # the exchange ends its ban early: the board still holds ours
    now[0] += 29.5
    r = h.run(f.round())
    assert r.banned and not r.flat and r.requests == 0, r
    now[0] += 0.6  # past the Retry-After
    assert board.banned_for() == 0
    assert h.run(f.round()).flat


def test_close_refused_after_a_live_market_lot_size_change_succeeds_after_a_reload(h) -> None:
    """The exchange lowers MARKET_LOT_SIZE maxQty from 2 to 1 while a 1.5 position is open
    (``/_sim/filters``). Our filters say one order of 1.5: refused (-4005); the markets are
    reloaded and the position closes as 1 + 0.5 in the same round."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="1.5")
    ctl(h, "filters", symbol="BTCUSDT", marketMaxQty="1")
    r = h.run(f.round())
    assert r.flat and r.markets_reloaded and not r.error, r
    sent = closes(h)
    assert [(e["quantity"], e["code"]) for e in sent if not e["accepted"]] == [("1.5", -4005)]
    assert [e["quantity"] for e in sent if e["accepted"]] == ["1", "0.5"]
    assert not sim_positions(h)


def test_close_refused_after_a_live_step_size_change_is_retried_with_the_new_step(h) -> None:
    """The step grows from 0.001 to 0.01 under a 2.125 position. The close sized by our filters
    (2 then 0.125) meets -1111 on 0.125; after the reload it is retried on the new step (0.12)
    in the same round. The 0.005 left is below any order the exchange now accepts: the round
    says so (not flat, "below the lot step"), it does not pretend."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="2.125")
    ctl(h, "filters", symbol="BTCUSDT", stepSize="0.01", minQty="0.01")
    r = h.run(f.round())
    assert r.markets_reloaded, r
    sent = closes(h)
    assert [(e["quantity"], e["code"]) for e in sent if not e["accepted"]] == [("0.125", -1111)]
    assert [e["quantity"] for e in sent if e["accepted"]] == ["2", "0.12"]
    assert not r.flat and r.positions == ["BTC/USDT:USDT long 0.005"], r
    assert r.failure == "rejected" and "below the exchange's lot step" in r.error, r


def test_an_ip_ban_costs_the_round_one_request(h) -> None:
    """The exchange bans the IP (418 + Retry-After) before the round: the first request is
    answered 418 and nothing else is sent in that round."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    ctl(h, "ban", seconds=60, status=418, retry_after=True)
    r = h.run(f.round())
    assert not r.flat and r.banned and r.requests == 1, r
    assert "HTTP 418" in r.error
    assert h.run(h.control.state())["ban"]["requests_during_ban"] == 1
    ctl(h, "clear")
    assert h.run(f.round()).flat


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_position_size_never_looks_flat(h, value: str) -> None:
    """ccxt raises on a non-finite positionAmt/entryPrice: the read is FATAL (unknown), the
    round is not flat; once the exchange answers sanely the next round closes."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="0.5")
    ctl(h, "garbage", field="position", value=value, count=1)
    r = h.run(f.round())
    assert not r.flat and r.failure == "fatal" and "fetch_positions" in r.error, r
    assert sim_positions(h)
    assert h.run(f.round()).flat
