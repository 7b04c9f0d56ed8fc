"""Binance request authentication: API key header, HMAC-SHA256 signature, timing window.

Binance signs ``totalParams`` = the raw query string concatenated with the raw request body
(no separator), minus the ``signature`` parameter itself, over the bytes exactly as sent:
percent-encoding included (``x%3A1%2F2``, not ``x:1/2``), so a client must sign what it sends
(Binance's 2025-12-26 notice: payloads signed before percent-encoding get -1022). The timing
rule is Binance's: accept when ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``.
For new orders the matching engine checks the window again when it processes the order
(:func:`check_window` after any in-flight delay): an order that waited inside the exchange past
its ``timestamp + recvWindow`` is refused with -1021 instead of landing late.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from trader.sim.clock import SimClock
from trader.sim.errors import BinanceError, mandatory

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str


def _strip_signature(raw: str) -> tuple[str, str | None]:
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


def check_api_key(headers: Mapping[str, str], creds: Credentials) -> None:
    key = headers.get("X-MBX-APIKEY")
    if not key:
        raise BinanceError(-2014)
    if not hmac.compare_digest(key, creds.api_key):
        raise BinanceError(-2015)


def check_window(params: Mapping[str, str], clock: SimClock) -> None:
    """The timing rule against the exchange clock *now* (receipt, or processing for orders)."""
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
    except (KeyError, ValueError):
        raise BinanceError(-1102, "Illegal characters found in parameter 'timestamp' or "
                                  "'recvWindow'.") from None
    if recv_window > MAX_RECV_WINDOW:
        raise BinanceError(-1131)
    now = clock.now_ms()
    if timestamp >= now + 1000:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the "
                                  "server's time.")
    if now - timestamp > recv_window:
        raise BinanceError(-1021)


def check_signed(headers: Mapping[str, str], raw_query: str, raw_body: str,
                 params: Mapping[str, str], creds: Credentials, clock: SimClock) -> None:
    """Raise the Binance error a SIGNED request would get, in Binance's order of checks."""
    check_api_key(headers, creds)
    if "timestamp" not in params:
        raise mandatory("timestamp")
    if "signature" not in params:
        raise mandatory("signature")
    check_window(params, clock)
    query, sig_q = _strip_signature(raw_query)
    body, sig_b = _strip_signature(raw_body)
    given = sig_q or sig_b or ""
    signed = (query + body).encode("utf-8", "surrogateescape")  # the bytes as received
    expected = hmac.new(creds.api_secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.lower(), expected):
        raise BinanceError(-1022)
