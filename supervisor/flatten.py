"""Take the account flat through the supervisor's own exchange session, and prove it.

The session is built and proven at start-up (markets loaded, keys checked, exchange time loaded)
because at kill time nothing else may be relied on: not the connector process, not a fresh
``import ccxt`` (0.3-0.5 s), not the local clock. Requests are signed with the exchange's time
and a large ``recvWindow``; a timestamp error (-1021) resyncs the time and retries at once.

One round, in this order, each step's requests counted (``RoundResult.requests``):

1. read the open orders, regular and -- where the venue keeps them apart -- conditional
   (STOP/TAKE_PROFIT/trailing: Binance's algo orders), one read per kind for all symbols;
2. cancel the conditional orders first (none can trigger into a regular order afterwards), then
   the regular ones, on every symbol that has either kind plus the configured ones;
3. read the positions and close them (``closes.py``), re-reading after each pass while the
   positions shrink (partial fills); the last re-read is the verify read of the positions;
4. verify: read both kinds of open orders again.

Errors go through the connector's taxonomy (``trader.exchange.errors.classify``, per call, with
the venue's rules: the same ``Venue`` the connector uses, ``trader/exchange/venues``): a close
refused for a filter reloads the markets and retries (``closes.py``); any other failure
fails the round with the classification's description, and the caller's loop retries after its
backoff. A rate limit or ban (``DDoSProtection``/``RateLimitExceeded``, also raised without
sending by a shared ban board) stops the round at once: every later call of the round is refused
here without being sent, because each request during a Binance ban prolongs it.

The order responses are never trusted for what was filled (Binance answers a futures order with
an ACK by default): only a fresh position read says what is left.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.closes import BelowLotStep, Closer, contracts
from trader.exchange import errors as E
from trader.exchange.ccxtload import errors as ccxt  # ccxt's error classes
from trader.exchange.venues import Venue, venue_for
from trader.kernel.redact import scrub_url

log = logging.getLogger("flatguard")

MAX_RESYNCS = 3
CLOSE_PASSES = 5  # re-read and close again while the positions shrink (partial fills)
RELOAD_INTERVAL = 30.0  # s between filter-triggered market reloads (a refusal that outlives a
#                        reload is not fixed by reloading every 5 s round)

# A venue's conditional (trigger/algo) orders have their own read and cancel in ccxt where
# ``Venue.conditional`` gives the params that reach them (Binance USDⓈ-M: trigger=True, its
# algo-order endpoints since December 2025); empty: only regular orders as far as the flatten
# can see. The kill path proves the conditional read at start-up (``prove``), like the regular one.


@dataclass
class RoundResult:
    flat: bool
    cancelled: int = 0  # open orders (both kinds) seen when cancelling
    closes: int = 0  # close orders sent
    open_orders: list[str] = field(default_factory=list)  # left after the round (both kinds)
    positions: list[str] = field(default_factory=list)  # left after the round
    error: str = ""  # the failures' descriptions, when not flat
    requests: int = 0  # requests sent to the exchange by this round (answered or timed out)
    banned: bool = False  # stopped by a rate limit / ban: the rest of the round was not sent
    cancelled_conditional: int = 0  # of ``cancelled``, conditional (trigger/algo) orders
    markets_reloaded: bool = False  # a close was refused for a filter and markets were reloaded
    failure: str = ""  # the worst failure's kind: "banned", "fatal", "transient", "rejected"


class Banned(E.Transient):
    """Rate limited or banned: the round stops, the caller waits for the ban to end."""


@dataclass
class _Seen:
    status: int | None = None
    endpoint: str = ""


@dataclass
class _Round:
    requests: int = 0
    ban: Banned | None = None
    reloaded: bool = False
    failures: list[Exception] = field(default_factory=list)


# Per task, so a read made by another request (``ctl info``, abort) never counts into a round.
_ROUND: contextvars.ContextVar[_Round | None] = contextvars.ContextVar("fg_round", default=None)
_SEEN: contextvars.ContextVar[_Seen | None] = contextvars.ContextVar("fg_ks_seen", default=None)
_SEVERITY = {"banned": 4, "fatal": 3, "transient": 2, "rejected": 1}


def _path(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else "/"


def _key(p: dict[str, Any]) -> tuple[str, str]:
    return p["symbol"], str((p.get("info") or {}).get("positionSide") or p.get("side") or "")


def _size(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    return {_key(p): contracts(p) for p in rows}


def _kind(e: Exception) -> str:
    if isinstance(e, Banned):
        return "banned"
    if isinstance(e, E.ExchangeCallError):
        return e.kind
    if isinstance(e, BelowLotStep):
        return "rejected"
    return "fatal"  # our own failure (unreadable data): unknown means fatal


def _describe(e: Exception) -> str:
    return str(e) if isinstance(e, E.ExchangeCallError) else scrub_url(f"{type(e).__name__}: {e}")


def _order_line(o: dict[str, Any], conditional: bool) -> str:
    line = f"{o['symbol']} {o['side']} {o.get('amount')}"
    if not conditional:
        return line
    kind = (o.get("info") or {}).get("orderType") or o.get("type") or "?"
    return f"{line} {kind} trigger {o.get('triggerPrice')} (conditional)"


class Flattener:
    def __init__(self, exchange: Any, symbols: tuple[str, ...], recv_window_ms: int, *,
                 venue: Venue | None = None, conditional: dict[str, Any] | None = None,
                 reload_interval: float = RELOAD_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``venue``: the connector's (default: the one for ``exchange.id``; an exchange without
        a venue module is refused, ``UnsupportedVenue``). ``conditional``: the params that reach
        the venue's conditional orders; by default the venue's (``{}``: only regular orders)."""
        self.venue = venue if venue is not None else venue_for(exchange.id)
        self.ex = exchange
        self.symbols = symbols
        self.ex.options["recvWindow"] = recv_window_ms
        self.ex.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
        self.ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        self.conditional = dict(self.venue.conditional if conditional is None else conditional)
        self.reload_interval = reload_interval
        self.clock = clock
        self.offset_loaded_at = 0.0
        self.reloaded_at = -math.inf
        self.hedged: bool | None = None  # position mode, when the exchange can tell
        self.requests_total = 0
        self.closer = Closer(exchange, self._call, self._reload_markets, self.venue)
        self._install_hooks()

    def _install_hooks(self) -> None:
        """Count what reaches the exchange: every response (ccxt's per-response callback) and
        every request that timed out (sent, unanswered). A request refused before sending (a
        shared ban board) is neither. Also note each call's status and endpoint for the
        taxonomy, as the connector's recorder does."""
        ex = self.ex
        on_response, fetch = ex.on_rest_response, ex.fetch

        def hook(code: Any, reason: Any, url: str, method: str, headers: Any, body: Any,
                 req_headers: Any, req_body: Any) -> Any:
            self._sent()
            seen = _SEEN.get()
            if seen is not None:
                try:
                    seen.status, seen.endpoint = int(code), f"{method} {_path(url)}"
                except (TypeError, ValueError):
                    pass
            return on_response(code, reason, url, method, headers, body, req_headers, req_body)

        async def counted_fetch(url: str, method: str = "GET", headers: Any = None,
                                body: Any = None) -> Any:
            try:
                return await fetch(url, method, headers, body)
            except ccxt.RequestTimeout:
                self._sent()
                raise

        ex.on_rest_response = hook
        ex.fetch = counted_fetch

    def _sent(self) -> None:
        self.requests_total += 1
        r = _ROUND.get()
        if r is not None:
            r.requests += 1

    async def prepare(self) -> None:
        """Markets, exchange time, and signed reads: the kill path is proven before it is needed.

        Also the position-mode pre-flight: the flatten works in either mode (hedge: each side
        closed with its positionSide), but the connector trades one-way only, so say it early.
        """
        await self._call(self.ex.load_markets)
        await self.prove()
        if self.ex.has.get("fetchPositionMode"):
            sym = next((s for s in self.symbols if s in self.ex.markets), None)
            mode = await self._call(self.ex.fetch_position_mode, sym)
            self.hedged = bool(mode.get("hedged"))
            if self.hedged:
                log.warning("kill path: the account is in hedge (dual-side) position mode; the "
                            "kill switch closes each side with its positionSide")

    async def sync_time(self) -> None:
        await self._call(self.ex.load_time_difference, resync=False)
        self.offset_loaded_at = time.monotonic()

    async def prove(self) -> None:
        """Raise unless the signed reads a flatten needs succeed with fresh exchange time (keys
        valid, clock ok), conditional orders included. Not the balance: an account endpoint
        retired (the seed incident) must not make a kill path that does not use it look broken."""
        await self.sync_time()
        await self._call(self.ex.fetch_positions)
        await self._read_orders()

    async def _call(self, fn: Any, *args: Any, resync: bool = True, **kwargs: Any) -> Any:
        """One exchange call, classified by the shared taxonomy; raises ``Rejected``,
        ``Transient``, ``Fatal`` or ``Banned``. A -1021 resyncs the exchange time and retries.
        Inside a round that met a ban, nothing more is sent."""
        call = getattr(fn, "__name__", "call")
        r = _ROUND.get()
        for attempt in range(MAX_RESYNCS + 1):
            if r is not None and r.ban is not None:
                raise Banned(r.ban.classification)  # not sent: each request prolongs a ban
            seen = _Seen()
            token = _SEEN.set(seen)
            try:
                return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - classified right here, unknown is fatal
                status = seen.status if seen.status and seen.status >= 400 else None
                c = E.classify(call, e, self.venue.rules, status=status,
                               endpoint=seen.endpoint or None)
                if c.kind is E.Kind.TRANSIENT and (
                        isinstance(e, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))
                        or c.status in (418, 429) or c.code == -1003):
                    ban = Banned(c)
                    if r is not None:
                        r.ban = ban
                    log.error("kill path: rate limited or banned, stopping the round: %s",
                              c.describe())
                    raise ban from e
                if c.outcome == "resync" and resync and attempt < MAX_RESYNCS:
                    log.warning("kill path: timestamp rejected, resyncing exchange time")
                    await self.sync_time()
                    continue
                raise E.error_for(c) from e
            finally:
                _SEEN.reset(token)
        raise AssertionError("unreachable")

    async def _reload_markets(self) -> bool:
        """Reload markets after a filter refusal: at most once per round and ``reload_interval``
        apart. False when not allowed now (the refusal then fails the round as it is)."""
        r = _ROUND.get()
        if r is None or r.reloaded or self.clock() - self.reloaded_at < self.reload_interval:
            return False
        r.reloaded = True
        self.reloaded_at = self.clock()
        log.warning("kill path: reloading markets (a close was refused for a filter)")
        await self._call(self.ex.load_markets, True)
        return True

    async def _read_orders(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(regular, conditional) open orders of every symbol: one read per kind."""
        regular = await self._call(self.ex.fetch_open_orders)
        conditional: list[dict[str, Any]] = []
        if self.conditional:
            conditional = await self._call(self.ex.fetch_open_orders, None, None, None,
                                           dict(self.conditional))
        return regular, conditional

    async def open_orders(self) -> list[dict[str, Any]]:
        """Every open order, regular and conditional."""
        regular, conditional = await self._read_orders()
        return regular + conditional

    async def positions(self) -> list[dict[str, Any]]:
        """Every non-flat position; a size the exchange sent as NaN counts as not flat."""
        rows = await self._call(self.ex.fetch_positions)
        return [p for p in rows if not contracts(p) == 0]

    async def cancel_all(self, failures: list[Exception]) -> tuple[int, int]:
        """Cancel on every symbol with open orders of a kind (and every configured one, even
        when a read failed); one failing symbol does not stop the others. Returns the orders
        seen (all, conditional); failures are appended. A ban propagates at once."""
        regular: list[dict[str, Any]] = []
        conditional: list[dict[str, Any]] = []
        try:
            regular = await self._call(self.ex.fetch_open_orders)
        except E.ExchangeCallError as e:
            self._failed(e, failures)
        if self.conditional:
            try:
                conditional = await self._call(self.ex.fetch_open_orders, None, None, None,
                                               dict(self.conditional))
            except E.ExchangeCallError as e:
                self._failed(e, failures)
        # A configured symbol the exchange does not list must not fail every round forever.
        configured = {s for s in self.symbols if s in self.ex.markets}
        cond_symbols = {o["symbol"] for o in conditional}
        # Conditional first: a stop that triggers between the read and its cancel becomes a
        # regular order, so the regular cancels cover the conditional orders' symbols too.
        if self.conditional:
            for sym in sorted(configured | cond_symbols):
                await self._cancel(sym, self.conditional, failures)
        for sym in sorted(configured | cond_symbols | {o["symbol"] for o in regular}):
            await self._cancel(sym, {}, failures)
        return len(regular) + len(conditional), len(conditional)

    async def _cancel(self, sym: str, params: dict[str, Any], failures: list[Exception]) -> None:
        try:
            await self._call(self.ex.cancel_all_orders, sym, dict(params))
        except E.ExchangeCallError as e:
            if e.classification.outcome != "gone":  # nothing to cancel is what we want
                self._failed(e, failures)

    @staticmethod
    def _failed(e: Exception, failures: list[Exception]) -> None:
        failures.append(e)
        if isinstance(e, Banned):
            raise e

    async def close_all(self, failures: list[Exception]) -> tuple[int, list[dict[str, Any]]]:
        """Close every position; re-read and close the rest while a pass makes progress.
        Returns the closes sent and the positions of the last read, made after the last close
        (the round's verify read of the positions). A failed read propagates."""
        sent = 0
        rows = await self.positions()
        for _ in range(CLOSE_PASSES):
            if not rows:
                break
            errors: list[Exception] = []
            for p in rows:  # one position that cannot be closed must not keep the others open
                try:
                    sent += await self.closer.close(p)
                except Exception as e:  # noqa: BLE001 - reported by the round
                    self._failed(e, errors)
            failures.extend(errors)
            before, rows = _size(rows), await self.positions()
            after = _size(rows)
            if errors or not any(after.get(k, 0.0) < v for k, v in before.items()):
                break  # the round reports what is left, the next round retries
            if rows:
                log.warning("kill path: positions left after closing (partial fills), closing "
                            "the rest: %s", ", ".join(f"{k[0]} {k[1]} {v:g}"
                                                      for k, v in after.items()))
        return sent, rows

    async def verify(self) -> RoundResult:
        """Fresh reads: both kinds of open orders and the positions."""
        regular, conditional = await self._read_orders()
        return self._result(regular, conditional, await self.positions())

    @staticmethod
    def _result(regular: list[dict[str, Any]], conditional: list[dict[str, Any]],
                positions: list[dict[str, Any]]) -> RoundResult:
        return RoundResult(
            flat=not regular and not conditional and not positions,
            open_orders=[_order_line(o, False) for o in regular]
            + [_order_line(o, True) for o in conditional],
            positions=[f"{p['symbol']} {p.get('side')} {p.get('contracts')}" for p in positions],
        )

    async def round(self, cancel_only: bool = False) -> RoundResult:
        """One cancel-close-verify round; never raises an exchange error (it is reported).

        A failed cancel does not stop the closes (closing positions matters most), and the
        verify reads decide: an error on the way only matters if the account is not flat, and
        then it is reported in ``error``. A failed read of what is left, or a ban, fails it.
        """
        r = _Round()
        token = _ROUND.set(r)
        cancelled = cancelled_cond = closes = 0
        res: RoundResult | None = None
        try:
            try:
                cancelled, cancelled_cond = await self.cancel_all(r.failures)
                positions: list[dict[str, Any]] = []
                if not cancel_only:
                    closes, positions = await self.close_all(r.failures)
                regular, conditional = await self._read_orders()
                res = self._result(regular, conditional, positions)
            except Exception as e:  # noqa: BLE001 - a ban, or a read of what is left failed
                if e not in r.failures:
                    r.failures.append(e)
        finally:
            _ROUND.reset(token)
        res = res or RoundResult(False)
        res.cancelled, res.cancelled_conditional, res.closes = cancelled, cancelled_cond, closes
        res.requests, res.banned, res.markets_reloaded = r.requests, r.ban is not None, r.reloaded
        if r.failures:
            text = "; ".join(_describe(e) for e in r.failures if not isinstance(e, Banned))
            if r.ban is not None:  # first, so the alert says why the round stopped
                text = f"banned (round stopped, nothing more sent): {r.ban}; {text}"
            if res.flat:
                log.warning("kill path: verified despite errors on the way: %s", text[:500])
            else:
                res.error = text.rstrip("; ")[:1000]
                res.failure = max((_kind(e) for e in r.failures), key=_SEVERITY.__getitem__)
        return res

    async def close(self) -> None:
        await self.ex.close()
