"""``exchange.testnet`` and the URL overrides, checked on the pinned ccxt (no network).

Both the connector (``trader/connector/startup.py``) and the supervisor's kill path
(``supervisor/app.py``) build their session with ``build_exchange(id, url=, ws_url=,
testnet=)``, so what holds here holds for both.
"""

from __future__ import annotations

import pytest

from trader.exchange.session import build_exchange


def _urls(value: object) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("pro", [False, True])
def test_bybit_testnet_uses_sandbox_urls(pro: bool) -> None:
    ex = build_exchange("bybit", testnet=True, pro=pro, api_key="k", api_secret="s")
    rest = [ex.implode_hostname(u) for u in _urls({k: v for k, v in ex.urls["api"].items()
                                                    if k != "ws"})]
    assert rest and all(u.startswith("https://api-testnet.bybit.com") for u in rest), rest
    if pro:
        ws = _urls(ex.urls["api"]["ws"])
        assert ws and all("stream-testnet." in u for u in ws), ws
    assert ex.enableRateLimit  # a real exchange: ccxt's limiter stays on


@pytest.mark.parametrize("pro", [False, True])
def test_okx_testnet_is_demo_trading(pro: bool) -> None:
    ex = build_exchange("okx", testnet=True, pro=pro, api_key="k", api_secret="s")
    # OKX's demo trading: the same REST host, flagged by a header on every request.
    assert ex.headers.get("x-simulated-trading") == "1"
    if pro:
        assert ex.urls["api"]["ws"].startswith("wss://wspap.okx.com")
    assert ex.enableRateLimit


@pytest.mark.parametrize("pro", [False, True])
def test_binanceusdm_testnet_is_demo_trading(pro: bool) -> None:
    ex = build_exchange("binanceusdm", testnet=True, pro=pro, api_key="k", api_secret="s")
    api = ex.urls["api"]
    fapi = [v for k, v in api.items() if k.startswith("fapi")]
    assert fapi and all(u.startswith("https://demo-fapi.binance.com/fapi/") for u in fapi), fapi
    assert not any("://fapi.binance.com" in u for u in _urls(api))  # never the live host
    if pro:
        assert api["ws"]["linear"].startswith("wss://fstream.binancefuture.com")
    assert ex.enableRateLimit


def test_url_and_ws_url_override_everything_and_testnet() -> None:
    url, ws_url = "http://127.0.0.1:8123", "ws://127.0.0.1:9876/stream-base"
    ex = build_exchange("binanceusdm", url=url, ws_url=ws_url, testnet=True, pro=True)
    rest = _urls({k: v for k, v in ex.urls["api"].items() if k != "ws"})
    assert rest and all(u.startswith(url + "/") for u in rest)
    assert ex.urls["api"]["ws"]["linear"] == ws_url  # given, not derived from url
    assert all(u.startswith("ws://127.0.0.1:9876/") for u in _urls(ex.urls["api"]["ws"]))
    assert not ex.enableRateLimit  # loopback


def test_kill_path_session_gets_the_rest_override() -> None:
    """The supervisor builds a REST-only session (pro=False): url reaches it the same way."""
    url = "http://127.0.0.1:8123"
    ex = build_exchange("binanceusdm", url=url, ws_url="ws://127.0.0.1:1/ws", pro=False)
    assert all(u.startswith(url + "/") for u in _urls(ex.urls["api"]))
