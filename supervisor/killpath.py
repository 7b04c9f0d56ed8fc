"""The kill path's readiness: its own exchange session proven with a signed read, regularly.

A revoked key, a dead route or a broken clock must be found now, not at kill time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.ports import KillPathPort

log = logging.getLogger("flatguard")

KILLPATH_PROOF_TIMEOUT = 20.0  # s; a proof that hangs this long counts as failed
KILLPATH_REALERT = 3600.0  # s between repeated "not ready" alerts while it stays broken


async def check(sup: KillPathPort) -> None:
    """Prove the kill path's own session with a signed read and fresh exchange time.

    Not ready two checks in a row: a critical alert (then again every KILLPATH_REALERT s while
    it stays broken), so a revoked key or a dead route is found now, not at kill time.
    """
    assert sup.flattener is not None
    if (sup.killswitch is not None and sup.killswitch.running) or sup._killpath_checking:
        return  # the flatten itself is the proof; never two proofs at once
    sup._killpath_checking = True
    try:
        await asyncio.wait_for(sup.flattener.prove(), KILLPATH_PROOF_TIMEOUT)
    except Exception as e:
        sup.killpath_failures += 1
        sup.killpath_ready = False
        log.error("kill path check failed (%d in a row): %s: %s", sup.killpath_failures,
                  type(e).__name__, e)
        every = max(1, round(KILLPATH_REALERT / sup.cfg.killswitch.check_interval))
        if sup.killpath_failures == 2 or (
                sup.killpath_failures > 2 and (sup.killpath_failures - 2) % every == 0):
            sup.alert("critical", "Kill path NOT ready",
                      f"the supervisor's own exchange session failed "
                      f"{sup.killpath_failures} checks in a row ({type(e).__name__}: "
                      f"{str(e)[:300]}); the kill switch may not be able to flatten. "
                      "Check the API key, the network and the clock.")
        return
    finally:
        sup._killpath_checking = False
    if sup.killpath_failures >= 2:
        sup.alert("warning", "Kill path ready again",
                  f"the supervisor's exchange session works again after "
                  f"{sup.killpath_failures} failed checks")
    elif sup.killpath_failures:
        log.info("kill path check ok again after 1 failure")
    sup.killpath_ready, sup.killpath_failures = True, 0
