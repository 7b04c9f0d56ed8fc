"""The connector's request operations (``trader/protocol.py`` documents them).

The bus ``Responder`` turns an exception with a ``kind`` into an error reply of that kind:
``rejected`` (bad request, the exchange refused, not placed), ``fatal`` (trading stopped),
``fenced`` (the kill path fenced the order flow), ``bad_data`` (the exchange sent nonsense).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from trader.connector import orders
from trader.exchange import errors as E
from trader.exchange.numbers import BadExchangeData
from trader.kernel.protocol import ORDER

if TYPE_CHECKING:
    from trader.connector.service import Connector

log = logging.getLogger("flatguard.connector")

ORDER_MAX_AGE = 2.0  # s: an order request older than this is refused as stale


async def handle(c: Connector, op: str, args: dict[str, Any], msg: Any) -> Any:
    if msg.src == "trader":
        c.trader_seen = time.monotonic()
    if op == "alive":
        c.trader_alive = time.monotonic()
        if c.dms is not None:
            c.dms.trader_alive()
        return None
    if op == "account":
        return c.snapshot("rest" if c.account.confirmed else "none")
    if op == "status":
        return status(c)
    if op == "fence":
        fenced_at = c.fence.fence(str(args.get("reason") or ""))
        return {"fenced_at": fenced_at, "recv_window_ms": c.xc.recv_window,
                "inflight_until": c.fence.inflight_until()}
    if op == "unfence":
        c.fence.lift()
        return {"fenced": False}
    if op == "dms.disarm":
        return await disarm(c)
    if op == "order.create":
        c.fence.check()  # refused before anything, not even journaled
    if c.fatal is not None and op in ("order.create", "sync"):
        raise orders.Refused(f"trading stopped after a fatal exchange error: {c.fatal.describe()}")
    assert c.guard is not None
    if op == "order.create":
        return await create(c, args, msg)
    if op == "order.cancel":
        return await cancel(c, args)
    if op == "order.cancel_all":
        return await cancel_all(c, args)
    if op == "sync":
        return {"differences": await c.reconcile("sync")}
    raise orders.BadRequest(f"unknown op {op!r}")


async def create(c: Connector, args: dict[str, Any], msg: Any) -> dict[str, Any]:
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
                                recv_window_ms=c.xc.recv_window)
    except orders.NotPlaced as e:
        # The trader may have timed out waiting: the order event tells it as well.
        c.pub.publish(ORDER + req["symbol"], {
            "client_id": req["client_id"], "id": "", "symbol": req["symbol"], "side": req["side"],
            "type": req["type"], "status": "rejected", "amount": req["amount"], "filled": 0.0,
            "price": req["price"], "average": None, "reduce_only": req["reduce_only"],
            "error": str(e), "ts": time.time()})
        raise
    apply_order(c, o)
    return orders.reply(o, req["client_id"])


def apply_order(c: Connector, o: dict[str, Any]) -> None:
    """An order from a REST reply into the account (the feed confirms it anyway)."""
    if not o.get("symbol"):
        return
    try:
        c.account.apply_order(o)
    except BadExchangeData as e:
        c.on_bad_number(e)


def status(c: Connector) -> dict[str, Any]:
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


async def disarm(c: Connector) -> dict[str, Any]:
    """Disarm the exchange's countdown now; no refresh until a trader is alive again."""
    if c.dms is None:
        return {"disarmed": [], "mode": "none"}
    was = sorted(c.dms.armed)
    await c.dms.disarm()
    return {"disarmed": was, "mode": c.dms.mode}


async def cancel(c: Connector, args: dict[str, Any]) -> dict[str, Any]:
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


async def cancel_all(c: Connector, args: dict[str, Any]) -> dict[str, Any]:
    assert c.guard is not None
    sym = args.get("symbol")
    syms = [sym] if sym else sorted({*c.tradable, *(o["symbol"] for o in
                                                      c.account.orders.values())})
    for s in syms:
        await c.guard.call("cancel_all_orders", c.ex.cancel_all_orders, s,
                           {"recvWindow": c.cfg.killswitch.recv_window}, essential=True)
    return {"symbols": syms}
