"""Order requests: validate, journal the intent, send with the client id, never duplicate.

A create whose outcome is unknown (timeout, 5xx, -1007, a lost reply) may still land until its
timestamp + its ``recvWindow``, and Binance refuses a duplicate client id only among *open*
orders: re-sending at once can double a market order that filled. So:

1. look the client id up at once (a read): if the order is there, that is the answer;
2. otherwise wait until the request can no longer be processed — the failure's time (later
   than the request's signed timestamp) + its ``recvWindow`` + ``LOOKUP_MARGIN_S`` — then look
   it up again;
3. still absent: it was **not placed**, and it is **not re-sent**: the reply is ``rejected``
   ("not placed") and the strategy decides. By then the intent is seconds old (the connector
   refuses requests older than ``ORDER_MAX_AGE`` as stale for the same reason).

A create refused before it was processed (-1021 is resent once after a time resync; rate
limits, a ban or the weight share are not retried) is reported not placed at once. Once the
connector is fenced (``fence.py``) nothing more is sent and every wait above ends with kind
``fenced``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from trader.connector.fence import Fence, Fenced
from trader.exchange import errors as E
from trader.exchange.calls import BACKOFF_CAP, Guard
from trader.exchange.numbers import BadExchangeData
from trader.kernel.errors import FlatguardError
from trader.kernel.journal import Journal
from trader.kernel.protocol import OrderStatus as S

log = logging.getLogger("flatguard.connector")

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule
# Binance accepts a timestamp at most 1 s ahead of its clock, so whatever our clock-offset error,
# a request cannot be processed later than its signing + recvWindow + 1 s; one more second for
# the hop from the gateway to the matching engine.
LOOKUP_MARGIN_S = 2.0
# ccxt's create_order signature: (symbol, type, side, amount, price, params) -> order
Placer = Callable[..., Awaitable[dict[str, Any]]]


class BadRequest(FlatguardError, ValueError):
    """The request itself is malformed: reply ``rejected`` with what is wrong; nothing sent."""

    kind = "rejected"


class Refused(FlatguardError, RuntimeError):
    """Trading is stopped after a fatal error: reply ``fatal``; nothing sent."""

    kind = "fatal"


class NotPlaced(E.NotSent):
    """The exchange does not have this order (refused before processing, or looked up after its
    recvWindow ran out). Policy: reply ``rejected``; not re-sent, the strategy decides."""

    kind = "rejected"


def validate(args: dict[str, Any], tradable: list[str]) -> dict[str, Any]:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise BadRequest(msg)

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0

    cid = args.get("client_id")
    need(isinstance(cid, str) and bool(CLIENT_ID.match(cid)),
         "client_id must match [.A-Z:/a-z0-9_-]{1,36}")
    sym = args.get("symbol")
    need(sym in tradable, f"symbol {sym!r} is not tradable here (tradable: {', '.join(tradable)})")
    side, typ = args.get("side"), args.get("type")
    need(side in ("buy", "sell"), "side must be 'buy' or 'sell'")
    need(typ in ("market", "limit"), "type must be 'market' or 'limit'")
    amount = args.get("amount")
    need(number(amount), "amount must be a finite number > 0")
    price = args.get("price")
    if typ == "limit":
        need(number(price), "a limit order needs a finite price > 0")
    else:
        price = None
    tif = args.get("tif")
    need(tif in (None, "GTC", "IOC", "FOK", "GTX"), "tif must be GTC, IOC, FOK or GTX")
    return {"client_id": cid, "symbol": sym, "side": side, "type": typ, "amount": float(amount),
            "price": float(price) if price is not None else None,
            "reduce_only": bool(args.get("reduce_only", False)), "tif": tif}


def _num(v: Any) -> Any:
    """A reply field as the trader may see it: never NaN or infinite."""
    if isinstance(v, int | float) and not isinstance(v, bool) and not math.isfinite(v):
        return None
    return v


def reply(o: dict[str, Any], client_id: str) -> dict[str, Any]:
    return {"id": str(o.get("id") or ""), "client_id": client_id, "status": o.get("status"),
            "filled": _num(o.get("filled")), "average": _num(o.get("average")),
            "price": _num(o.get("price")), "amount": _num(o.get("amount"))}


async def lookup_once(guard: Guard, ex: Any, symbol: str, client_id: str
                      ) -> tuple[bool, dict[str, Any] | None]:
    """One lookup: (answered, order). ``answered`` is False when the read itself failed."""
    try:
        o = await guard.attempt("fetch_order", ex.fetch_order, None, symbol,
                                {"origClientOrderId": client_id})
        return True, o
    except E.Rejected as r:
        if r.classification.outcome == "absent":
            return True, None
        raise
    except E.Transient:
        return False, None


async def lookup(guard: Guard, ex: Any, symbol: str, client_id: str, fence: Fence,
                 what: str) -> dict[str, Any] | None:
    """The order with this client id, or None when the exchange says it does not exist.
    Transient failures are retried within the guard's budget (then Fatal) until fenced."""
    n = 0
    while True:
        answered, o = await lookup_once(guard, ex, symbol, client_id)
        if answered:
            return o
        await fence.sleep(min(BACKOFF_CAP, 0.05 * 2 ** n), what)
        n += 1


async def create(guard: Guard, ex: Any, journal: Journal, req: dict[str, Any], *, fence: Fence,
                 recv_window_ms: int, place: Placer | None = None) -> dict[str, Any]:
    """``place``: the venue's create (``Venue.create_order`` bound to ``ex``, same signature
    and errors as ccxt's ``create_order``); default ccxt's own."""
    cid, sym = req["client_id"], req["symbol"]
    send = place if place is not None else ex.create_order
    journal.record_intent(cid, sym, req["side"], req["type"], req["amount"], req["price"],
                          req["reduce_only"])  # durable before anything leaves this process
    params: dict[str, Any] = {"clientOrderId": cid}
    if req["reduce_only"]:
        params["reduceOnly"] = True
    if req["tif"]:
        params["timeInForce"] = req["tif"]

    def not_placed(why: str) -> NotPlaced:
        journal.update_order(cid, S.REJECTED, error=f"not placed: {why}")
        return NotPlaced(f"order {cid} not placed: {why}")

    resynced = False
    while True:
        wait = guard.limits.delay(True)
        if wait > 0:  # banned or over our weight share: sending later would be stale intent
            raise not_placed(f"exchange ban or weight share used up for {wait:.0f} s more; "
                             "not sent")
        try:
            fence.check()
            with fence.gate():
                o = await guard.attempt("create_order", send, sym, req["type"],
                                        req["side"], req["amount"], req["price"], dict(params))
            break
        except Fenced as f:
            journal.update_order(cid, S.REJECTED, error=f"not sent: {f}")
            raise
        except E.Rejected as r:
            if r.classification.outcome == "lookup":  # duplicate id: it is open on the exchange
                found = await lookup(guard, ex, sym, cid, fence, "duplicate id not resolved")
                if found is not None:
                    o = found
                    break
            journal.update_order(cid, S.REJECTED, error=r.classification.describe())
            raise
        except E.Transient as t:
            c = t.classification
            if c.outcome == "resync" and not resynced:
                resynced = True  # -1021: refused before processing, safe to resend
                await guard.resync()
                continue
            if c.outcome != "lookup":  # refused before processing (rate limit, ban, -1015)
                raise not_placed(c.describe()) from t
            o = await _resolve(guard, ex, journal, cid, sym, fence, recv_window_ms, c.describe())
            break
        except BadExchangeData as b:  # answered, but unreadable: placed or not, look it up
            o = await _resolve(guard, ex, journal, cid, sym, fence, recv_window_ms, str(b))
            break
        except E.Fatal as f:
            journal.update_order(cid, S.ERROR, error=f.classification.describe())
            raise
    journal.update_order(cid, str(o.get("status") or S.OPEN), exchange_id=str(o.get("id") or ""),
                         filled=_num(o.get("filled")))
    return o


async def _resolve(guard: Guard, ex: Any, journal: Journal, cid: str, sym: str, fence: Fence,
                   recv_window_ms: int, why: str) -> dict[str, Any]:
    """The outcome of a create is unknown: find it, or prove it can no longer land."""
    failed_at = time.monotonic()  # later than the request's signed timestamp
    journal.update_order(cid, S.UNKNOWN, error=why)
    answered, found = await lookup_once(guard, ex, sym, cid)
    if found is not None:
        return found
    bound = failed_at + recv_window_ms / 1000.0 + LOOKUP_MARGIN_S
    log.warning("event=create_outcome_unknown client_id=%s answered=%s wait_s=%.1f error=%r",
                cid, answered, bound - time.monotonic(), why)
    what = f"order {cid}: outcome unknown (may still land until its recvWindow ends)"
    await fence.sleep(bound - time.monotonic(), what)
    found = await lookup(guard, ex, sym, cid, fence, what)
    if found is not None:
        log.info("event=create_resolved client_id=%s found=true", cid)
        return found
    log.warning("event=create_resolved client_id=%s found=false action=not_resent", cid)
    journal.update_order(cid, S.REJECTED, error=f"not placed: {why}")
    raise NotPlaced(f"order {cid} not placed: its reply was lost ({why}) and the "
                    "exchange does not have it after its recvWindow; not re-sent")
