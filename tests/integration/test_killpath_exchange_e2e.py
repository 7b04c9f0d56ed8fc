"""The kill path against what the exchange does to it, end to end (real processes, the sim):

- an IP ban (418 + Retry-After) as the kill starts: the whole stack sends at most 3 requests
  during the ban, and the account is flat after it;
- a resting conditional (STOP_MARKET algo) order is cancelled and can never re-open a position;
- NaN numbers from the exchange never reach the trader (no order priced from them);
- a second run of the built-in simulator in the same run directory: its fills reach the strategy.
"""

from __future__ import annotations

import math
import re

import pytest

from tests.stack import Sim, Stack, is_flat, positions_of, seed_exposure, short_dir, wait_for

pytestmark = pytest.mark.integration

FAST = """
[supervisor]
connector_grace = 3.0
[killswitch]
backoff = 0.5
watch_after = 0
"""


def make_stack(sim: Sim, stacks: list[Stack], extra: str = "") -> Stack:
    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n{extra}{FAST}')
    stacks.append(st)
    return st


def metric_values(st: Stack, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", st.metrics(), re.M)]


def test_an_ip_ban_at_the_kill_is_waited_out_not_hammered(sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    seed_exposure(sim)
    sim.control("ban", {"seconds": 8, "status": 418, "retry_after": True})
    assert st.ctl("kill").returncode == 0
    wait_for(lambda: st.find("banned for"), 30, "the kill path saying it waits out the ban")
    wait_for(lambda: is_flat(sim.state()), 60, "the account flat after the ban")
    ban = sim.state()["ban"]
    assert ban["requests_during_ban"] <= 3, ban
    wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"], 30,
             "HALTED, verified flat")


def test_a_resting_stop_order_is_cancelled_and_never_reopens_a_position(
        sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    sim.control("freeze")  # the random walk must not trigger the stop before the test does
    mark = float(sim.state()["marks"]["BTCUSDT"])
    sim.control("position", {"symbol": "BTCUSDT", "amount": "0.01"})
    # A stop that buys back in if the price rises: exactly what re-opens a position after "flat".
    sim.control("algo", {"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET",
                         "quantity": "0.01", "triggerPrice": f"{mark * 1.01:.1f}",
                         "workingType": "MARK_PRICE"})
    assert sim.state()["open_algo_orders"]
    assert st.ctl("kill").returncode == 0
    wait_for(lambda: (s := st.status())["halted"] and s["halt"]["verified_flat"], 60,
             "HALTED, verified flat")
    state = sim.state()
    assert not state["open_algo_orders"] and is_flat(state), state["open_algo_orders"]
    assert all(a["algoStatus"] == "CANCELED" for a in state["algo_orders"]), state["algo_orders"]
    sim.control("price", {"symbol": "BTCUSDT", "price": f"{mark * 1.03:.1f}"})
    assert not positions_of(sim.state())


def test_nan_numbers_from_the_exchange_never_reach_the_trader(
        sim: Sim, stacks: list[Stack]) -> None:
    st = make_stack(sim, stacks).start()
    wait_for(lambda: sim.state()["orders_received"] > 0, 60, "the demo strategy trading")
    sim.control("garbage", {"field": "mark", "value": "NaN"})
    sim.control("garbage", {"field": "equity", "value": "NaN"})
    wait_for(lambda: sum(metric_values(st, "flatguard_exchange_bad_numbers_total")) > 0, 60,
             "the connector refusing the NaN numbers (counted)")
    n0 = len(sim.control("orders"))
    wait_for(lambda: sum(metric_values(st, "flatguard_exchange_bad_numbers_total")) > 5, 60,
             "more NaN numbers refused")
    for e in sim.control("orders")[n0:]:
        price = e.get("price")
        assert price is None or math.isfinite(float(price)), e
    assert all(math.isfinite(v) for v in metric_values(st, "flatguard_equity"))
    assert not st.status()["halted"] or st.status()["halt"]["trigger"] == "exchange_fatal"


def test_a_second_sim_run_in_the_same_run_dir_delivers_its_fills(stacks: list[Stack]) -> None:
    """The built-in sim twice in one run directory: before, its trade ids restarted at the same
    numbers and the journal keyed fills by trade id alone, so no fill of the second run reached
    the strategy or the loop detector."""
    run_dir = short_dir()
    # The built-in sim dies with each run: its positions need no flatten (shutdown = "leave"
    # skips 3-5 s of fence, close and verification that this test is not about).
    leave = '[supervisor]\nshutdown = "leave"\n'
    first = Stack(leave, run_dir=run_dir)
    stacks.append(first)
    first.start()
    wait_for(lambda: first.find("fill symbol="), 60, "a fill in the first run")
    assert first.stop() == 0, first.output()
    second = Stack(leave, run_dir=run_dir)
    stacks.append(second)
    second.start()
    wait_for(lambda: second.find("fill symbol="), 60, "a fill of the second run at the strategy")
    assert not second.find("fill_conflict"), second.output()
