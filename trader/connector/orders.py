"""Order requests: validate, journal the intent, send with the client id, never duplicate.

A create whose outcome is unknown (timeout, 5xx, -1007, a lost reply) is resolved by looking
the client order id up before any retry; a retry re-uses the same client id, so if the first
attempt did land, the exchange refuses the second (-4116) and the lookup finds the first.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from trader.exchange import errors as E
from trader.exchange.calls import BACKOFF_CAP, Guard
from trader.journal import Journal

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule


class BadRequest(ValueError):
    """The request itself is malformed: reply ``rejected`` with what is wrong; nothing sent."""

    kind = "rejected"


class Refused(RuntimeError):
    """Trading is stopped after a fatal error: reply ``fatal``; nothing sent."""

    kind = "fatal"


def validate(args: dict[str, Any], tradable: list[str]) -> dict[str, Any]:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise BadRequest(msg)

    cid = args.get("client_id")
    need(isinstance(cid, str) and bool(CLIENT_ID.match(cid)),
         "client_id must match [.A-Z:/a-z0-9_-]{1,36}")
    sym = args.get("symbol")
    need(sym in tradable, f"symbol {sym!r} is not tradable here (tradable: {', '.join(tradable)})")
    side, typ = args.get("side"), args.get("type")
    need(side in ("buy", "sell"), "side must be 'buy' or 'sell'")
    need(typ in ("market", "limit"), "type must be 'market' or 'limit'")
    amount = args.get("amount")
    need(isinstance(amount, int | float) and not isinstance(amount, bool) and amount > 0,
         "amount must be a number > 0")
    price = args.get("price")
    if typ == "limit":
        need(isinstance(price, int | float) and not isinstance(price, bool) and price > 0,
             "a limit order needs price > 0")
    else:
        price = None
    tif = args.get("tif")
    need(tif in (None, "GTC", "IOC", "FOK", "GTX"), "tif must be GTC, IOC, FOK or GTX")
    return {"client_id": cid, "symbol": sym, "side": side, "type": typ, "amount": float(amount),
            "price": float(price) if price is not None else None,
            "reduce_only": bool(args.get("reduce_only", False)), "tif": tif}


def reply(o: dict[str, Any], client_id: str) -> dict[str, Any]:
    return {"id": str(o.get("id") or ""), "client_id": client_id, "status": o.get("status"),
            "filled": o.get("filled"), "average": o.get("average"), "price": o.get("price"),
            "amount": o.get("amount")}


async def lookup(guard: Guard, ex: Any, symbol: str, client_id: str) -> dict[str, Any] | None:
    """The order with this client id, or None when the exchange says it was never placed."""
    n = 0
    while True:
        try:
            return await guard.attempt("fetch_order", ex.fetch_order, None, symbol,
                                       {"origClientOrderId": client_id})
        except E.Rejected as r:
            if r.classification.outcome == "absent":
                return None
            raise
        except E.Transient:
            await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** n))
            n += 1


async def create(guard: Guard, ex: Any, journal: Journal, req: dict[str, Any]) -> dict[str, Any]:
    cid, sym = req["client_id"], req["symbol"]
    journal.record_intent(cid, sym, req["side"], req["type"], req["amount"], req["price"],
                          req["reduce_only"])  # durable before anything leaves this process
    params: dict[str, Any] = {"clientOrderId": cid}
    if req["reduce_only"]:
        params["reduceOnly"] = True
    if req["tif"]:
        params["timeInForce"] = req["tif"]
    n = 0
    resynced = False
    while True:
        try:
            o = await guard.attempt("create_order", ex.create_order, sym, req["type"], req["side"],
                                    req["amount"], req["price"], dict(params))
            break
        except E.Rejected as r:
            if r.classification.outcome == "lookup":
                found = await lookup(guard, ex, sym, cid)
                if found is not None:
                    o = found
                    break
            journal.update_order(cid, "rejected", error=r.classification.describe())
            raise
        except E.Transient as t:
            if t.classification.outcome == "resync" and not resynced:
                resynced = True  # -1021: refused before processing, safe to resend
                await guard.resync()
                continue
            found = await lookup(guard, ex, sym, cid)  # outcome unknown: did it land?
            if found is not None:
                o = found
                break
            await asyncio.sleep(min(BACKOFF_CAP, 0.05 * 2 ** n))
            n += 1
        except E.Fatal as f:
            journal.update_order(cid, "error", error=f.classification.describe())
            raise
    journal.update_order(cid, str(o.get("status") or "open"), exchange_id=str(o.get("id") or ""),
                         filled=o.get("filled"))
    return o
