"""The fence: from the moment it is handled, nothing more is signed for the trader.

The kill path's "verified flat" is only a proof if no order of the trader can still land after
the verifying read. An order signed before the fence can still take effect until its timestamp
+ its ``recvWindow``; one signed after it could land at any time. So on ``fence`` the connector
drops every ``order.create`` that has not reached the network yet (queued, waiting for weight,
between retries, or waiting to look a lost reply up) and refuses later ones with kind
``fenced``. The check sits in the exchange object's ``fetch`` — after ccxt's rate limiter and
its signing, with no ``await`` in between — so a create that was waiting inside ccxt is stopped
too. A create that is already on the wire cannot be recalled: its recvWindow bounds it, and the
reply to ``fence`` gives the supervisor ``recv_window_ms`` (``exchange.recv_window``, the
largest any create is signed with) and ``inflight_until``: the wall time until which a trader's
request that went on the wire without a definite answer (no reply yet, or a lost one) can still
take effect (0 when there is none, so the supervisor need not wait out a window nobody uses).

Cancels, reads, ``account``, ``status`` and the dead-man switch keep working: the kill path may
need them. ``unfence`` lifts it (a person's ``resume``: a new trader may trade again).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

from trader.exchange import errors as E

log = logging.getLogger("flatguard.connector")

_TOKENS = itertools.count(1)
# Set while a trader's create runs: the fetch hook refuses to send it once fenced.
_GATED: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("fg_fence", default=None)


class Fenced(E.NotSent):
    """The connector is fenced: this order was not sent (or its retries were stopped).
    Policy: reply ``fenced``; the trader is being stopped, nothing is retried."""

    kind = "fenced"


class Fence:
    def __init__(self, window_s: float = 5.0) -> None:
        self.fenced_at: float | None = None  # wall time
        # Requests on the wire with no definite answer: id -> wall time they may land until.
        # Signed with our clock; Binance accepts a timestamp up to 1 s ahead of its own.
        self.window_s = window_s + 1.0
        self._wire: dict[int, float] = {}
        self.reason = ""
        self._event: asyncio.Event | None = None

    @property
    def fenced(self) -> bool:
        return self.fenced_at is not None

    def _ev(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def fence(self, reason: str) -> float:
        """Idempotent: the first fence's time stands."""
        if self.fenced_at is None:
            self.fenced_at = time.time()
            self.reason = reason
            self._ev().set()  # wake every create sleeping between attempts
            log.warning("event=fenced reason=%r", reason)
        return self.fenced_at

    def inflight_until(self, now: float | None = None) -> float:
        """Wall time until which a request sent without a definite answer may land; 0: none."""
        now = time.time() if now is None else now
        for k in [k for k, until in self._wire.items() if until <= now]:
            del self._wire[k]
        return max(self._wire.values(), default=0.0)

    def lift(self) -> None:
        if self.fenced_at is not None:
            log.warning("event=unfenced was=%r", self.reason)
        self.fenced_at = None
        self.reason = ""
        self._event = None

    def check(self, what: str = "order not sent") -> None:
        if self.fenced_at is not None:
            raise Fenced(f"connector fenced ({self.reason or 'no reason given'}): {what}")

    async def sleep(self, seconds: float, what: str) -> None:
        """Sleep, but end at once (raising :class:`Fenced`) if the fence goes up."""
        self.check(what)
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ev().wait(), seconds)
        self.check(what)

    @contextlib.contextmanager
    def gate(self) -> Iterator[None]:
        """Requests made inside are the trader's: the fetch hook refuses them once fenced."""
        token = _GATED.set(self)
        try:
            yield
        finally:
            _GATED.reset(token)


def install(ex: Any) -> None:
    """Wrap ``ex.fetch`` (outermost): a gated request is never sent once fenced."""
    orig = ex.fetch

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        f = _GATED.get()
        if f is None:
            return await orig(url, method, headers, body)
        f.check()
        if method == "GET":
            return await orig(url, method, headers, body)
        # A create on the wire: until it answers with a success, it may still land (an error
        # reply or a lost one keeps it counted until its window has surely passed).
        token = next(_TOKENS)
        f._wire[token] = time.time() + f.window_s
        result = await orig(url, method, headers, body)
        f._wire.pop(token, None)
        return result

    ex.fetch = fetch
