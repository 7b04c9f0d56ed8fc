"""The guarded exchange call: rate-limit wait, one attempt, classification, budget, metrics.

Every call the connector makes to the exchange goes through :class:`Guard`, so the taxonomy in
``errors.py`` is applied in exactly one place. ``attempt`` makes one try; ``call`` retries
TRANSIENT failures with capped exponential backoff until the call's budget is spent (then it is
FATAL), resyncing exchange time once on -1021. ``create_order`` does not use ``call``: a
timed-out create must be resolved by client order id first (``orders.py``).

The event feed's watches are attempted with ``counted=False``: a WebSocket that keeps dropping
is retried without end, because what bounds it is the account state, not the socket: REST
reconciles keep confirming the account while the feed is down, and an account unconfirmed for
``exchange.max_unconfirmed`` is fatal (checked by the connector). A watch that fails with a
*fatal* classification is fatal as always. Once a fatal error is declared (``abandon()``),
``call`` stops retrying: nothing may keep hammering the exchange the kill path now needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from trader.exchange import errors as E
from trader.exchange import numbers as N
from trader.exchange.clock import ExchangeClock
from trader.exchange.ratelimit import RateLimits
from trader.kernel.metrics import METRICS

log = logging.getLogger("flatguard.calls")

# 0.25, 0.5, 1, 2, 4 s: the default budget of 5 failures spans ~8 s of a failing call, long
# enough to ride out an exchange blip, short enough that a dead endpoint halts promptly.
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0


@dataclass
class _Seen:
    status: int | None = None
    endpoint: str = ""


_SEEN: contextvars.ContextVar[_Seen | None] = contextvars.ContextVar("fg_seen", default=None)


@dataclass
class _Budget:
    failures: int = 0
    since: float = 0.0  # monotonic time of the first failure in this streak


def _path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else "/"


def install_recorder(ex: Any, limits: RateLimits,
                     weight_of: Callable[[Any], int | None] | None = None) -> None:
    """Hook ccxt's per-response callback: the weight used, read from every response's headers by
    the venue's ``weight_of`` (None: not read), and the status and endpoint of the current call
    (a context variable, so concurrent calls never mix them up)."""
    orig = ex.on_rest_response

    def hook(code: Any, reason: Any, url: str, method: str, headers: Any, body: Any,
             req_headers: Any, req_body: Any) -> Any:
        try:
            used = weight_of(headers) if weight_of is not None else None
            if used is not None:
                limits.observe(used)
            seen = _SEEN.get()
            if seen is not None:
                seen.status, seen.endpoint = int(code), f"{method} {_path(url)}"
        except Exception:  # noqa: BLE001 - bookkeeping must never break a call
            log.exception("event=recorder_error")
        return orig(code, reason, url, method, headers, body, req_headers, req_body)

    ex.on_rest_response = hook


class Guard:
    def __init__(self, limits: RateLimits, clock: ExchangeClock, *, rules: E.Rules,
                 retry_budget: int, retry_window: float,
                 on_fatal: Callable[[E.Classification], None],
                 on_ok: Callable[[], None] | None = None) -> None:
        """``rules``: the venue's (``Venue.rules``): every failure is classified by them."""
        self.limits = limits
        self.rules = rules
        self.clock = clock
        self.retry_budget = retry_budget
        self.retry_window = retry_window
        self.on_fatal = on_fatal
        self.on_ok = on_ok
        self._budgets: dict[str, _Budget] = {}
        self.abandoned = False
        self.last_error = ""
        self.errors: dict[str, int] = {}

    def _fail(self, c: E.Classification, counted: bool = True) -> E.ExchangeCallError:
        if c.kind is E.Kind.TRANSIENT and counted:
            b = self._budgets.setdefault(c.call, _Budget())
            now = time.monotonic()
            if b.failures == 0:
                b.since = now
            b.failures += 1
            if b.failures >= self.retry_budget or now - b.since >= self.retry_window:
                c = E.budget_exhausted(c, b.failures, now - b.since)
        elif c.kind is E.Kind.REJECTED:
            self._budgets.pop(c.call, None)  # the exchange answered: the link works
        METRICS.inc("flatguard_exchange_errors_total", kind=str(c.kind), call=c.call)
        self.errors[str(c.kind)] = self.errors.get(str(c.kind), 0) + 1
        self.last_error = c.describe()
        level = logging.ERROR if c.kind is E.Kind.FATAL else logging.WARNING
        log.log(level, "event=exchange_error kind=%s call=%s endpoint=%r code=%s status=%s "
                "matched=%r detail=%r", c.kind, c.call, c.endpoint, c.code, c.status, c.matched,
                c.detail)
        if c.kind is E.Kind.FATAL:
            self.on_fatal(c)
        return E.error_for(c)

    def succeeded(self, call: str) -> None:
        self._budgets.pop(call, None)
        if self.on_ok is not None:
            self.on_ok()

    def reset(self, call: str) -> None:
        """The call works again (a watch resubscribed) without a result to show for it yet."""
        self._budgets.pop(call, None)

    def abandon(self) -> None:
        """A fatal error was declared: transient failures are no longer retried by ``call``."""
        self.abandoned = True

    async def attempt(self, call: str, fn: Callable[..., Awaitable[Any]], *args: Any,
                      essential: bool = True, counted: bool = True, **kwargs: Any) -> Any:
        """One try. Success resets the call's budget; a failure raises a classified error
        (with ``counted=False`` a transient failure does not spend the call's budget)."""
        waited = await self.limits.wait(essential)
        if waited and call in self._budgets:
            self._budgets[call].since += waited  # a ban's wait is not the call failing
        seen = _Seen()
        token = _SEEN.set(seen)
        try:
            result = await fn(*args, **kwargs)
        except (asyncio.CancelledError, E.NotSent):
            raise
        except Exception as e:  # noqa: BLE001 - classified right here, unknown is fatal
            if isinstance(e, ValueError | ArithmeticError) and seen.status is not None \
                    and 200 <= seen.status < 300:
                # ccxt could not parse an answer ("NaN" where its Precise wants a number):
                # bad data, not a broken call (numbers.py says what happens to it).
                raise N.refuse("unparseable", str(e)[:80], f"{call} {seen.endpoint}") from e
            # A watch's own failure is on its socket: REST calls ccxt makes inside it (a
            # listen key, a position snapshot) must not lend it their endpoint or status.
            rest = not call.startswith("watch_")
            c = E.classify(call, e, self.rules, status=seen.status if rest and seen.status and
                           seen.status >= 400 else None,
                           endpoint=(seen.endpoint or None) if rest else None)
            raise self._fail(c, counted) from e
        finally:
            _SEEN.reset(token)
        self.succeeded(call)
        return result

    async def call(self, call: str, fn: Callable[..., Awaitable[Any]], *args: Any,
                   essential: bool = False, **kwargs: Any) -> Any:
        """Retry TRANSIENT failures within budget; REJECTED and FATAL propagate at once."""
        n = 0
        resynced = False
        while True:
            try:
                return await self.attempt(call, fn, *args, essential=essential, **kwargs)
            except E.Transient as t:
                if self.abandoned:
                    raise
                if t.classification.outcome == "resync" and not resynced:
                    resynced = True
                    await self.resync()
                    continue
                await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** n))
                n += 1

    async def resync(self) -> None:
        try:
            await self.attempt("fetch_time", self.clock.sync)
        except E.Transient:
            pass  # the next attempt shows whether it mattered
