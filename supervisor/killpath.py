"""The kill path's own exchange session, and its readiness proven with a signed read, regularly.

The session is built with the same venue as the connector's (``venue_for(exchange.id)``: the
same error rules, close quirks and conditional orders), REST only. A revoked key, a dead route
or a broken clock must be found now, not at kill time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from supervisor.errors import StartupError
from supervisor.flatten import Flattener
from trader.exchange.ban import BanBoard
from trader.kernel.config import ExchangeConfig

if TYPE_CHECKING:
    from supervisor.ports import KillPathPort

log = logging.getLogger("flatguard")

KILLPATH_PROOF_TIMEOUT = 20.0  # s; a proof that hangs this long counts as failed
KILLPATH_REALERT = 3600.0  # s between repeated "not ready" alerts while it stays broken


def open_flattener(xc: ExchangeConfig, key: str, secret: str, ban_board: BanBoard,
                   recv_window_ms: int) -> Flattener:
    """The kill path's session (not yet prepared): the venue's ccxt class at ``exchange.url``,
    its needed capabilities checked. Refuses (``StartupError``) an id without a venue module."""
    from trader.exchange.session import build_exchange  # ccxt: only the supervisor's up pays
    from trader.exchange.venues import UnsupportedVenue, missing_capabilities, venue_for

    try:
        venue = venue_for(xc.id)
    except UnsupportedVenue as e:
        raise StartupError(str(e)) from None
    exchange = build_exchange(
        venue.id, url=xc.url, ws_url=xc.ws_url, api_key=key, api_secret=secret,
        testnet=xc.testnet, pro=False, timeout_ms=int(xc.timeout * 1000), ban_board=ban_board)
    missing = missing_capabilities(exchange, venue.needs)
    if missing:  # nothing was sent yet: the session holds no connection to close
        raise StartupError(f"exchange.id = {xc.id!r}: the kill path's ccxt {exchange.id} lacks "
                           f"what the {venue.id} venue needs: {', '.join(missing)}")
    return Flattener(exchange, xc.symbols, recv_window_ms, venue=venue)


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
