"""The kill switch's proof, in process: a real Flattener and ccxt session against the in-process
simulated exchange, the real journal, and the KillSwitch's own loop.

- An order in flight when the kill starts lands after the first flat-looking round: the verdict
  waits for the in-flight bound and closes what landed.
- Our own I/O (the journal) failing inside the kill switch never stops the flatten.
- After a verified flatten the halted account is watched; exposure that appears is flattened.
- A run that ended unverified asks to be restarted (the supervisor's watchdog).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from supervisor.flatten import Flattener
from supervisor.killswitch import KillSwitch
from tests.sim_harness import SimHarness
from trader.kernel.journal import Journal
from trader.kernel.metrics import Registry

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


class Alerts:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, str, str | None]] = []

    def __call__(self, level: str, title: str, text: str, key: str | None = None) -> None:
        self.got.append((level, title, text, key))

    def titles(self) -> list[str]:
        return [a[1] for a in self.got]




def make(h: SimHarness, journal: Journal, alerts: Alerts, metrics: Registry,
         **kw: Any) -> KillSwitch:
    f = Flattener(h.exchange(pro=False), SYMBOLS, 60000)
    h.run(f.prepare())

    async def fence() -> None:
        return None

    return KillSwitch(journal, f, kw.pop("backoff", 0.1), alerts, metrics, fence, **kw)


def metric(metrics: Registry, name: str, **labels: str) -> float | None:
    want = sorted([k, v] for k, v in labels.items())
    return next((v for n, lbl, v in metrics.samples() if n == name and lbl == want), None)


def positions(h: SimHarness) -> dict[str, Decimal]:
    st = h.run(h.control.state())
    return {p["symbol"]: Decimal(p["positionAmt"]) for p in st["positions"]
            if Decimal(p["positionAmt"]) != 0}


def test_an_order_in_flight_at_the_kill_is_caught_by_the_proof(h: SimHarness,
                                                                journal: Journal) -> None:
    """New orders take 0.7 s to be processed; a market buy is on its way when the kill starts.
    The first round sees nothing and must not be the verdict."""
    alerts, metrics = Alerts(), Registry()
    ks = make(h, journal, alerts, metrics)
    h.run(h.control.call("latency", ms=700, path="/fapi/v1/order"))
    trader = h.exchange(pro=False)

    async def scenario() -> tuple[Any, float]:
        await trader.load_markets()
        buy = asyncio.ensure_future(trader.create_order(
            "BTC/USDT:USDT", "market", "buy", 0.01, None, {"recvWindow": 1400}))
        deadline = time.monotonic() + 10
        while (await h.control.state())["requests"].get("POST /fapi/v1/order", 0) < 1:
            assert time.monotonic() < deadline, "the buy never reached the exchange"
            await asyncio.sleep(0.01)
        signed_until = time.time() + 1.4  # the buy's timestamp + its recvWindow, at the latest
        ks.inflight_until = signed_until  # what the connector's fence reports
        run_id = journal.start_killswitch("command", "test")
        out = await ks.flatten_until_verified(run_id, None, time.monotonic())
        await buy
        return out, signed_until

    out, bound = h.run(scenario(), timeout=60)
    assert out.verified and out.rounds >= 2, out
    assert not positions(h), positions(h)  # the buy landed and was closed
    closes = [e for e in h.run(h.control.orders())
              if e["method"] == "POST" and e.get("side") == "SELL" and e.get("accepted")]
    assert closes, "the landed buy was never closed: the proof did not wait for it"
    assert any(e.get("side") == "BUY" and e.get("accepted") for e in h.run(h.control.orders()))
    assert time.time() >= bound  # the verdict came after the bound
    assert any("Account flat" in t for t in alerts.titles())


def test_a_failing_journal_never_stops_the_flatten(h: SimHarness, journal: Journal) -> None:
    alerts, metrics = Alerts(), Registry()
    ks = make(h, journal, alerts, metrics)
    h.run(h.control.call("position", symbol="BTCUSDT", amount="0.01"))
    journal.db.close()  # every journal call now raises

    async def scenario() -> Any:
        assert ks.trigger("command", "test")
        assert ks.task is not None
        return await ks.task

    out = h.run(scenario(), timeout=60)
    assert out.verified and not positions(h)
    assert ks.io_errors >= 2  # HALTED, the run's bookkeeping...
    assert any(a[1] == "Kill switch: journal/IO failure" and a[0] == "critical"
               for a in alerts.got), alerts.titles()
    assert any("Account flat" in t for t in alerts.titles())
    assert (metric(metrics, "flatguard_journal_errors_total", process="supervisor") or 0) >= 2


def test_exposure_after_a_verified_flatten_is_flattened_by_the_watch(
        h: SimHarness, journal: Journal) -> None:
    alerts, metrics = Alerts(), Registry()
    ks = make(h, journal, alerts, metrics, watch_after=30.0, backoff=0.2)
    h.run(h.control.call("position", symbol="ETHUSDT", amount="-0.2"))

    async def scenario() -> None:
        assert ks.trigger("command", "test")
        assert ks.task is not None
        assert (await ks.task).verified
        assert ks.watching
        # Something lands on the halted account (an order nobody could see at the kill).
        await h.control.call("position", symbol="BTCUSDT", amount="0.02")
        deadline = time.monotonic() + 30
        while not any(t == "Exposure after verified flat" for t in alerts.titles()):
            assert time.monotonic() < deadline, alerts.titles()
            await asyncio.sleep(0.05)
        while ks.flattening or not any(t.startswith("Account flat") for t in
                                       alerts.titles()[alerts.titles().index(
                                           "Exposure after verified flat"):]):
            assert time.monotonic() < deadline, alerts.titles()
            await asyncio.sleep(0.05)
        ks.stop_watching()

    h.run(scenario(), timeout=60)
    assert not positions(h)
    assert metric(metrics, "flatguard_killswitch_watch_flattens_total") == 1
    assert journal.halt_state().verified_flat


def test_a_run_that_raised_asks_the_watchdog_to_restart_it(h: SimHarness,
                                                           journal: Journal) -> None:
    alerts, metrics = Alerts(), Registry()
    ks = make(h, journal, alerts, metrics)

    async def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("a bug below the round loop")

    ks.flatten_until_verified = broken  # type: ignore[method-assign]

    async def scenario() -> None:
        ks.trigger("command", "test")
        assert ks.task is not None
        with pytest.raises(RuntimeError):
            await ks.task

    h.run(scenario())
    assert ks.needs_restart() and not ks.running
