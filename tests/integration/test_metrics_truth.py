"""Point 7 of the operations issue, end to end: /metrics of a real stack after a kill, and
``flatguard_killpath_ready`` during an exchange outage. The in-process checks (the sample
source over fake processes, redaction) are in tests/unit/supervisor/test_metrics_truth.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def val(series: dict[Any, float], name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))


# --- end to end: /metrics of a stack whose trader was killed ---------------------------------

def test_metrics_after_a_kill_e2e(sim: Any, stacks: list[Any]) -> None:
    from tests.stack import Stack, positions_of, seed_exposure, wait_for

    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\n[killswitch]\nbackoff = 0.5\n')
    stacks.append(st)
    st.start()
    first = parsed(st.metrics())
    assert val(first, "flatguard_killswitch_runs_total", trigger="trader_exit") == 0.0
    assert val(first, "flatguard_killswitch_rounds_total") == 0.0
    seed_exposure(sim)
    wait_for(lambda: val(parsed(st.metrics()), "flatguard_position_contracts",
                         symbol="BTC/USDT:USDT"), 60, "the position on /metrics")
    trader = int(st.status()["processes"]["trader"]["pid"])
    import os
    import signal

    os.kill(trader, signal.SIGKILL)
    wait_for(lambda: not positions_of(sim.state()) and st.status()["halted"], 60, "flat, halted")
    s = wait_for(lambda: (x := parsed(st.metrics())) and
                 val(x, "flatguard_trading_state", state="HALTED") == 1.0 and x, 30, "HALTED")
    assert val(s, "flatguard_up", process="trader") == 0.0
    assert val(s, "flatguard_heartbeat_age_seconds", process="trader") is None
    assert val(s, "flatguard_heartbeat_age_seconds", process="connector") is not None
    assert val(s, "flatguard_killswitch_runs_total", trigger="trader_exit") == 1.0
    assert val(s, "flatguard_equity") is not None  # the connector's view while halted
    wait_for(lambda: val(parsed(st.metrics()), "flatguard_position_contracts",
                         symbol="BTC/USDT:USDT") == 0.0, 30, "position 0 after the flatten")
    assert val(s, "flatguard_halted") == 1.0 and val(s, "flatguard_killpath_ready") == 1.0
    assert "?" not in st.metrics()


def test_killpath_ready_drops_within_seconds_of_an_outage_e2e(sim: Any, stacks: list[Any]) -> None:
    from tests.stack import Stack, wait_for

    st = Stack(f'[exchange]\nid = "sim"\nurl = "{sim.url}"\nreconcile_interval = 1\n'
               "[killswitch]\nbackoff = 1\n")  # check_interval stays 60 s
    stacks.append(st)
    st.start()
    assert val(parsed(st.metrics()), "flatguard_killpath_ready") == 1.0
    paths = ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk", "/fapi/v2/account",
             "/fapi/v3/account", "/fapi/v2/balance", "/fapi/v3/balance")
    t0 = time.monotonic()
    for p in paths:
        sim.control("fail", {"path": p, "count": 100_000, "status": 503})
    try:
        wait_for(lambda: val(parsed(st.metrics()), "flatguard_killpath_ready") == 0.0, 40,
                 "killpath_ready 0 during the outage")
        assert time.monotonic() - t0 < 40  # well before killswitch.check_interval (60 s)
    finally:
        sim.control("clear")
    wait_for(lambda: val(parsed(st.metrics()), "flatguard_killpath_ready") == 1.0, 40,
             "killpath_ready 1 once the exchange answers again")
