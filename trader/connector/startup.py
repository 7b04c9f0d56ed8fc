"""Start-up of the connector's exchange session: the same path after a crash as on a first run.

Order: keys -> session -> markets -> exchange time -> position mode (one-way only) -> leverage
per symbol (every symbol listed, the leverage within its brackets and set, else a refusal naming
the key) -> key permissions -> adopt what is already on the account -> dead-man switch and feed
objects. A fatal exchange error here is handled like any other (halt requested); a
:class:`Refusal` ends the process with exit 78 (EX_CONFIG), its reason sent to the supervisor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from trader.exchange import errors as E
from trader.exchange.dms import DeadManSwitch
from trader.exchange.feed import PollFeed, WsFeed
from trader.exchange.keys import KeysError, check_permissions, load_keys
from trader.exchange.numbers import BadExchangeData
from trader.exchange.session import build_exchange
from trader.kernel.errors import FlatguardError

if TYPE_CHECKING:
    from trader.connector.service import Connector

log = logging.getLogger("flatguard.connector")


class Refusal(FlatguardError, RuntimeError):
    """The connector will not trade with this set-up (keys, position mode). Fix and restart."""


def _keys(c: Connector) -> tuple[str, str]:
    xc = c.xc
    try:
        k = load_keys(xc.key_file)
    except KeysError as e:
        if xc.id == "sim" and not xc.key_file:
            from trader.sim.state import SIM_API_KEY, SIM_API_SECRET
            return SIM_API_KEY, SIM_API_SECRET  # the built-in sim's published demo keys
        raise Refusal(str(e)) from None
    log.info("event=keys source=%r", k.source)
    return k.key, k.secret


async def start_session(c: Connector) -> Any:
    xc = c.xc
    key, secret = _keys(c)
    ex_id = "binanceusdm" if xc.id == "sim" else xc.id
    if xc.id == "sim" and not xc.url:
        raise Refusal("exchange.id = 'sim' needs exchange.url (the supervisor sets it)")
    try:
        ex = build_exchange(ex_id, url=xc.url, ws_url=xc.ws_url, api_key=key, api_secret=secret,
                            testnet=xc.testnet, pro=True, recv_window_ms=xc.recv_window,
                            timeout_ms=int(xc.timeout * 1000), ban_board=c.limits.board)
    except ValueError as e:
        raise Refusal(f"exchange.id {xc.id!r}: {e}") from None
    c.wire(ex)
    g = c.guard
    assert g is not None and c.clock is not None
    try:
        await g.call("load_markets", ex.load_markets, essential=True)
        await g.call("fetch_time", c.clock.sync, essential=True)
        await _position_mode(c, ex)
        await _leverage(c, ex)
        await _key_check(c, ex)
        await c.reconcile("start-up", adopt=True)
        _adopt(c)
    except E.Fatal:
        log.error("event=startup_fatal state=FATAL")  # halt already requested by the guard
    except BadExchangeData as e:
        # Not confirmed: trading waits for a reconcile that makes sense, and the account
        # unconfirmed for exchange.max_unconfirmed since start-up is fatal.
        log.error("event=startup_unconfirmed error=%r", str(e))
    feed = xc.feed
    if feed == "auto":
        feed = "ws" if ex.has.get("watchOrders") and ex.has.get("watchPositions") else "poll"
    c.feed = (WsFeed(ex, g, c.tradable, c.boundary) if feed == "ws"
              else PollFeed(ex, g, c.tradable, c.boundary, xc.poll_interval))
    c.dms = DeadManSwitch(ex, g, c.tradable, xc.dms_interval, xc.dms_timeout)
    return ex


async def _position_mode(c: Connector, ex: Any) -> None:
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


async def _leverage(c: Connector, ex: Any) -> None:
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


async def _key_check(c: Connector, ex: Any) -> None:
    kc = await check_permissions(ex, c.xc.id)
    if not kc.checked:
        log.info("event=key_check_skipped note=%r", kc.note)
        return
    if kc.unsafe:
        if c.xc.refuse_unsafe_keys:
            raise Refusal(f"unsafe API key: {kc.problems()} (exchange.refuse_unsafe_keys = true); "
                          "make a trade-only key restricted to this host's IP")
        c.warn("UNSAFE API KEY", f"{kc.problems()}: make a trade-only key restricted to this "
               "host's IP (exchange.refuse_unsafe_keys = true refuses such keys)")


def _adopt(c: Connector) -> None:
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
