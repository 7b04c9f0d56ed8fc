"""Pending confirmations of risk-adding commands (the phone's second step).

A pending confirmation belongs to the person who asked, carries an opaque short token (it goes
into Telegram's 64-byte ``callback_data``) and expires after ``control.confirm_timeout``: an
expired one does nothing. Expiry uses the monotonic clock.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from commander.errors import CommandRefused, ConfirmationExpired


@dataclass(frozen=True)
class Pending:
    token: str
    who: str
    command: str
    argv: tuple[str, ...]
    created: float


class Confirmations:
    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._pending: dict[str, Pending] = {}

    def create(self, who: str, command: str, argv: tuple[str, ...]) -> Pending:
        self.purge()
        p = Pending(secrets.token_hex(8), who, command, tuple(argv), self._clock())
        self._pending[p.token] = p
        return p

    def take(self, token: str, who: str) -> Pending:
        """Consume a confirmation; raise ``ConfirmationExpired`` or ``CommandRefused`` if it cannot be."""
        p = self._pending.get(token)
        if p is None:
            raise ConfirmationExpired("this confirmation is expired or was already used: nothing done")
        if p.who != who:
            raise CommandRefused("only the person who asked can confirm this")
        del self._pending[token]
        if self._clock() - p.created > self.timeout:
            raise ConfirmationExpired(
                f"confirmation of {p.command} expired after {self.timeout:g} s: nothing done")
        return p

    def cancel(self, who: str, token: str | None = None) -> list[Pending]:
        gone = [p for p in self._pending.values()
                if p.who == who and (token is None or p.token == token)]
        for p in gone:
            del self._pending[p.token]
        return gone

    def purge(self) -> None:
        # keep expired ones for a while so a late press can be told "expired" precisely
        limit = self._clock() - 10 * self.timeout
        for t in [t for t, p in self._pending.items() if p.created < limit]:
            del self._pending[t]

    def pending(self, who: str | None = None) -> list[Pending]:
        return [p for p in self._pending.values() if who is None or p.who == who]
