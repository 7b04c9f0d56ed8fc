"""The kill path's Flattener against an in-process simulated exchange: the exchange as it is.

Real ccxt session, real sim (Binance USDⓈ-M REST), no mocks: lot size and the maximum market
quantity, price protection (-4131) with the IOC fallback, partial fills, hedge mode, positions
and orders flatguard did not create, and the kill switch's round loop (alerts not flooding).
"""

from __future__ import annotations

import shutil
import time
from decimal import Decimal
from typing import Any

import aiohttp

from supervisor.flatten import Flattener
from supervisor.killswitch import KillSwitch
from tests.sim_harness import SimHarness
from tests.stack import short_dir
from trader.kernel.journal import Journal
from trader.kernel.metrics import Registry

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


def flattener(h: SimHarness, symbols: tuple[str, ...] = SYMBOLS) -> Flattener:
    f = Flattener(h.exchange(pro=False), symbols, 60000)
    h.run(f.prepare())
    return f


def ctl(h: SimHarness, action: str, **body: Any) -> Any:
    return h.run(h.control.call(action, **body))


def ctl_body(h: SimHarness, action: str, body: dict[str, Any]) -> Any:
    """For bodies with a "method" key (which ``SimControl.call`` takes for itself)."""
    async def post() -> Any:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{h.control.base_url}/_sim/{action}", json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()
    return h.run(post())


def sim_positions(h: SimHarness) -> dict[tuple[str, str], Decimal]:
    st = h.run(h.control.state())
    return {(p["symbol"], p["positionSide"]): Decimal(p["positionAmt"]) for p in st["positions"]
            if Decimal(p["positionAmt"]) != 0}


def closes(h: SimHarness) -> list[dict[str, Any]]:
    return [e for e in h.run(h.control.orders())
            if e["method"] == "POST" and e["path"] == "/fapi/v1/order"]


def test_position_above_max_market_qty_is_closed_in_several_reduce_only_orders(h) -> None:
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="5.5")  # MARKET_LOT_SIZE maxQty is 2
    r = h.run(f.round())
    assert r.flat and r.closes == 3
    sent = closes(h)
    assert [(e["type"], e["side"], e["quantity"], e["reduceOnly"]) for e in sent] == [
        ("MARKET", "SELL", "2", "true"), ("MARKET", "SELL", "2", "true"),
        ("MARKET", "SELL", "1.5", "true")]
    assert all(e["accepted"] and e["status"] == "FILLED" for e in sent)
    assert not sim_positions(h)
    assert h.run(f.verify()).flat  # a fresh read


def test_price_protection_falls_back_to_ioc_and_partial_fills_are_closed(h) -> None:
    """A thin book: 0.3 BTC at the touch, the next level beyond the PERCENT_PRICE band.
    A market close of 1.0 is refused (-4131); the IOC limit inside the band fills 0.3 and
    expires; the Flattener re-reads the position and closes the rest in the same round."""
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="-1.0")
    ctl(h, "liquidity", symbol="BTCUSDT", qty="0.3")
    mark = Decimal(h.run(h.control.state())["marks"]["BTCUSDT"])
    r = h.run(f.round())
    assert r.flat, r
    sent = closes(h)
    refused = [e for e in sent if e["type"] == "MARKET" and e["code"] == -4131]
    iocs = [e for e in sent if e["type"] == "LIMIT"]
    assert refused and iocs
    assert all(e["timeInForce"] == "IOC" and e["side"] == "BUY" and e["reduceOnly"] == "true"
               for e in iocs)
    # The IOC price is aggressive but inside the band (Binance refuses a limit outside it).
    for e in iocs:
        assert mark < Decimal(e["price"]) <= mark * Decimal("1.05") * Decimal("1.001")
    assert any(e["status"] == "EXPIRED" for e in iocs)  # partially filled, the rest expired
    assert not sim_positions(h)


def test_price_protection_with_no_liquidity_in_the_band_retries_next_round(h) -> None:
    """The touch itself is outside the band: market and IOC both cannot trade. The round
    reports what is still open (no exception), and a later round succeeds once it is back."""
    f = flattener(h)
    ctl(h, "position", symbol="ETHUSDT", amount="0.5")
    ctl(h, "freeze")
    mark = h.run(h.control.state())["marks"]["ETHUSDT"]
    ctl(h, "price", symbol="ETHUSDT", price=mark, spread="0.2")  # bid 10% under the mark
    r = h.run(f.round())
    assert not r.flat and r.positions and not r.error
    sent = closes(h)
    assert any(e["type"] == "MARKET" and e["code"] == -4131 for e in sent)
    assert any(e["type"] == "LIMIT" and e["timeInForce"] == "IOC" and e["status"] == "EXPIRED"
               for e in sent)
    ctl(h, "price", symbol="ETHUSDT", price=mark, spread="0.0001")
    assert h.run(f.round()).flat
    assert not sim_positions(h)


def test_hedge_mode_closes_each_side_with_its_position_side(h) -> None:
    f = flattener(h)
    ctl(h, "dual", dual=True)
    ctl(h, "position", symbol="BTCUSDT", amount="0.5", position_side="LONG")
    ctl(h, "position", symbol="BTCUSDT", amount="-2.5", position_side="SHORT")
    ctl(h, "position", symbol="ETHUSDT", amount="-0.3", position_side="SHORT")
    assert len(sim_positions(h)) == 3
    r = h.run(f.round())
    assert r.flat, r
    sent = closes(h)
    got = sorted((e["symbol"], e["positionSide"], e["side"], e["quantity"]) for e in sent)
    assert got == [("BTCUSDT", "LONG", "SELL", "0.5"), ("BTCUSDT", "SHORT", "BUY", "0.5"),
                   ("BTCUSDT", "SHORT", "BUY", "2"), ("ETHUSDT", "SHORT", "BUY", "0.3")]
    assert all("reduceOnly" not in e and e["accepted"] for e in sent)  # Binance refuses it
    assert not sim_positions(h)
    assert h.run(f.verify()).flat


def test_positions_and_orders_it_did_not_create_are_flattened(h) -> None:
    """One bot per account: a symbol outside exchange.symbols is flattened too; a configured
    symbol the exchange does not list does not make every round fail."""
    f = flattener(h, (*SYMBOLS, "DOGE/USDT:USDT"))
    ctl(h, "position", symbol="SOLUSDT", amount="-40")
    ctl(h, "order", symbol="SOLUSDT", side="BUY", type="LIMIT", quantity="10", price="100",
        timeInForce="GTC")
    r = h.run(f.round())
    assert r.flat and r.cancelled == 1, r
    st = h.run(h.control.state())
    assert not st["open_orders"] and not sim_positions(h)


def test_failed_rounds_are_counted_but_alerts_do_not_flood(h) -> None:
    f = flattener(h)
    ctl(h, "position", symbol="BTCUSDT", amount="0.01")
    ctl(h, "fail", path="/fapi/v1/openOrders", count=20, status=503)  # 2 reads per round
    run_dir = short_dir()
    journal = Journal(run_dir / "journal.db")
    alerts: list[tuple[str, str, str]] = []
    metrics = Registry()

    async def fence() -> None:
        return None

    try:
        keys: list[str | None] = []

        def alert(*a: str, key: str | None = None) -> None:
            alerts.append(a)
            keys.append(key)

        ks = KillSwitch(journal, f, 0.01, alert, metrics, fence, alert_every=4)
        run_id = journal.start_killswitch("command", "test")
        out = h.run(ks.flatten_until_verified(run_id, None, time.monotonic()), timeout=60)
        assert out.verified and out.rounds == 11
        failed = [a for a in alerts if a[1].startswith("Flatten round")]
        # First failure, then every 4th identical one: rounds 1, 5 and 9, not 9 alerts.
        assert [a[1] for a in failed] == ["Flatten round 1 not verified",
                                          "Flatten round 5 not verified",
                                          "Flatten round 9 not verified"]
        assert any(a[1].startswith("Account flat") for a in alerts)
        # One key for the run's repeats (they replace each other at the notifier); "Account
        # flat" has its own, so it is never merged away.
        failed_keys = {k for a, k in zip(alerts, keys, strict=True)
                       if a[1].startswith("Flatten round")}
        flat_keys = {k for a, k in zip(alerts, keys, strict=True)
                     if a[1].startswith("Account flat")}
        assert len(failed_keys) == 1 and len(flat_keys) == 1 and failed_keys != flat_keys
        samples = {(n, str(lbl)): v for n, lbl, v in metrics.samples()}
        assert samples[("flatguard_killswitch_rounds_total", "[]")] == 11
        assert ks.rounds_total == 11
    finally:
        journal.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_a_failed_cancel_does_not_stop_the_closes(h) -> None:
    f = flattener(h)
    ctl(h, "position", symbol="ETHUSDT", amount="0.4")
    ctl(h, "order", symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.002", price="50000",
        timeInForce="GTC")
    ctl_body(h, "fail", {"path": "/fapi/v1/allOpenOrders", "method": "DELETE", "count": 2,
                         "status": 503})
    r = h.run(f.round())
    assert not r.flat and r.open_orders and "ExchangeNotAvailable" in r.error, r
    assert not sim_positions(h)  # closed in the same round, despite the failed cancels
    assert h.run(f.round()).flat
