"""Pre-trade exposure arithmetic and the checks that use it. Pure functions of (order, view).

Worst case: every resting order may fill, in any order. For one symbol with position ``p``,
resting buys ``B`` and sells ``S``, the position can reach anywhere in ``[lo, hi]`` (about
``[p - S, p + B]``; reduce-only orders stop at flat, see ``symbol_range``); its worst absolute
size is ``max(hi, -lo, 0)``. Gross exposure is the sum of those sizes at their prices.

An order only moves the extreme on its own side, and only the states beyond the old extreme
are new risk. So, for the order's side extreme after the order (``E`` contracts):
- position cap: ``E x mark`` within the cap;
- gross and leverage caps: ``E x mark`` plus the worst case of every *other* symbol within the
  cap (not "the worst case did not grow": the far extreme on the other side may vanish — its
  orders fill or are cancelled — and leave only the new one);
- an order that makes no position reachable beyond the old extreme on its side (it cannot take
  the position past zero, or only stacks reduce-only orders) "reduces": it creates no new risk
  and passes every exposure cap, order notional included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trader.engine.risk.view import AccountView, OrderIntent, Rejection
from trader.kernel.config import RiskConfig

EPS = 1e-9  # relative tolerance on cap comparisons (float noise, not policy)


def _over(value: float, cap: float) -> bool:
    return value > cap * (1 + EPS)


def symbol_range(
    view: AccountView, symbol: str, extra: OrderIntent | None = None
) -> tuple[float, float]:
    """(lowest, highest) position in contracts reachable if resting orders (and ``extra``)
    fill, in any order, partly or fully. Reduce-only orders never cross zero: they can take a
    position to flat, from where the plain orders on the same side go on, so the lowest is
    ``max(p - S_ro, 0) - S_plain`` for a long ``p`` and ``p - S_plain`` otherwise."""
    p = view.contracts(symbol)
    amounts = {("buy", False): 0.0, ("buy", True): 0.0, ("sell", False): 0.0, ("sell", True): 0.0}
    for o in view.open_orders:
        if o.symbol == symbol and o.remaining > 0:
            amounts[(o.side, o.reduce_only)] += o.remaining
    if extra is not None:
        amounts[(extra.side, extra.reduce_only)] += extra.amount
    lo = (max(p - amounts[("sell", True)], 0.0) if p > 0 else p) - amounts[("sell", False)]
    hi = (min(p + amounts[("buy", True)], 0.0) if p < 0 else p) + amounts[("buy", False)]
    return lo, hi


def worst(lo: float, hi: float) -> float:
    return max(hi, -lo, 0.0)


def value_price(view: AccountView, symbol: str) -> float:
    """Price to value a symbol's exposure: mark, else entry, else a resting limit price; a
    symbol that cannot be valued counts as infinite (blocks new risk, says why)."""
    px = view.price(symbol)
    if px is not None:
        return px
    prices = [o.price for o in view.open_orders if o.symbol == symbol and o.price]
    return max(prices) if prices else math.inf


def gross_exposure(view: AccountView, exclude: str | None = None) -> float:
    symbols = set(view.positions) | {o.symbol for o in view.open_orders}
    symbols.discard(exclude)  # type: ignore[arg-type]
    total = 0.0
    for s in symbols:
        w = worst(*symbol_range(view, s))
        if w > 0:
            total += w * value_price(view, s)
    return total


def held_notional(view: AccountView, symbol: str) -> float:
    """Notional of the position actually held (no resting orders)."""
    c = abs(view.contracts(symbol))
    return c * value_price(view, symbol) if c else 0.0


def held_gross(view: AccountView) -> float:
    return sum(held_notional(view, s) for s in view.positions)


@dataclass(frozen=True)
class Projection:
    """What one order does to the worst case of its symbol."""

    reduces: bool  # makes nothing new reachable on its side: exempt from the exposure caps
    side_extreme: float  # contracts, worst size on the order's side after the order
    others: float  # quote currency, worst-case gross of every other symbol
    gross_before: float  # quote currency, worst-case gross without the order (for messages)


def project(order: OrderIntent, view: AccountView) -> Projection:
    lo, hi = symbol_range(view, order.symbol)
    lo2, hi2 = symbol_range(view, order.symbol, order)
    if order.side == "buy":
        before, side_extreme = max(hi, 0.0), max(hi2, 0.0)
    else:
        before, side_extreme = max(-lo, 0.0), max(-lo2, 0.0)
    # no position reachable beyond what already was on this side: no new risk
    reduces = side_extreme <= before * (1 + EPS)
    others = gross_exposure(view, exclude=order.symbol)
    before = others + worst(lo, hi) * value_price(view, order.symbol)
    return Projection(reduces, side_extreme, others, before)


def exposure_checks(
    order: OrderIntent, view: AccountView, mark: float, cfg: RiskConfig
) -> Rejection | None:
    """Order notional, position notional, gross exposure and leverage, in that order."""
    pr = project(order, view)
    if pr.reduces:
        return None
    sym, cid = order.symbol, order.client_id

    def reject(check: str, msg: str) -> Rejection:
        return Rejection(check, msg, sym, cid)

    ref = order.price if order.price is not None else mark
    notional = order.amount * ref
    if _over(notional, cfg.max_order_notional):
        return reject(
            "order_notional",
            f"order {order.amount:g} x {ref:g} = {notional:.2f} > max_order_notional "
            f"{cfg.max_order_notional:g}",
        )
    pos = pr.side_extreme * mark
    if _over(pos, cfg.max_position_notional):
        return reject(
            "position_notional",
            f"{order.side} {order.amount:g} could take the position to {pr.side_extreme:g} "
            f"contracts = {pos:.2f} > max_position_notional {cfg.max_position_notional:g} "
            "(resting orders counted)",
        )
    gross = pr.others + pos
    if _over(gross, cfg.max_gross_exposure):
        return reject(
            "gross_exposure",
            f"gross exposure would be {gross:.2f} (now {pr.gross_before:.2f}) > "
            f"max_gross_exposure {cfg.max_gross_exposure:g}",
        )
    if view.equity <= 0:
        return reject("leverage", f"equity {view.equity:.2f} <= 0: no new risk")
    lev = gross / view.equity
    if _over(lev, cfg.max_leverage):
        return reject(
            "leverage",
            f"leverage would be {lev:.2f} (gross {gross:.2f} / equity {view.equity:.2f}) > "
            f"max_leverage {cfg.max_leverage:g}",
        )
    return None


def price_band_check(
    order: OrderIntent, view: AccountView, now: float, cfg: RiskConfig
) -> tuple[Rejection | None, float]:
    """The order's symbol needs a mark; a market order a fresh one; a limit price within
    ``price_band`` of it. Returns (rejection, mark)."""
    m = view.marks.get(order.symbol)
    sym, cid = order.symbol, order.client_id
    if m is None or not (m.price > 0 and math.isfinite(m.price)):
        return Rejection("price_band", "no mark price for the symbol", sym, cid), 0.0
    if order.type == "market":
        age = now - m.ts
        if age > cfg.stale_pause:
            return Rejection(
                "price_band",
                f"market order needs a fresh mark: mark is {age:.1f} s old > stale_pause "
                f"{cfg.stale_pause:g}",
                sym,
                cid,
            ), m.price
        return None, m.price
    assert order.price is not None  # OrderIntent guarantees it for limit orders
    dist = abs(order.price / m.price - 1)
    if _over(dist, cfg.price_band):
        return Rejection(
            "price_band",
            f"limit {order.price:g} is {dist:.2%} from mark {m.price:g} > price_band "
            f"{cfg.price_band:.2%}",
            sym,
            cid,
        ), m.price
    return None, m.price
