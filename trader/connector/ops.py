"""The connector's request operations (``trader/kernel/protocol.py`` documents them).

The bus ``Responder`` turns an exception with a ``kind`` into an error reply of that kind:
``rejected`` (bad request, the exchange refused, not placed), ``fatal`` (trading stopped),
``fenced`` (the kill path fenced the order flow), ``bad_data`` (the exchange sent nonsense).

The ops see the connector through ``Host`` (what they read and call), never its class: the
service builds the table with ``dispatcher(self)``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from trader.connector import orders
from trader.connector.fence import Fence
from trader.exchange import errors as E
from trader.exchange.calls import Guard
from trader.exchange.clock import ExchangeClock
from trader.exchange.dms import DeadManSwitch
from trader.exchange.feed import PollFeed, WsFeed
from trader.exchange.numbers import BadExchangeData
from trader.exchange.ratelimit import RateLimits
from trader.exchange.reconcile import Account
from trader.kernel import config
from trader.kernel.bus import Dispatcher
from trader.kernel.journal import Journal
from trader.kernel.payloads import OrderUpdate
from trader.kernel.protocol import CONNECTOR, ORDER, ConnectorOp, OrderStatus
from trader.kernel.wire import Message

log = logging.getLogger("flatguard.connector")

ORDER_MAX_AGE = 2.0  # s: an order request older than this is refused as stale


class Host(Protocol):
    """What the ops use of the connector process (``trader/connector/service.py``)."""

    cfg: config.Config
    xc: config.ExchangeConfig
    state: str
    account: Account
    journal: Journal
    pub: Any
    ex: Any
    guard: Guard | None
    clock: ExchangeClock | None
    feed: WsFeed | PollFeed | None
    dms: DeadManSwitch | None
    limits: RateLimits
    fence: Fence
    fatal: E.Classification | None
    tradable: list[str]
    trader_alive: float
    trader_seen: float
    place: orders.Placer | None  # the venue's create_order bound to ``ex`` (None: ccxt's)

    def snapshot(self, source: str) -> dict[str, Any]: ...

    def fresh(self) -> float: ...

    def on_bad_number(self, e: BadExchangeData) -> None: ...

    async def reconcile(self, why: str, *, adopt: bool = False) -> list[str]: ...


def dispatcher(c: Host) -> Dispatcher:
    """The connector's table of ops."""
    Op = ConnectorOp

    def seen(op: str, args: dict[str, Any], msg: Message) -> None:
        if msg.src == "trader":
            c.trader_seen = time.monotonic()

    def trading(op: str) -> None:
        """Refused after a fatal exchange error (``account``/``status`` are still served)."""
        if c.fatal is not None:
            raise orders.Refused("trading stopped after a fatal exchange error: "
                                 f"{c.fatal.describe()}")
        assert c.guard is not None

    async def alive(args: dict[str, Any], msg: Message) -> None:
        c.trader_alive = time.monotonic()
        if c.dms is not None:
            c.dms.trader_alive()

    async def account(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        return c.snapshot("rest" if c.account.confirmed else "none")

    async def status_(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        return status(c)

    async def fence_(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        fenced_at = c.fence.fence(str(args.get("reason") or ""))
        return {"fenced_at": fenced_at, "recv_window_ms": c.xc.recv_window,
                "inflight_until": c.fence.inflight_until()}

    async def unfence(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        c.fence.lift()
        return {"fenced": False}

    async def dms_disarm(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        return await disarm(c)

    async def order_create(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        c.fence.check()  # refused before anything, not even journaled
        trading(Op.ORDER_CREATE)
        return await create(c, args, msg)

    async def order_cancel(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        assert c.guard is not None
        return await cancel(c, args)

    async def order_cancel_all(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        assert c.guard is not None
        return await cancel_all(c, args)

    async def sync(args: dict[str, Any], msg: Message) -> dict[str, Any]:
        trading(Op.SYNC)
        return {"differences": await c.reconcile("sync")}

    return Dispatcher(CONNECTOR, {
        Op.ALIVE: alive, Op.ACCOUNT: account, Op.STATUS: status_, Op.FENCE: fence_,
        Op.UNFENCE: unfence, Op.DMS_DISARM: dms_disarm, Op.ORDER_CREATE: order_create,
        Op.ORDER_CANCEL: order_cancel, Op.ORDER_CANCEL_ALL: order_cancel_all, Op.SYNC: sync,
    }, before=seen)


async def create(c: Host, args: dict[str, Any], msg: Any) -> dict[str, Any]:
    assert c.guard is not None
    age = time.time() - msg.ts
    if age > ORDER_MAX_AGE:
        # A request queued while this process was frozen or restarting: the trader has long
        # since given up on it; sending it now would trade on stale intent.
        raise orders.BadRequest(f"order request is {age:.1f} s old (limit {ORDER_MAX_AGE:g} s): "
                                "refused as stale")
    req = orders.validate(args, c.tradable)
    try:
        o = await orders.create(c.guard, c.ex, c.journal, req, fence=c.fence,
                                recv_window_ms=c.xc.recv_window, place=c.place)
    except orders.NotPlaced as e:
        # The trader may have timed out waiting: the order event tells it as well.
        c.pub.publish(ORDER + req["symbol"], OrderUpdate(
            req["client_id"], "", req["symbol"], req["side"], req["type"], OrderStatus.REJECTED,
            req["amount"], 0.0, req["price"], None, req["reduce_only"], time.time(),
            error=str(e)).to_wire())
        raise
    apply_order(c, o)
    return orders.reply(o, req["client_id"])


def apply_order(c: Host, o: dict[str, Any]) -> None:
    """An order from a REST reply into the account (the feed confirms it anyway)."""
    if not o.get("symbol"):
        return
    try:
        c.account.apply_order(o)
    except BadExchangeData as e:
        c.on_bad_number(e)


def status(c: Host) -> dict[str, Any]:
    return {
        "state": c.state, "clock_offset_s": c.clock.offset_s if c.clock else 0.0,
        "weight_used": c.limits.weight_used(), "banned_for": c.limits.banned_for(),
        "feed": c.feed.kind if c.feed else None,
        "feed_connected": bool(c.feed and c.feed.is_connected),
        "feed_restarts": getattr(c.feed, "restarts", 0),
        "fresh": c.fresh(), "confirmed": c.account.confirmed,
        "last_error": c.guard.last_error if c.guard else "",
        "errors": dict(c.guard.errors) if c.guard else {},
        "symbols": list(c.tradable),
        "dms_armed": sorted(c.dms.armed) if c.dms else [],
        "dms_refreshing": bool(c.dms and not c.dms.stopped),
        "fenced": c.fence.fenced, "fenced_at": c.fence.fenced_at,
        "fatal": c.fatal.describe() if c.fatal else None,
    }


async def disarm(c: Host) -> dict[str, Any]:
    """Disarm the exchange's countdown now; no refresh until a trader is alive again."""
    if c.dms is None:
        return {"disarmed": [], "mode": "none"}
    was = sorted(c.dms.armed)
    await c.dms.disarm()
    return {"disarmed": was, "mode": c.dms.mode}


async def cancel(c: Host, args: dict[str, Any]) -> dict[str, Any]:
    assert c.guard is not None
    sym, cid, oid = args.get("symbol"), args.get("client_id"), args.get("id")
    if not isinstance(sym, str) or not (cid or oid):
        raise orders.BadRequest("order.cancel needs symbol and client_id or id")
    params: dict[str, Any] = {"recvWindow": c.cfg.killswitch.recv_window}
    if cid:
        params["origClientOrderId"] = cid
    try:
        o = await c.guard.call("cancel_order", c.ex.cancel_order, oid, sym, params,
                               essential=True)
    except E.Rejected as r:
        if r.classification.outcome == "gone":
            return {"status": "gone", "client_id": cid, "id": oid}
        raise
    apply_order(c, o)
    return {"status": o.get("status"), "client_id": cid, "id": str(o.get("id") or oid)}


async def cancel_all(c: Host, args: dict[str, Any]) -> dict[str, Any]:
    assert c.guard is not None
    sym = args.get("symbol")
    syms = [sym] if sym else sorted({*c.tradable, *(o["symbol"] for o in
                                                      c.account.orders.values())})
    for s in syms:
        await c.guard.call("cancel_all_orders", c.ex.cancel_all_orders, s,
                           {"recvWindow": c.cfg.killswitch.recv_window}, essential=True)
    return {"symbols": syms}
