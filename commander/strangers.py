"""How many of a stranger's ignored Telegram attempts get their own audit row.

Anyone can message a bot. Every attempt from a user not in ``telegram.allowed_users`` is ignored
and counted (``flatguard_commands_total{result="unauthorised"}``); only the first ``per_user``
per user and ``total`` overall in each minute get an audit row, and the rest of a minute is one
summary row, so a flood costs the journal a bounded number of rows per minute (at most
``total + 1``) instead of one per message. Fixed windows on an injected clock: deterministic tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 60.0  # s
PER_USER = 5  # audit rows per stranger per window
TOTAL = 20  # audit rows for all strangers per window
MAX_TRACKED = 1000  # distinct strangers remembered per window; beyond, only the total applies


@dataclass
class Suppressed:
    """What one window left out of the audit, for its summary row."""

    start: float
    attempts: int
    users: int  # distinct per window, summed over windows


@dataclass
class StrangerLimit:
    per_user: int = PER_USER
    total: int = TOTAL
    window: float = WINDOW
    clock: Callable[[], float] = time.monotonic
    _start: float = field(default=float("-inf"), init=False)
    _by_user: dict[str, int] = field(default_factory=dict, init=False)
    _audited: int = field(default=0, init=False)
    _suppressed: int = field(default=0, init=False)
    _suppressed_users: set[str] = field(default_factory=set, init=False)
    _pending: Suppressed | None = field(default=None, init=False)

    def allow(self, who: str) -> bool:
        """True if this attempt gets its own audit row; otherwise it is counted for the summary."""
        self.roll()
        n = self._by_user.get(who, 0)
        if n < self.per_user and self._audited < self.total and (
                who in self._by_user or len(self._by_user) < MAX_TRACKED):
            self._by_user[who] = n + 1
            self._audited += 1
            return True
        self._suppressed += 1
        if len(self._suppressed_users) < MAX_TRACKED:
            self._suppressed_users.add(who)
        return False

    def roll(self) -> None:
        """Start a new window if the current one is over, keeping what it suppressed for the
        summary (added up if nobody took the previous one)."""
        now = self.clock()
        if now - self._start < self.window:
            return
        if self._suppressed:
            p = self._pending
            self._pending = Suppressed(
                p.start if p else self._start, self._suppressed + (p.attempts if p else 0),
                len(self._suppressed_users) + (p.users if p else 0))
        self._start, self._audited, self._suppressed = now, 0, 0
        self._by_user.clear()
        self._suppressed_users.clear()

    def take_summary(self) -> Suppressed | None:
        """What finished windows suppressed, once (for one summary audit row)."""
        self.roll()
        out, self._pending = self._pending, None
        return out
