"""The venues flatguard supports: one table from ``exchange.id`` to a venue class.

``exchange.id = "sim"`` is the built-in simulator, which speaks Binance USDⓈ-M: it is the
``binanceusdm`` venue at ``exchange.url``, with no rule of its own. An id without a row here is
refused at start-up (``UnsupportedVenue`` names it and lists the supported ids): a venue is
never run with another venue's error codes or close quirks. How to add one: ``base.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trader.exchange.venues.base import CloseOrder, KeyCheck, Venue, notional
from trader.exchange.venues.binanceusdm import BinanceUsdm
from trader.kernel.errors import FlatguardError

__all__ = ["VENUES", "CloseOrder", "KeyCheck", "MissingCapabilities", "UnsupportedVenue",
           "Venue", "missing_capabilities", "notional", "require_capabilities", "supported",
           "venue_for"]

# exchange.id -> venue class (the ccxt class built is the venue's ``id``)
VENUES: dict[str, type[Venue]] = {
    "binanceusdm": BinanceUsdm,
    "sim": BinanceUsdm,  # the built-in simulator: Binance USDⓈ-M at exchange.url
}


class UnsupportedVenue(FlatguardError, ValueError):
    """No venue module for this exchange id. Fatal at start-up: the message lists the ids."""


class MissingCapabilities(FlatguardError, RuntimeError):
    """The ccxt exchange lacks calls flatguard needs. Fatal at start-up: names them."""


def supported() -> list[str]:
    return sorted(VENUES)


def venue_for(exchange_id: str) -> Venue:
    """The venue for ``exchange.id``; refuses an id without a venue module, by name."""
    cls = VENUES.get(exchange_id)
    if cls is None:
        raise UnsupportedVenue(
            f"exchange.id = {exchange_id!r} has no venue module in flatguard (supported: "
            f"{', '.join(supported())}); it is not run with another venue's error codes and "
            "close rules. Adding one: trader/exchange/venues/base.py")
    return cls()


def missing_capabilities(ex: Any, needs: Iterable[str]) -> list[str]:
    """The ``has`` keys in ``needs`` that the ccxt exchange ``ex`` does not offer (sorted)."""
    has = getattr(ex, "has", None) or {}
    return sorted(k for k in needs if not has.get(k))


def require_capabilities(venue: Venue, ex: Any, *, stream: bool = False) -> None:
    """Refuse (:class:`MissingCapabilities`) a session whose ccxt class lacks what the venue
    needs (``stream``: the WebSocket feed's watches too)."""
    needs = set(venue.needs) | (set(venue.stream_needs) if stream else set())
    missing = missing_capabilities(ex, needs)
    if missing:
        raise MissingCapabilities(
            f"the ccxt exchange {getattr(ex, 'id', '?')!r} lacks what flatguard's "
            f"{venue.id} venue needs: {', '.join(missing)} (ccxt has[...] is False)")
