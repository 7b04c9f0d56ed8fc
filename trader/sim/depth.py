"""Order-book depth: liquidity profiles and the ladder a crossing order walks.

The simulated book is a ladder around the mark: level ``i`` on each side lies ``i`` gaps beyond
the touch (a gap is ``gap_bp`` basis points of the price, at least one tick) and holds
``top × (1 + growth × i)``. What the account takes is *eaten* from the top of that side and
refills with a half-life in market time (``Quote.refill``), so a second sweep right after a
first one finds a worse book, as on Binance; the market's own trades do not consume it.

Profiles (``SimConfig.liquidity``, ``flatguard sim --liquidity``, ``/_sim/liquidity``):

- ``realistic`` (the default): a few BTC / tens of ETH within 1 bp of the touch, growing with distance, a
  0.5 bp gap; a large MARKET order fills at several prices, an IOC beyond the ladder partially.
- ``deep``: a million of the base asset per level: everything fills at the touch (tests that
  need full fills at one price ask for it explicitly).
- *thin* (``/_sim/liquidity {"symbol", "qty"}``): ``qty`` at the touch and nothing else within
  the PERCENT_PRICE band, not eaten (every crossing order finds ``qty``): a MARKET order beyond
  it is refused (-4131), a crossing limit fills ``qty``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

D = Decimal


@dataclass(frozen=True)
class Ladder:
    top: Decimal  # quantity at the best level
    growth: Decimal  # level i holds top * (1 + growth * i)
    gap_bp: Decimal  # distance between levels, basis points of the price (>= one tick)
    levels: int  # per side; nothing beyond
    eaten: bool = True  # False: every order finds the full ladder (the thin hook)

    def qty(self, level: int) -> Decimal:
        return self.top * (1 + self.growth * level)


def _profile(btc: str, eth: str, sol: str, growth: str, gap_bp: str,
             levels: int) -> dict[str, Ladder]:
    g, gap = D(growth), D(gap_bp)
    return {"BTCUSDT": Ladder(D(btc), g, gap, levels), "ETHUSDT": Ladder(D(eth), g, gap, levels),
            "SOLUSDT": Ladder(D(sol), g, gap, levels)}


PROFILES: dict[str, dict[str, Ladder]] = {
    # BTC: 1 at the touch, 1.5 one level (0.5 bp) out, 4.5 within 1 bp, ~660 within 25 bp
    # (MARKET_LOT_SIZE is 2 BTC here, so one market order can walk two levels); ETH 10 (45
    # within 1 bp, market max 50); SOL 200.
    "realistic": _profile("1", "10", "200", "0.5", "0.5", 50),
    "deep": _profile("1000000", "1000000", "1000000", "0", "0.5", 50),
}
DEFAULT_PROFILE = "realistic"


def profile(name: str) -> dict[str, Ladder]:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown liquidity profile {name!r}: use one of "
                         f"{', '.join(sorted(PROFILES))}") from None


def thin(qty: Decimal) -> Ladder:
    """``qty`` at the touch, nothing behind it (the next level is beyond any band)."""
    return Ladder(qty, D(0), D(1), 1, eaten=False)


def walk(ladder: Ladder, touch: Decimal, gap: Decimal, sign: int, eaten: Decimal,
         qty: Decimal | None, limit: Decimal | None,
         top: int | None = None) -> list[tuple[Decimal, Decimal]]:
    """The (price, qty) a taker finds from ``touch`` outward (``sign`` +1 for asks, -1 for
    bids), skipping what was eaten, up to ``qty`` (None: every level), not beyond ``limit``,
    and at most ``top`` levels (a book ticker or a depth snapshot needs only the first few:
    walking the whole ladder cost 0.3 ms on every tick)."""
    out: list[tuple[Decimal, Decimal]] = []
    if top is not None and top <= 0:
        return out
    want = qty
    for i in range(ladder.levels):
        price = touch + sign * gap * i
        if price <= 0 or (limit is not None and (price - limit) * sign > 0):
            break
        size = ladder.qty(i)
        if eaten >= size:
            eaten -= size
            continue
        size, eaten = size - eaten, D(0)
        if want is not None:
            size = min(size, want)
            want -= size
        out.append((price, size))
        if (want is not None and want <= 0) or len(out) == top:
            break
    return out
