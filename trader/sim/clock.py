"""The exchange's clock: wall time plus a settable skew.

Skewing the *exchange* clock is how the simulator reproduces "the local clock is >10 s off the
exchange's": every timestamp it checks or emits (serverTime, updateTime, event times) uses it.
"""

from __future__ import annotations

import time


class SimClock:
    def __init__(self, skew_s: float = 0.0) -> None:
        self.skew_ms = round(skew_s * 1000)

    def set_skew(self, seconds: float) -> None:
        self.skew_ms = round(seconds * 1000)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms
