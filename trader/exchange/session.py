"""Build a configured async ccxt exchange object (REST, or ccxt.pro for WebSocket too).

Pointing ccxt at another host (the simulator, a proxy) is more than swapping one URL:

* Binance keeps ~20 base URLs in ``urls['api']`` (fapi v1/v2/v3 public and private, sapi, dapi,
  papi, ...). Every one is replaced, keeping its path, so no call can leak to the real host.
* ccxt.pro derives its USDⓈ-M stream URLs from ``urls['api']['ws']['linear']``
  (``<base>/ws`` → ``<base>/market/ws/<n>``, ``/public/ws/<n>``, ``/private/ws?listenKey=``).
* What a venue needs beyond that (options, its error table under another host, its own test
  environment) is the venue module's ``configure`` (``venues/binanceusdm.py``: demo trading for
  ``testnet``, the USDⓈ-M error table for a local ``/fapi/``). An id without a venue module
  gets ccxt's defaults; ``testnet=True`` then means ``set_sandbox_mode(True)``, which on 4.5.90
  is, e.g.:

* ``bybit``: REST ``https://api-testnet.bybit.com``, streams ``wss://stream-testnet.bybit.com``;
* ``okx``: demo trading — the same REST host with header ``x-simulated-trading: 1`` on every
  request, streams ``wss://wspap.okx.com:443/ws/v5``; needs demo-trading API keys.

(Such an id is refused at start-up anyway: only venues with a module are traded.) Both the
connector and the supervisor's kill path build their session here with the same
``url``/``ws_url``/``testnet``, so an override always reaches both (tested in
``tests/unit/connector/test_connector_session.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ccxt.async_support.base.exchange import Exchange

from trader.exchange import ccxtload
from trader.exchange.ban import BanBoard
from trader.exchange.ban import install as install_ban_board
from trader.exchange.venues import VENUES

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_RECV_WINDOW_MS = 10_000  # ccxt's own default; Binance accepts at most 60_000
DEFAULT_TIMEOUT_MS = 10_000


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def default_ws_url(url: str) -> str:
    """The simulator's stream base for a REST base: same host and port, ``/ws``."""
    origin = _origin(url)
    return ("wss" if origin.startswith("https") else "ws") + origin[origin.index(":"):] + "/ws"


def _rebase(value: object, origin: str) -> object:
    """Every URL string in a (nested) urls dict moved to ``origin``, paths kept."""
    if isinstance(value, str):
        parts = urlsplit(value)
        if not parts.scheme:
            return value
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return origin + path
    if isinstance(value, Mapping):
        return {k: _rebase(v, origin) for k, v in value.items()}
    return value


def build_exchange(
    exchange_id: str,
    *,
    url: str | None = None,
    ws_url: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    testnet: bool = False,
    pro: bool = False,
    rate_limit: bool | None = None,
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    options: Mapping[str, Any] | None = None,
    ban_board: BanBoard | None = None,
) -> Exchange:
    """An async ccxt exchange (``ccxt.pro`` when ``pro``), configured but not yet connected.

    ``url`` overrides every REST base (and, for ccxt.pro, ``ws_url`` — default: derived from
    ``url`` as ``ws://host:port/ws`` — every stream base); with ``url`` set, ``testnet`` is
    ignored because the override already names the target. The rate limiter is off for
    loopback URLs and on otherwise unless ``rate_limit`` says. ``ban_board``: every request
    checks it first and every 418/429 records into it (``ban.install``); the connector and the
    kill path pass the same run-directory board. The caller must ``await exchange.close()``.
    """
    if not 0 < recv_window_ms <= 60_000:
        raise ValueError("recv_window_ms must be in (0, 60000]: Binance rejects more (-1131)")
    venue_cls = VENUES.get(exchange_id)  # its session quirks, where flatguard has a venue module
    try:
        cls: type[Exchange] = ccxtload.exchange_class(exchange_id, pro=pro)
    except ccxtload.UnknownExchange:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r}") from None
    limiter = rate_limit if rate_limit is not None else not (url and is_loopback(url))
    config: dict[str, Any] = {"enableRateLimit": limiter, "timeout": timeout_ms}
    if api_key is not None:
        config["apiKey"] = api_key
    if api_secret is not None:
        config["secret"] = api_secret
    exchange = cls(config)

    test_env = False
    if venue_cls is not None:
        test_env = venue_cls().configure(exchange, origin=_origin(url) if url is not None else None,
                                   testnet=testnet and url is None,
                                   recv_window_ms=recv_window_ms)
    if options:
        exchange.options.update(options)

    if url is not None:
        _point_at(exchange, url, ws_url if ws_url is not None else default_ws_url(url), pro)
    elif testnet and not test_env:
        exchange.set_sandbox_mode(True)
    if ban_board is not None:
        install_ban_board(exchange, ban_board)
    return exchange


def _point_at(exchange: Exchange, url: str, ws_url: str, pro: bool) -> None:
    origin = _origin(url)
    api = dict(exchange.urls["api"]) if isinstance(exchange.urls["api"], Mapping) else {
        "rest": exchange.urls["api"]}
    ws = api.pop("ws", None)
    rebased: dict[str, Any] = {k: _rebase(v, origin) for k, v in api.items()}
    if pro and ws is not None:
        ws_rebased = _rebase(ws, _origin(ws_url))
        if isinstance(ws_rebased, dict) and "linear" in ws_rebased:
            ws_rebased["linear"] = ws_url
        rebased["ws"] = ws_rebased
    exchange.urls["api"] = rebased
    # sandbox/demo switches copy these over urls['api']: make them point here as well.
    for key in ("test", "demo"):
        if key in exchange.urls:
            exchange.urls[key] = rebased
