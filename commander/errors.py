"""Everything a command can fail with, and what the dispatcher does with it.

    FlatguardError (trader.kernel.errors)
    └── CommandError              the command did not do what was asked; the reply says why (exit 1)
        ├── UsageError            unknown command or wrong arguments: usage/help in the reply (exit 2)
        ├── CommandRefused        not done on purpose (risk-adding without confirmation, nothing to do)
        │   ├── NeedsConfirmation risk-adding and unconfirmed: CLI says "add --yes", Telegram asks
        │   └── ConfirmationExpired  a confirmation arrived after ``control.confirm_timeout``
        ├── Unauthorised          sender not on the allowlist: ignored on Telegram, audited everywhere
        └── NoAnswer              the process that must act did not answer in time: outcome unknown

Recovery policy: none of these is retried by the commander. Each becomes an error reply with its
``kind``; the person decides what to do next (e.g. ``kill`` when ``stop`` got no answer).
Anything else raised by a handler is a bug: the dispatcher replies ``failed`` and logs it, the
commander keeps serving.
"""

from __future__ import annotations

from trader.kernel.errors import FlatguardError


class CommandError(FlatguardError):
    kind = "failed"


class UsageError(CommandError):
    kind = "usage"


class CommandRefused(CommandError):
    kind = "refused"


class NeedsConfirmation(CommandRefused):
    kind = "confirm"


class Unauthorised(CommandError):
    kind = "unauthorised"


class ConfirmationExpired(CommandRefused):
    kind = "expired"


class NoAnswer(CommandError):
    kind = "no_answer"

    def __init__(self, process: str, op: str) -> None:
        super().__init__(f"{process}: no answer to {op!r}")
        self.process = process

