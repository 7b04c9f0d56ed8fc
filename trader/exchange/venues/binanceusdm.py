"""Binance USDⓈ-M futures (ccxt ``binanceusdm``); the built-in simulator speaks the same API.

Error codes (``code`` in the JSON body), per call group (``errors.py`` has the venue-neutral
status and class rows and the call groups):

=========  ============================  =========  ==========================================
match      meaning                       calls      kind
=========  ============================  =========  ==========================================
code -1000 unknown error on server       any        fatal (unknown outcome, unknown cause)
code -1001 exchange disconnected/maint.  any        transient
code -1003 request weight exceeded       any        transient (honour Retry-After)
code -1007 backend timeout, status unkn. any        transient (create: look the id up first)
code -1008 server overloaded             any        transient
code -1015 too many new orders           order      transient
code -1021 timestamp outside recvWindow  any        transient (resync exchange time, retry)
code -1002/-1022/-2014/-2015/-2008       any        fatal (key, signature, IP or permission)
code -1131 recvWindow too large          any        fatal (configuration)
code -1125 listen key does not exist     user strm. transient (new listenKey, stream restarted,
                                                    REST reconcile after it reconnects)
code -1013/-1111/-1102/-1106/-1115/-1116/-1117/-1121/-2010/-2019/-2021/-2022/-4003/-4005/
     -4014/-4023/-4061/-4131/-4164/-5022 order      rejected (filters, precision, margin,
                                                    reduce-only, price limits, post-only)
code -4116 duplicate client order id     create     rejected, resolved by looking the id up
code -2011/-2013 unknown order           cancel     rejected = already gone (success)
                                         lookup     rejected = never placed
code -4028/-1121/-4161 leverage refused  setup      rejected (that symbol is not traded)
code -4046/-4059 no change needed        setup      rejected (nothing to do)
any other code, or a listed code on another call    fatal
=========  ============================  =========  ==========================================

Why a table of our own: ccxt maps Binance's futures codes (-2019, -2022 ...) only when the base
URL is ``fapi.binance.com``, and turns -2015 into ``DDoSProtection`` once a key has
authenticated. Session (``configure``): ccxt 4.5.90 chooses Binance's futures error table by URL
prefix (``binance.get_exceptions_by_url``), so under another base URL (the sim) -2019 and -2022
would degrade to a bare ``ExchangeError``: the local ``/fapi/`` prefix is mapped to the USDⓈ-M
table, so the classes are exactly those real Binance produces (-2019 ``InsufficientFunds``,
-2022 ``InvalidOrder``). ``testnet``: Binance closed the futures testnet to ccxt (4.5.90's
``sign()`` raises ``NotSupported`` for ``testnet.binancefuture.com``) and offers demo trading
instead: ``enable_demo_trading(True)`` (``demo-fapi.binance.com``; streams
``fstream.binancefuture.com``). Request weight: the ``X-MBX-USED-WEIGHT-1M`` header (the IP's
total this minute). Dead-man switch: ``POST /fapi/v1/countdownCancelAll {symbol, countdownTime(ms)}`` per symbol
(ccxt has no unified call: ``fapiPrivatePostCountdownCancelAll``). Key permissions:
``GET /sapi/v1/account/apiRestrictions`` (only on Binance's own hosts; the sim has none).
Conditional orders (STOP/TAKE_PROFIT/trailing) live on the algo-order endpoints since December
2025; ccxt reaches them with ``trigger=True``. Closes: one-way mode ``reduceOnly``; hedge mode
closes each side with its ``positionSide`` (``reduceOnly`` is refused there, -1106).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from trader.exchange.errors import (
    ANY,
    AUTH,
    CANCEL_CALLS,
    LOOKUP_CALLS,
    ORDER_CALLS,
    ORDER_REFUSED,
    SETUP_CALLS,
    USER_STREAM_CALLS,
    Kind,
    Rule,
    Rules,
    rules_for,
)
from trader.exchange.keys import KeyCheck
from trader.exchange.venues import binanceusdm_md
from trader.exchange.venues.base import CloseOrder, GuardedCall, MarketStream, market_contract_size
from trader.kernel.protocol import OrderStatus

_T, _R, _F = Kind.TRANSIENT, Kind.REJECTED, Kind.FATAL

CODE_RULES: dict[int, tuple[Rule, ...]] = {
    -1000: (Rule(_F, ANY, "the exchange reports an unknown internal error: outcome unknown"),),
    -1001: (Rule(_T, ANY, "exchange disconnected (maintenance?): retrying", "lookup"),),
    -1003: (Rule(_T, ANY, "request weight exceeded: backing off (Retry-After)"),),
    -1007: (Rule(_T, ANY, "exchange backend timeout, status unknown: resolving", "lookup"),),
    -1008: (Rule(_T, ANY, "exchange overloaded: retrying", "lookup"),),
    -1015: (Rule(_T, ORDER_CALLS, "too many new orders: backing off"),),
    -1021: (Rule(_T, ANY, "timestamp outside recvWindow: resyncing exchange time", "resync"),),
    **rules_for((-1002, -1022, -2014, -2015, -2008), Rule(_F, ANY, AUTH)),
    -1131: (Rule(_F, ANY, "recvWindow too large: fix exchange.recv_window (<= 60000)"),),
    -1125: (Rule(_T, USER_STREAM_CALLS, "listen key gone (expired): restarting the user-data "
                 "stream with a new one", "relisten"),),
    # -1100 illegal characters (a client id), -4013/-4016/-4024 price outside its filters or
    # band, -4120 a conditional type sent to the regular endpoint: this order, not us.
    **rules_for((-1013, -1100, -1111, -1102, -1106, -1115, -1116, -1117, -2010, -2019, -2021,
                 -2022, -4003, -4005, -4013, -4014, -4016, -4023, -4024, -4061, -4120, -4131,
                 -4164, -5022),
                Rule(_R, ORDER_CALLS, ORDER_REFUSED)),
    -1121: (Rule(_R, ORDER_CALLS | SETUP_CALLS, "invalid symbol on this exchange"),),
    -4116: (Rule(_R, frozenset({"create_order"}), "duplicate client order id: already placed",
                 "lookup"),),
    **rules_for((-2011, -2013),
                Rule(_R, CANCEL_CALLS, "order already gone: counts as cancelled", "gone"),
                Rule(_R, LOOKUP_CALLS, "no such order: it was never placed", "absent")),
    **rules_for((-4028, -4161), Rule(_R, SETUP_CALLS, "leverage refused: symbol not traded")),
    **rules_for((-4046, -4059), Rule(_R, SETUP_CALLS, "no change needed")),
}
RULES = Rules(codes=CODE_RULES)

WEIGHT_HEADER = "x-mbx-used-weight-1m"
PRICE_PROTECTION = -4131
REDUCE_ONLY_REJECTED = -2022
# Refusals that mean "the filters we hold are stale" for a close we sized from them.
FILTER_CODES = frozenset({-1111, -1013, -4003, -4005, -4013, -4014, -4016, -4023, -4024, -4164})

# Binance's raw order statuses (REST ``status``, stream ``X``) -> ccxt's unified ones.
_S = OrderStatus
STATUSES: Mapping[str, str] = {
    "NEW": _S.OPEN, "PARTIALLY_FILLED": _S.OPEN, "PENDING_CANCEL": _S.OPEN,
    "FILLED": _S.CLOSED, "CANCELED": _S.CANCELED, "REJECTED": _S.REJECTED,
    "EXPIRED": _S.EXPIRED, "EXPIRED_IN_MATCH": _S.EXPIRED,
}
UNIFIED = frozenset({_S.OPEN, _S.CLOSED, _S.CANCELED, _S.EXPIRED, _S.REJECTED})


def _local_linear_errors(ex: Any, prefix: str) -> None:
    """Map error bodies from ``prefix`` to ccxt's USDⓈ-M table (this instance only)."""
    by_url = ex.get_exceptions_by_url

    def get_exceptions_by_url(url: str | None, exactOrBroad: str) -> dict:  # noqa: N803
        if url is not None and url.startswith(prefix):
            return ex.safe_dict(ex.safe_dict(ex.exceptions, "linear", {}), exactOrBroad, {})
        return by_url(url, exactOrBroad)

    ex.get_exceptions_by_url = get_exceptions_by_url


# The params a plain create may carry (``connector/orders.py`` sends no others): anything else
# goes through ccxt's own ``create_order``.
_PLAIN_PARAMS = frozenset({"clientOrderId", "reduceOnly", "timeInForce"})


_PRECISE_MAX = 4096  # remembered roundings per exchange object (then it starts over)


def _precise(ex: Any, market: Mapping[str, Any], kind: str, value: Any) -> str:
    """ccxt's ``amount_to_precision`` / ``price_to_precision``, remembered: its decimal
    rounding is ~60 calls of Python on every order, and a bot sends the same sizes and nearby
    prices again and again. The key holds the market's precision, so new market data (a changed
    step) is rounded afresh; errors (below the minimum, not a number) are never remembered."""
    memo: dict[tuple[Any, ...], str] = ex.__dict__.setdefault("_flatguard_precise", {})
    key = (market["symbol"], kind, value, (market.get("precision") or {}).get(kind))
    got = memo.get(key)
    if got is None:
        fn = ex.amount_to_precision if kind == "amount" else ex.price_to_precision
        got = fn(market["symbol"], value)
        if len(memo) >= _PRECISE_MAX:
            memo.clear()
        memo[key] = got
    return got


def order_request(ex: Any, market: Mapping[str, Any], type_: str, side: str, amount: float,
                  price: float | None, params: Mapping[str, Any]) -> dict[str, str]:
    """``POST /fapi/v1/order``'s params for a plain market or limit order, exactly as ccxt
    4.5.90's ``create_order_request`` builds them (``tests/unit/exchange`` compares the two):
    ccxt's own precision rounding, ``newOrderRespType=RESULT``, a limit's ``timeInForce``
    defaulting to GTC; booleans as ``true``."""
    req = {"symbol": market["id"], "side": side.upper(),
           "newClientOrderId": str(params["clientOrderId"]), "newOrderRespType": "RESULT",
           "type": type_.upper(), "quantity": _precise(ex, market, "amount", amount)}
    if type_ == "limit":
        req["price"] = _precise(ex, market, "price", price)
        req["timeInForce"] = str(params.get("timeInForce") or "GTC")
    if params.get("reduceOnly"):
        req["reduceOnly"] = "true"
    return req


class BinanceUsdm:
    id = "binanceusdm"
    rules = RULES
    needs = frozenset({
        "fetchTime", "fetchPositions", "fetchOpenOrders", "fetchBalance", "fetchMyTrades",
        "fetchOrder", "createOrder", "cancelOrder", "cancelAllOrders", "setLeverage",
        "fetchBidsAsks", "fetchTicker"})
    stream_needs = frozenset({"watchOrders", "watchMyTrades", "watchPositions", "watchBalance",
                              "watchMarkPrice", "watchBidsAsks"})
    conditional: Mapping[str, Any] = {"trigger": True}
    statuses = STATUSES
    price_protection_codes = frozenset({PRICE_PROTECTION})
    reduce_only_rejected_codes = frozenset({REDUCE_ONLY_REJECTED})
    filter_codes = FILTER_CODES

    def configure(self, ex: Any, *, origin: str | None, testnet: bool,
                  recv_window_ms: int) -> bool:
        ex.options["fetchCurrencies"] = False  # a sapi call; futures-only keys fail it
        ex.options["recvWindow"] = recv_window_ms
        ex.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
        ex.options["defaultType"] = "swap"  # short symbols ("BTC/USDT") mean the perpetual
        ex.options["defaultSubType"] = "linear"
        if origin is not None:
            _local_linear_errors(ex, origin + "/fapi/")
        if testnet and hasattr(ex, "enable_demo_trading"):
            ex.enable_demo_trading(True)
            return True
        return False

    def weight_used(self, headers: Mapping[str, Any] | None) -> int | None:
        for k, w in (headers or {}).items():
            if str(k).lower() == WEIGHT_HEADER and isinstance(w, str) and w.isdigit():
                return int(w)
        return None

    def dms_mode(self, ex: Any) -> str:
        return "countdown" if hasattr(ex, "fapiPrivatePostCountdownCancelAll") else "none"

    async def dms_set(self, ex: Any, call: GuardedCall, symbols: list[str], ms: int) -> None:
        for sym in symbols:
            await call("countdown_cancel_all", ex.fapiPrivatePostCountdownCancelAll,
                       {"symbol": ex.market(sym)["id"], "countdownTime": ms}, essential=True)

    async def check_keys(self, ex: Any) -> KeyCheck:
        """``ipRestrict`` / ``enableWithdrawals`` where the session reaches Binance's own sapi
        host; a Binance-compatible server (the sim) has no such endpoint: not checked. A
        failure of the check itself is reported, never a trading error."""
        fn = getattr(ex, "sapiGetAccountApiRestrictions", None)
        sapi = str(ex.urls.get("api", {}).get("sapi", ""))
        if fn is None or "binance" not in sapi:
            return KeyCheck(False, note="key permissions endpoint not configured, not checked")
        try:
            r = await fn()
        except Exception as e:  # noqa: BLE001 - report, never trade on this
            return KeyCheck(False, note=f"key permission check failed: {type(e).__name__}")
        return KeyCheck(True, can_withdraw=bool(r.get("enableWithdrawals")),
                        ip_restricted=bool(r.get("ipRestrict")))

    def close_order(self, position: Mapping[str, Any]) -> CloseOrder:
        pos_side = str((position.get("info") or {}).get("positionSide") or "BOTH").upper()
        if pos_side in ("LONG", "SHORT"):
            # Hedge mode: the side closes itself; Binance refuses reduceOnly there (-1106).
            return CloseOrder("sell" if pos_side == "LONG" else "buy",
                              {"positionSide": pos_side}, pos_side)
        return CloseOrder("sell" if position.get("side") == "long" else "buy",
                          {"reduceOnly": True}, pos_side)

    def price_band(self, market: Mapping[str, Any]) -> tuple[float, float] | None:
        band = next((f for f in (market.get("info") or {}).get("filters") or []
                     if f.get("filterType") == "PERCENT_PRICE"), None)
        if band is None:
            return None
        return float(band["multiplierUp"]), float(band["multiplierDown"])

    def order_status(self, raw: str | None) -> str:
        word = str(raw or "")
        if word.lower() in UNIFIED:  # ccxt already unified it
            return OrderStatus(word.lower())
        return self.statuses.get(word.upper(), word.lower())  # unknown: kept, never guessed

    def contract_size(self, market: Mapping[str, Any]) -> float:
        return market_contract_size(market)  # 1 on every USDⓈ-M perpetual

    async def create_order(self, ex: Any, symbol: str, type_: str, side: str, amount: float,
                           price: float | None, params: Mapping[str, Any]) -> dict[str, Any]:
        """ccxt's ``create_order`` for the connector's plain orders, minus its per-order cost
        on the tick path (~0.3 ms of option lookups, request building and signing before a
        byte is sent). The request is built as ccxt builds it (``order_request``), then:

        * ccxt's rate limiter off (a loopback URL) and an HMAC key: signed here and sent with
          ``ex.fetch``, ccxt's transport;
        * otherwise ccxt's implicit ``fapiPrivatePostOrder`` (its limiter, its signing).

        Either way every hook on ``ex.fetch`` (the fence, the ban board, the weight recorder)
        and ccxt's error mapping (``handle_errors``: the same exception classes for the same
        codes) apply unchanged, and the reply is ccxt's ``parse_order``. Anything else (other
        params, a non-linear market, portfolio margin) is ccxt's ``create_order`` itself."""
        market = ex.market(symbol)
        if (not market.get("linear") or not market.get("swap") or type_ not in ("market", "limit")
                or not _PLAIN_PARAMS.issuperset(params) or not params.get("clientOrderId")
                or (type_ == "market" and params.get("timeInForce"))
                or ex.safe_bool_2(ex.options, "papi", "portfolioMargin", False)):
            return await ex.create_order(symbol, type_, side, amount, price, dict(params))
        req = order_request(ex, market, type_, side, amount, price, params)
        secret = str(ex.secret or "")
        if ex.enableRateLimit or not secret or "PRIVATE KEY" in secret:
            return ex.parse_order(await ex.fapiPrivatePostOrder(req), market)
        signed = {"timestamp": str(ex.nonce()), **req}
        if ex.options.get("recvWindow") is not None:
            signed["recvWindow"] = str(int(ex.options["recvWindow"]))
        body = urlencode(signed)
        body += "&signature=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers = {"X-MBX-APIKEY": ex.apiKey, "Content-Type": "application/x-www-form-urlencoded"}
        response = await ex.fetch(ex.urls["api"]["fapiPrivate"] + "/order", "POST", headers, body)
        return ex.parse_order(response, market)

    def market_streams(self, ex: Any, symbols: list[str]) -> list[MarketStream]:
        return binanceusdm_md.market_streams(ex, symbols)  # markPrice@1s and bookTicker
