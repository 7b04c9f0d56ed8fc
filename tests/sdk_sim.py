"""Fixtures for the conformance suites: a simulator on its own thread, Binance's official
USDⓈ-M SDK pointed at it (loopback only), and a check that the SDK never had to fall back
from its response models ("did not match" / "Failed to parse") and the sim logged no bug."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.sim_harness import ThreadedSim

if TYPE_CHECKING:
    from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
        DerivativesTradingUsdsFutures,
    )

# What the SDK logs when a reply does not fit its models (binance_common.utils.send_request)
# or a stream message fails validation (binance_common.websocket: "Error in callback").
SDK_COMPLAINTS = ("did not match", "Failed to parse", "Error in callback",
                  "Error received from server")


@pytest.fixture
def t(caplog: pytest.LogCaptureFixture) -> Iterator[ThreadedSim]:
    caplog.set_level(logging.WARNING)
    sim = ThreadedSim()
    try:
        sim.call("freeze")  # prices move only when a test sets them
        yield sim
        assert sim.state()["bugs"] == 0, "the simulator logged a bug (SIM BUG in the log)"
    finally:
        sim.close()
    records = caplog.get_records("setup") + caplog.get_records("call")
    complaints = [r.getMessage() for r in records
                  if any(c in r.getMessage() for c in SDK_COMPLAINTS)]
    assert complaints == []


def sdk_client(sim: ThreadedSim, **rest: Any) -> DerivativesTradingUsdsFutures:
    """The SDK as a user configures it, with the base path and stream URL on the sim."""
    # Imported here, not at collection: its models take ~1.8 s of CPU to import, paid then
    # only by the pytest worker that runs a conformance test.
    from binance_common.configuration import (
        ConfigurationRestAPI,
        ConfigurationWebSocketStreams,
    )
    from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
        DerivativesTradingUsdsFutures,
    )

    cfg = sim.sim.config
    rest.setdefault("api_key", cfg.api_key)
    rest.setdefault("api_secret", cfg.api_secret)
    return DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(base_path=sim.url, timeout=10_000, retries=0,
                                             **rest),
        config_ws_streams=ConfigurationWebSocketStreams(
            stream_url=sim.url.replace("http://", "ws://"), reconnect_delay=500))


@pytest.fixture
def sdk(t: ThreadedSim) -> Any:
    return sdk_client(t).rest_api


def signed(sim: ThreadedSim, method: str, path: str, query: str = "",
           body: str = "") -> requests.Response:
    """A request signed over exactly the bytes it sends (query as sent + body), as Binance
    asks; ``query``/``body`` are sent verbatim (already percent-encoded)."""
    stamp = f"timestamp={int(time.time() * 1000)}"
    query = f"{query}&{stamp}" if query else stamp
    cfg = sim.sim.config
    sig = hmac.new(cfg.api_secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    return requests.request(method, f"{sim.url}{path}?{query}&signature={sig}", data=body,
                            headers={"X-MBX-APIKEY": cfg.api_key, "Content-Type":
                                     "application/x-www-form-urlencoded"}, timeout=10)
