"""Exchange ids that never repeat across simulator runs, as a real exchange's never do.

A restarted simulator that counted from a constant again would hand a client the same order
and trade ids it saw in the previous run, and a journal that de-duplicates fills by id would
silently drop the new run's fills. So every sequence is seeded from the wall clock in
microseconds (about 1.8e15 today: an exact integer in JSON, in ccxt and in SQLite) and counts
up by one. Two runs started one after the other cannot meet unless the first issued more ids
than microseconds passed between the two starts.

Trade ids count *per symbol* like Binance's, all symbols from the same seed: BTCUSDT's and
ETHUSDT's first trades share an id, so a consumer that keys fills by trade id alone (instead
of venue, symbol and id) is caught at once instead of months later.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class IdSequence:
    """Increasing integers seeded from the wall clock; never below the clock's reading.

    ``next()`` returns ``max(last + 1, now_us)``: ids keep pace with the clock, so a
    sequence started later (a new run) begins above anything an earlier one issued unless
    that one got more than (start gap) ids ahead of its own clock.
    """

    def __init__(self, clock_us: Callable[[], int] = wall_clock_us) -> None:
        self._clock_us = clock_us
        self._last = clock_us() - 1

    def next(self) -> int:
        self._last = max(self._last + 1, self._clock_us())
        return self._last

    @property
    def last(self) -> int:
        return self._last


class PerSymbolIds:
    """One counter per symbol, all from the same wall-clock seed (Binance's trade ids)."""

    def __init__(self, clock_us: Callable[[], int] = wall_clock_us) -> None:
        self.seed = clock_us()
        self._next: dict[str, int] = {}

    def next(self, symbol: str) -> int:
        value = self._next.get(symbol, self.seed)
        self._next[symbol] = value + 1
        return value
