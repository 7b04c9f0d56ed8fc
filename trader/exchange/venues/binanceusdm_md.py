"""Binance USDⓈ-M market data read straight off its WebSocket streams (the tick path).

ccxt.pro's ``watch_mark_price`` / ``watch_bids_asks`` cost a second task wake-up and ~0.3 ms
of message handling per tick in the connector; the two streams are simple enough to read here.
The same subscriptions ccxt 4.5.90 makes: ``<id>@markPrice@1s`` on the ``market`` category and
``<id>@bookTicker`` on the ``public`` one (``get_ws_url``: production, demo trading and a local
``exchange.url`` alike), subscribed with ``{"method": "SUBSCRIBE", "params": [...], "id": 1}``
and acknowledged with ``{"result": null, "id": 1}``.

Events (raw ``/ws`` form; the combined form wraps them in ``{"stream", "data"}``)::

    markPriceUpdate  {"e": "markPriceUpdate", "E": ms, "s": "BTCUSDT", "p": "<mark>", ...}
    bookTicker       {"e": "bookTicker", "E": ms, "T": ms, "s": "BTCUSDT", "b": "<bid>",
                      "B": qty, "a": "<ask>", "A": qty, "u": id}

Prices are passed on as sent (strings): the connector's boundary checks them, so a "NaN" mark is
refused and counted there, as for every other number from the exchange.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

from trader.exchange.venues.base import MarketStream, Quote, StreamRefused

MARK = "watch_mark_price", "market", "{}@markPrice@1s"
BOOK = "watch_bids_asks", "public", "{}@bookTicker"


def market_streams(ex: Any, symbols: list[str]) -> list[MarketStream]:
    """One socket per stream category, every symbol on it; [] when ``ex`` is not ccxt.pro."""
    if not symbols or not hasattr(ex, "get_ws_url"):
        return []
    by_id = {str(ex.market(s)["id"]): s for s in symbols}
    out = []
    for name, category, form in (MARK, BOOK):
        sub = {"method": "SUBSCRIBE", "params": [form.format(i.lower()) for i in by_id], "id": 1}
        out.append(MarketStream(name, ex.get_ws_url("linear", category), json.dumps(sub),
                                partial(parse, by_id)))
    return out


def parse(by_id: Mapping[str, str], text: str) -> tuple[bool, list[Quote]]:
    """(acknowledged, quotes) of one text frame; raises ``StreamRefused`` on an error reply,
    ``ValueError`` on one that is not JSON."""
    m = json.loads(text)
    if isinstance(m, dict):
        if "data" in m and "stream" in m:
            m = m["data"]
        elif "id" in m and ("result" in m or "error" in m or "code" in m):
            if m.get("result") is None and "error" not in m and "code" not in m:
                return True, []
            raise StreamRefused(f"subscription refused: {str(m)[:200]}")
    events = m if isinstance(m, list) else [m]
    quotes = []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        sym = by_id.get(ev.get("s"))  # type: ignore[arg-type]
        if sym is None:
            continue  # not ours (an all-market form) or not an event
        kind = ev.get("e")
        if kind == "markPriceUpdate":
            quotes.append(Quote(sym, ev.get("p"), None, None, _ms(ev.get("E"))))
        elif kind == "bookTicker" or (kind is None and "b" in ev and "a" in ev):
            quotes.append(Quote(sym, None, ev.get("b"), ev.get("a"),
                                _ms(ev.get("E") or ev.get("T"))))
    return False, quotes


def _ms(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
