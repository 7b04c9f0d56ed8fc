"""Order-rate throttle: sliding windows of one second and one minute over sent orders."""

from __future__ import annotations

from collections import deque


class Throttle:
    """Counts sends in (now - window - margin, now]; an order is allowed while both counts are
    below their limits. Time is passed in, so it is deterministic and testable.

    ``margin`` (seconds) widens both windows: orders are counted when they leave the trader, but
    the exchange counts them when they arrive, and transit jitter can bring sends that were a
    full window apart closer together. A margin as large as the jitter keeps the rate the
    exchange sees within the limit too."""

    def __init__(self, per_second: int, per_minute: int, margin: float = 0.0) -> None:
        if margin < 0:
            raise ValueError(f"throttle margin must be >= 0, got {margin!r}")
        self.per_second = per_second
        self.per_minute = per_minute
        self.margin = margin
        self._sent: deque[float] = deque()  # send times, oldest first, at most a minute old

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - 60.0 - self.margin:
            self._sent.popleft()

    def counts(self, now: float) -> tuple[int, int]:
        """(sent in the last second, sent in the last minute)."""
        self._expire(now)
        last_sec = 0
        for t in reversed(self._sent):  # newest first; stops at the first older than 1 s
            if t <= now - 1.0 - self.margin:
                break
            last_sec += 1
        return last_sec, len(self._sent)

    def refusal(self, now: float) -> str | None:
        sec, minute = self.counts(now)
        if sec >= self.per_second:
            return f"{sec} orders in the last 1 s, limit {self.per_second}/s"
        if minute >= self.per_minute:
            return f"{minute} orders in the last 60 s, limit {self.per_minute}/min"
        return None

    def record(self, now: float) -> None:
        self._sent.append(now)
