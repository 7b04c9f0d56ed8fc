"""Start-up of the connector's exchange session: the same path after a crash as on a first run.

``start_session``: venue (``exchange.id`` -> ``trader/exchange/venues``; an id without a venue
module is refused by name) -> keys (environment or ``exchange.key_file``; for the built-in sim
the supervisor passes its keys in the environment) -> session, with the ccxt capabilities the
venue needs checked -> markets -> exchange time -> position mode (one-way only) -> leverage per
symbol (every symbol listed, the leverage within its brackets and set, else a refusal naming
the key) -> key permissions -> dead-man switch and feed objects. It returns a :class:`Session`;
the connector takes it (``attach``) and ``confirm_start`` then adopts what is already on the
account. A fatal exchange error here is handled like any other (halt requested, the rest of the
sequence skipped); a :class:`Refusal` ends the process with exit 78 (EX_CONFIG), its reason sent
to the supervisor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from trader.connector import fence
from trader.exchange import errors as E
from trader.exchange.calls import Guard, install_recorder
from trader.exchange.clock import ExchangeClock
from trader.exchange.dms import DeadManSwitch
from trader.exchange.feed import PollFeed, Sink, WsFeed
from trader.exchange.keys import KeysError, load_keys
from trader.exchange.numbers import BadExchangeData
from trader.exchange.ratelimit import RateLimits
from trader.exchange.reconcile import Account
from trader.exchange.session import build_exchange
from trader.exchange.venues import (
    MissingCapabilities,
    UnsupportedVenue,
    Venue,
    require_capabilities,
    venue_for,
)
from trader.kernel.config import ExchangeConfig
from trader.kernel.errors import FlatguardError

log = logging.getLogger("flatguard.connector")


class Refusal(FlatguardError, RuntimeError):
    """The connector will not trade with this set-up (keys, position mode). Fix and restart."""


class Host(Protocol):
    """What start-up needs from the connector process (``service.Connector``)."""

    xc: ExchangeConfig
    limits: RateLimits
    boundary: Sink
    account: Account
    journal: Any  # ``Journal``: ``order(client_id)``
    fatal: E.Classification | None

    def warn(self, title: str, text: str) -> None: ...
    def on_fatal(self, c: E.Classification) -> None: ...
    def on_ok(self) -> None: ...
    async def reconcile(self, why: str, *, adopt: bool = False) -> list[str]: ...


@dataclass
class Session:
    """The connector's exchange session, as start-up built and proved it."""

    xc: ExchangeConfig
    venue: Venue
    exchange: Any  # ccxt.pro exchange
    clock: ExchangeClock
    guard: Guard
    tradable: list[str] = field(default_factory=list)  # symbols whose leverage is set
    feed: WsFeed | PollFeed | None = None
    dms: DeadManSwitch | None = None

    @property
    def markets(self) -> dict[str, Any]:
        return dict(self.exchange.markets or {})


def _keys(xc: ExchangeConfig) -> tuple[str, str]:
    try:
        k = load_keys(xc.key_file)
    except KeysError as e:
        raise Refusal(str(e)) from None
    log.info("event=keys source=%r", k.source)
    return k.key, k.secret


def _feed_kind(xc: ExchangeConfig, ex: Any) -> str:
    if xc.feed != "auto":
        return xc.feed
    return "ws" if ex.has.get("watchOrders") and ex.has.get("watchPositions") else "poll"


def _open(host: Host) -> Session:
    """The venue and a wired ccxt.pro session (no request sent yet)."""
    xc = host.xc
    try:
        venue = venue_for(xc.id)
    except UnsupportedVenue as e:
        raise Refusal(str(e)) from None
    if xc.id == "sim" and not xc.url:
        raise Refusal("exchange.id = 'sim' needs exchange.url (the supervisor sets it)")
    key, secret = _keys(xc)
    try:
        ex = build_exchange(venue.id, url=xc.url, ws_url=xc.ws_url, api_key=key,
                            api_secret=secret, testnet=xc.testnet, pro=True,
                            recv_window_ms=xc.recv_window, timeout_ms=int(xc.timeout * 1000),
                            ban_board=host.limits.board)
    except ValueError as e:
        raise Refusal(f"exchange.id {xc.id!r}: {e}") from None
    fence.install(ex)  # outermost: a fenced create never reaches the ban check or the wire
    install_recorder(ex, host.limits, venue.weight_used)
    clock = ExchangeClock(ex, host.warn)
    guard: Guard

    def fatal(c: E.Classification) -> None:
        guard.abandon()  # stop retrying: the kill path needs the exchange now
        host.on_fatal(c)

    guard = Guard(host.limits, clock, rules=venue.rules, retry_budget=xc.retry_budget,
                  retry_window=xc.retry_window, on_fatal=fatal, on_ok=host.on_ok)
    return Session(xc, venue, ex, clock, guard)


async def start_session(host: Host) -> Session:
    s = _open(host)
    ex, g, xc = s.exchange, s.guard, s.xc
    feed = _feed_kind(xc, ex)
    try:
        try:
            require_capabilities(s.venue, ex, stream=feed == "ws")
        except MissingCapabilities as e:
            raise Refusal(f"exchange.id = {xc.id!r}: {e}") from None
        try:
            await g.call("load_markets", ex.load_markets, essential=True)
            await g.call("fetch_time", s.clock.sync, essential=True)
            await _position_mode(s, ex)
            _contract_sizes(s, ex)
            await _leverage(s, ex)
            await _key_check(s, host.warn)
        except E.Fatal:
            log.error("event=startup_fatal state=FATAL")  # halt already requested by the guard
    except Refusal:
        await _close_quietly(ex)
        raise
    s.feed = (WsFeed(ex, g, s.tradable, host.boundary) if feed == "ws"
              else PollFeed(ex, g, s.tradable, host.boundary, xc.poll_interval))
    s.dms = DeadManSwitch(ex, g, s.tradable, xc.dms_interval, xc.dms_timeout, venue=s.venue)
    return s


async def confirm_start(host: Host) -> None:
    """After the connector took the session: adopt what is already on the account (skipped
    once a fatal error was declared, as every later start-up step is)."""
    if host.fatal is not None:
        return
    try:
        await host.reconcile("start-up", adopt=True)
        _adopt(host)
    except E.Fatal:
        log.error("event=startup_fatal state=FATAL")  # halt already requested by the guard
    except BadExchangeData as e:
        # Not confirmed: trading waits for a reconcile that makes sense, and the account
        # unconfirmed for exchange.max_unconfirmed since start-up is fatal.
        log.error("event=startup_unconfirmed error=%r", str(e))


async def _close_quietly(ex: Any) -> None:
    try:
        await ex.close()
    except Exception:  # noqa: BLE001 - closing after a refusal; the refusal is what matters
        pass


async def _position_mode(c: Session, ex: Any) -> None:
    if not ex.has.get("fetchPositionMode"):
        log.info("event=position_mode_unchecked exchange=%s", ex.id)
        return
    sym = next((s for s in c.xc.symbols if s in ex.markets), None)
    mode = await c.guard.call("fetch_position_mode", ex.fetch_position_mode, sym,  # type: ignore[union-attr]
                              essential=True)
    if mode.get("hedged"):
        raise Refusal("the account is in hedge (dual-side) position mode; flatguard supports "
                      "one-way mode only: switch it to one-way in the exchange's settings "
                      "(with no open positions or orders) and start again")


async def _leverage(c: Session, ex: Any) -> None:
    """Every configured symbol listed, and its leverage within the symbol's brackets and set --
    else a refusal naming the key (exit 78): a set-up that cannot be honoured is the config's
    fault, never a kill switch's, and never a stack that reports ready while trading nothing."""
    g = c.guard
    assert g is not None
    lev = c.xc.leverage
    missing = [s for s in c.xc.symbols if s not in ex.markets]
    if missing:
        raise Refusal(f"exchange.symbols: {', '.join(missing)} not listed by {ex.id}: "
                      "remove them or fix the spelling (ccxt's unified form, e.g. "
                      "'BTC/USDT:USDT')")
    maxima = await _max_leverage(ex, list(c.xc.symbols))
    above = {s: m for s, m in maxima.items() if lev > m}
    if above:
        raise Refusal(f"exchange.leverage = {lev} is above the maximum {ex.id} allows for " +
                      ", ".join(f"{s} ({m:g}x)" for s, m in above.items()))
    for sym in c.xc.symbols:
        try:
            await g.call("set_leverage", ex.set_leverage, lev, sym, essential=True)
        except E.Rejected as r:
            raise Refusal(f"exchange.leverage = {lev} could not be set for {sym} on {ex.id} "
                          f"({r.classification.describe()})") from None
        c.tradable.append(sym)
    log.info("event=leverage_set leverage=%d symbols=%s", c.xc.leverage, ",".join(c.tradable))


def _contract_sizes(c: Session, ex: Any) -> None:
    """The trader's risk caps count one contract as one unit of the base asset (notional =
    contracts x price): a symbol whose contract is another size (``contractSize``, e.g. 0.01 BTC
    on OKX) would be capped 100x off, so it is refused until the trader reads the size."""
    odd = {s: c.venue.contract_size(ex.markets[s]) for s in c.xc.symbols if s in ex.markets}
    odd = {s: size for s, size in odd.items() if size != 1.0}
    if odd:
        raise Refusal("exchange.symbols: " + ", ".join(f"{s} (contract size {z:g})"
                                                        for s, z in odd.items())
                      + f" on {ex.id}: the risk caps count one contract as one unit of the base "
                      "asset; only symbols whose contract size is 1 are supported")


async def _max_leverage(ex: Any, symbols: list[str]) -> dict[str, float]:
    """The highest leverage of each symbol's brackets, where the venue publishes them. Advisory:
    a failed read is logged and skipped (``set_leverage`` refuses by itself then, -4028)."""
    if not ex.has.get("fetchLeverageTiers"):
        return {}
    try:
        tiers = await ex.fetch_leverage_tiers(symbols)
    except Exception as e:  # noqa: BLE001 - advisory; the real check is set_leverage's answer
        log.warning("event=leverage_brackets_unread error=%r", f"{type(e).__name__}: {e}"[:200])
        return {}
    out = {}
    for sym in symbols:
        ms = [float(t["maxLeverage"]) for t in tiers.get(sym) or () if t.get("maxLeverage")]
        if ms:
            out[sym] = max(ms)
    return out


async def _key_check(c: Session, warn: Callable[[str, str], None]) -> None:
    kc = await c.venue.check_keys(c.exchange)
    if not kc.checked:
        log.info("event=key_check_skipped note=%r", kc.note)
        return
    if kc.unsafe:
        if c.xc.refuse_unsafe_keys:
            raise Refusal(f"unsafe API key: {kc.problems()} (exchange.refuse_unsafe_keys = true); "
                          "make a trade-only key restricted to this host's IP")
        warn("UNSAFE API KEY", f"{kc.problems()}: make a trade-only key restricted to this "
             "host's IP (exchange.refuse_unsafe_keys = true refuses such keys)")


def _adopt(c: Host) -> None:
    acct = c.account
    adopted: list[dict[str, Any]] = []
    for p in acct.positions.values():
        adopted.append({"kind": "position", "symbol": p["symbol"], "contracts": p["contracts"],
                        "entry_price": p["entry_price"]})
    for o in acct.orders.values():
        if not o["client_id"] or c.journal.order(o["client_id"]) is None:
            adopted.append({"kind": "order", "symbol": o["symbol"], "client_id": o["client_id"],
                            "id": o["id"], "side": o["side"], "price": o["price"],
                            "amount": o["amount"]})
    acct.adopted = adopted
    if adopted:
        text = "; ".join(f"{a['kind']} {a['symbol']} " + (
            f"{a['contracts']:+g} @ {a['entry_price']:g}" if a["kind"] == "position"
            else f"{a['side']} {a['amount']:g} @ {a['price']} id={a['id']}") for a in adopted)
        c.warn("adopted account state", f"already on the account at start-up: {text}")
