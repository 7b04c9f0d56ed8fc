"""Supervisor exceptions and their recovery policy.

    FlatguardError (trader.kernel.errors)
    └── SupervisorError
        ├── StartupError       fatal at start-up: print the message (it says what to do), exit 1;
        │                      every process started so far is stopped and reaped
        └── SupervisorRefused  a request the supervisor will not carry out in the current state:
                               reply with kind "refused"; nothing changes
"""

from __future__ import annotations

from trader.kernel.errors import FlatguardError


class SupervisorError(FlatguardError):
    """Base of the supervisor's errors."""


class StartupError(SupervisorError):
    """flatguard cannot start safely. Policy: stop what was started, say why, exit 1."""


class SupervisorRefused(SupervisorError):
    """A request refused in the current state. Policy: error reply, state unchanged."""

    kind = "refused"
