"""Everything a command can fail with, and what the dispatcher does with it.

    CommandError              the command did not do what was asked; the reply says why (exit 1)
    ├── UsageError            unknown command or wrong arguments: usage/help in the reply (exit 2)
    ├── Refused               not done on purpose (risk-adding without confirmation, nothing to do)
    │   └── NeedsConfirmation risk-adding and unconfirmed: CLI says "add --yes", Telegram asks
    ├── Unauthorised          sender not on the allowlist: ignored on Telegram, audited everywhere
    ├── ConfirmationExpired   a confirmation arrived after ``control.confirm_timeout``: nothing done
    └── NoAnswer              the process that must act did not answer in time: outcome unknown

Recovery policy: none of these is retried by the commander. Each becomes an error reply with its
``kind``; the person decides what to do next (e.g. ``kill`` when ``stop`` got no answer).
Anything else raised by a handler is a bug: the dispatcher replies ``failed`` and logs it, the
commander keeps serving.
"""

from __future__ import annotations


class CommandError(Exception):
    kind = "failed"


class UsageError(CommandError):
    kind = "usage"


class Refused(CommandError):
    kind = "refused"


class NeedsConfirmation(Refused):
    kind = "confirm"


class Unauthorised(CommandError):
    kind = "unauthorised"


class ConfirmationExpired(Refused):
    kind = "expired"


class NoAnswer(CommandError):
    kind = "no_answer"

    def __init__(self, process: str, op: str) -> None:
        super().__init__(f"{process}: no answer to {op!r}")
        self.process = process

