"""The connector inside the whole stack: ``flatguard up`` against a standalone sim, trading.

Each test is one real ``flatguard up`` (supervisor, trader, connector, notifier, commander as
OS processes) pointed at its own ``flatguard sim`` process by ``exchange.url``; faults are
injected through the sim's control API; everything is observed through public interfaces (the
supervisor and connector sockets, ``ctl``, the sim's state and signed REST API, the journal).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from tests.stack import Sim, Stack, is_flat, positions_of, wait_for
from trader.exchange.session import build_exchange
from trader.kernel.journal import Journal
from trader.sim.state import SIM_API_KEY, SIM_API_SECRET

pytestmark = pytest.mark.integration
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
# The demo strategy, fast: re-quotes and crosses the spread every ~1 s, so fills come quickly.
FAST_DEMO = '[strategy]\nname = "demo"\ntick_interval = 0.2\n[strategy.params]\nrequote = 1.0\noffset = 0.0005\n'


def config(sim: Sim, exchange: str = "") -> str:
    return f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{exchange}\n{FAST_DEMO}'


def sim_trade_ids(url: str) -> set[str]:
    """Every fill on the sim's account, read through its signed REST API (userTrades)."""
    async def read() -> set[str]:
        ex = build_exchange("binanceusdm", url=url, api_key=SIM_API_KEY, api_secret=SIM_API_SECRET)
        try:
            await ex.load_markets()
            ids: set[str] = set()
            for sym in SYMBOLS:
                ids |= {str(t["id"]) for t in await ex.fetch_my_trades(sym, None, 1000)}
            return ids
        finally:
            await ex.close()
    return asyncio.run(read())


def journal_fills(st: Stack) -> set[str]:
    db = sqlite3.connect(st.paths.journal)
    try:
        return {r[0] for r in db.execute("SELECT trade_id FROM fills")}
    finally:
        db.close()


def halt_in_journal(st: Stack) -> bool:
    j = Journal(st.paths.journal, create=False)
    try:
        return j.halt_state().halted
    finally:
        j.close()


def connector_status(st: Stack) -> dict[str, Any]:
    return st.request(st.paths.connector, "status")


def trading(st: Stack, sim: Sim, fills: int = 2) -> None:
    wait_for(lambda: len(sim_trade_ids(sim.url)) >= fills, 60, f"{fills} fills at the sim",
             interval=0.3)
    wait_for(lambda: positions_of(sim.state()) or sim.state()["open_orders"], 30, "exposure")


def halted_flat(st: Stack, sim: Sim, timeout: float = 90) -> dict[str, Any]:
    status = wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"] and s,
                      timeout, "halted and verified flat")
    assert is_flat(sim.state()), sim.state()
    return status


def test_seed_incident_account_endpoint_retired(sim: Sim, stacks: list[Stack]) -> None:
    """The endpoint the connector reads the account from is retired (HTTP 404, no body):
    fatal, not "retry me" -> kill switch -> flat and halted, the alert naming the endpoint.
    The kill path does not need that endpoint to flatten."""
    st = Stack(config(sim, "reconcile_interval = 1.0"))
    stacks.append(st)
    st.start()
    trading(st, sim)
    sim.control("retire", {"path": "/fapi/v3/account", "status": 404})
    status = halted_flat(st, sim)
    assert status["halt"]["trigger"] == "exchange_fatal"
    assert "/fapi/v3/account" in status["halt"]["reason"]
    line = wait_for(lambda: st.find("/fapi/v3/account"), 30, "the endpoint on the console")
    assert "fetch_balance" in st.output() and line
    assert connector_status(st)["state"] == "FATAL"
    assert st.stop() == 0, st.output()  # stopping a halted, verified-flat stack is clean
    assert is_flat(sim.state())
    assert halt_in_journal(st)  # ... and the halt is durable: the next `up` starts halted


def test_account_unconfirmed_too_long_halts_flat(sim: Sim, stacks: list[Stack]) -> None:
    """REST reads of the account keep failing (transient, within a huge retry budget) for
    longer than exchange.max_unconfirmed: fatal -> halt -> the kill switch, whose own session
    does not use that endpoint to flatten, takes the account flat."""
    st = Stack(config(sim, "reconcile_interval = 0.5\nmax_unconfirmed = 3.0\n"
                           "retry_budget = 100000\nretry_window = 3600.0"))
    stacks.append(st)
    st.start()
    trading(st, sim)
    sim.control("retire", {"path": "/fapi/v3/account", "status": 503})
    status = halted_flat(st, sim)
    assert status["halt"]["trigger"] == "exchange_fatal"
    assert "unconfirmed" in status["halt"]["reason"]
    assert "max_unconfirmed" in (connector_status(st)["fatal"] or "")
    sim.control("clear", {})
    assert st.stop() == 0, st.output()
    assert is_flat(sim.state()) and halt_in_journal(st)


def test_poll_feed_trades_sees_fills_and_stops_flat(sim: Sim, stacks: list[Stack]) -> None:
    st = Stack(config(sim, 'feed = "poll"\npoll_interval = 0.3'))
    stacks.append(st)
    st.start()
    assert connector_status(st)["feed"] == "poll"
    trading(st, sim, fills=3)
    wait_for(lambda: len(journal_fills(st)) >= 3, 60, "fills seen by polling, in the journal")
    assert st.stop() == 0, st.output()
    assert is_flat(sim.state())


def test_ws_drops_reconnect_and_nothing_is_lost(sim: Sim, stacks: list[Stack]) -> None:
    """`feed = "auto"` picks the WebSocket for binanceusdm; ws_url given explicitly reaches the
    connector (and url the kill path, which flattens at the end). Drop every socket several
    times while trading: the feed reconnects and reconciles, and after a sync every fill on
    the sim's account is in the journal."""
    ws_url = "ws" + sim.url[len("http"):] + "/ws"
    st = Stack(config(sim, f'feed = "auto"\nws_url = "{ws_url}"'))
    stacks.append(st)
    st.start()
    wait_for(lambda: connector_status(st)["feed_connected"], 30, "the WebSocket feed")
    assert connector_status(st)["feed"] == "ws"
    trading(st, sim)
    for i in range(3):
        seen = len(sim_trade_ids(sim.url))
        assert sim.control("drop_ws")["dropped"] > 0
        wait_for(lambda n=seen: len(sim_trade_ids(sim.url)) > n, 60, f"fills after drop {i}",
                 interval=0.3)
        wait_for(lambda: connector_status(st)["feed_connected"], 30, f"reconnect {i}")
    assert connector_status(st)["state"] == "RUNNING"
    at_sim = sim_trade_ids(sim.url)
    sync = st.ctl_json("sync")
    assert "differences" in sync
    missing = at_sim - journal_fills(st)
    assert not missing, f"fills on the exchange missing from the journal: {sorted(missing)}"
    assert not st.status()["halted"]
    assert st.stop() == 0, st.output()
    assert is_flat(sim.state())
