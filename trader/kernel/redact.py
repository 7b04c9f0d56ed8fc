"""No URL query string in any alert, log line or metric label.

ccxt puts the signed request in its error texts (``GET https://fapi.binance.com/fapi/v1/
openOrders?timestamp=...&recvWindow=...&signature=...``): a signature is a replayable credential
for its recvWindow, and a timestamp or listenKey is nobody's business in a chat. ``scrub_url``
removes query strings (``?k=v...``) and any leftover ``signature=``-like pair. It is applied where
texts leave a process: every log record (``install``, from ``proc.setup_logging``), every
notification (``proc.NotifyClient``), the taxonomy's ``Classification.describe``, the kill
path's round errors and the label values of /metrics.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# "?" then, before any whitespace or quote, at least one "=": a query string, not a question.
_QUERY = re.compile(r"\?[^\s'\"<>?]*=[^\s'\"<>]*")
_PAIRS = re.compile(r"\b(signature|listenKey|apiKey|api_key|X-MBX-APIKEY|token)=[^&\s'\"<>]+",
                    re.IGNORECASE)


def scrub_url(text: str) -> str:
    """``text`` without query strings or credential pairs (cheap when there is nothing)."""
    if "=" not in text:
        return text
    return _PAIRS.sub(r"\1=<redacted>", _QUERY.sub("", text))


_installed = False


def install() -> None:
    """Scrub every log record of this process, whatever handler (file, JSON, stderr) writes it:
    a record factory sees each record once, at creation, before any handler formats it."""
    global _installed
    if _installed:
        return
    _installed = True
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's to report
            return record
        clean = scrub_url(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub_url(text)  # formatters reuse exc_text as it is
        return record

    logging.setLogRecordFactory(factory)
