"""Point 7 of the operations issue, end to end: ``flatguard_killpath_ready`` during an exchange
outage. /metrics of a real stack after a kill is checked by test_killswitch.py's SIGKILL test
(the same stack and kill); the in-process checks (the sample source over fake processes,
redaction) are in tests/unit/supervisor/test_metrics_truth.py."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.promtext import parsed, val

pytestmark = pytest.mark.integration




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
