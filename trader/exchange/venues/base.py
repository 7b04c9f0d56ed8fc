"""The venue seam: everything one exchange does its own way, as one fixed list of members.

A venue module (``venues/<id>.py``) defines one class with every member of :class:`Venue`
(like Nautilus's adapter template: required, not optional), and ``venues/__init__.py`` maps
exchange ids to those classes (like freqtrade's table). The connector and the supervisor's kill
path look the venue up by the same id, so they classify, close and count alike; an id without
a venue module is refused at start-up, never run with another venue's rules.

To add a venue: write ``venues/<ccxt id>.py`` with a class implementing :class:`Venue` (its
session options and test environment, error codes, rate-limit header, dead-man switch, key
check, close quirks, order statuses, contract size and the ccxt capabilities it needs), add it
to ``VENUES``, and a unit test in ``tests/unit/exchange/test_venues.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from trader.exchange.errors import Rules
from trader.exchange.keys import KeyCheck
from trader.kernel.errors import FlatguardError

__all__ = ["CloseOrder", "GuardedCall", "KeyCheck", "MarketStream", "Quote", "StreamRefused",
           "Venue", "market_contract_size", "notional"]

# A guarded exchange call: ``call(name, fn, *args, essential=..., **kwargs)`` (``Guard.call``).
GuardedCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class CloseOrder:
    """How to close one position: the order side and the params that make it only reduce."""

    side: str  # "buy" | "sell"
    params: Mapping[str, Any]
    position_side: str  # the venue's word for the side closed (logs), e.g. "BOTH", "LONG"


@dataclass(frozen=True, slots=True)
class Quote:
    """One market-data update as the venue sent it: prices unchecked (the connector's boundary
    checks them), ``ts`` the exchange's event time in ms."""

    symbol: str  # ccxt's unified symbol
    mark: Any
    bid: Any
    ask: Any
    ts: int | None


class StreamRefused(FlatguardError, RuntimeError):
    """The venue answered a stream subscription with an error: the stream is failing (retried
    with backoff like a drop; the feed is not connected meanwhile)."""


@dataclass(frozen=True)
class MarketStream:
    """A market-data WebSocket the feed reads itself (no ccxt.pro in the tick path).

    ``parse(text)`` returns (the subscription was acknowledged, the quotes in the message); it
    raises ``StreamRefused`` for an error reply and ``ValueError`` for a message it cannot read.
    """

    name: str  # the loop's name in logs and metrics: ccxt's watch it replaces
    url: str
    subscribe: str  # the text frame sent once the socket is open
    parse: Callable[[str], tuple[bool, list[Quote]]]


@runtime_checkable
class Venue(Protocol):
    """The required members of a venue. Pure where it can be: only ``dms_set`` and
    ``check_keys`` do I/O, through the exchange object they are given."""

    id: str  # the ccxt id whose class is built (the sim is binanceusdm at another URL)
    rules: Rules  # error codes per call, then status and class rows (``errors.classify``)
    needs: frozenset[str]  # ccxt ``has`` keys every session needs (REST)
    stream_needs: frozenset[str]  # ... and a WebSocket feed needs too
    conditional: Mapping[str, Any]  # params reaching conditional (trigger/algo) orders; {}: none
    statuses: Mapping[str, str]  # the venue's raw order status -> ``protocol.OrderStatus``
    #                              (ccxt's unified open/closed/canceled/expired/rejected)
    # close quirks: codes a kill-path close acts on (never matched by error text)
    price_protection_codes: frozenset[int]  # market close refused: IOC limit inside the band
    reduce_only_rejected_codes: frozenset[int]  # the position is smaller: re-read
    filter_codes: frozenset[int]  # our filters are stale: reload markets, retry

    def configure(self, ex: Any, *, origin: str | None, testnet: bool,
                  recv_window_ms: int) -> bool:
        """The venue's session quirks on a fresh ccxt instance (``session.build_exchange``):
        options, and what pointing it at ``origin`` (another host, e.g. the sim) needs. With
        ``testnet`` (only when ``origin`` is None), switch to the venue's test environment and
        return True; False leaves it to ccxt's ``set_sandbox_mode``."""
        ...

    def weight_used(self, headers: Mapping[str, Any] | None) -> int | None:
        """The request weight used in the current window, from a response's headers."""
        ...

    def dms_mode(self, ex: Any) -> str:
        """How this session arms the exchange's dead-man switch (a name for logs and replies,
        e.g. "countdown"), or "none" where it cannot."""
        ...

    async def dms_set(self, ex: Any, call: GuardedCall, symbols: list[str], ms: int) -> None:
        """Arm the dead-man switch for ``symbols`` to fire in ``ms`` (0: disarm)."""
        ...

    async def check_keys(self, ex: Any) -> KeyCheck:
        """The API key's permissions where the venue exposes them; never raises."""
        ...

    def close_order(self, position: Mapping[str, Any]) -> CloseOrder:
        """The side and params of an order that only reduces ``position`` (ccxt unified)."""
        ...

    def price_band(self, market: Mapping[str, Any]) -> tuple[float, float] | None:
        """(multiplier up, multiplier down) a limit price must stay within, if published."""
        ...

    def order_status(self, raw: str | None) -> str:
        """The venue's raw order status (or ccxt's unified one) as ccxt's unified status."""
        ...

    def contract_size(self, market: Mapping[str, Any]) -> float:
        """Units of the base asset per contract: notional = contracts x size x price."""
        ...

    def market_streams(self, ex: Any, symbols: list[str]) -> list[MarketStream]:
        """The market-data WebSockets (mark price, best bid/ask) the feed reads itself for
        ``symbols`` (markets loaded); [] leaves market data to ccxt.pro's watches."""
        ...


def market_contract_size(market: Mapping[str, Any]) -> float:
    """ccxt's ``contractSize`` of a market (absent, zero or unreadable: 1, a linear contract of
    one base unit, as ccxt leaves it for spot)."""
    try:
        size = float(market.get("contractSize") or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return size if size > 0 else 1.0


def notional(contracts: float, price: float, contract_size: float = 1.0) -> float:
    """Quote-currency value of ``contracts`` at ``price``."""
    return abs(contracts) * contract_size * price
