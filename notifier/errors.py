"""Notifier exceptions and their recovery policy.

    FlatguardError (trader.kernel.errors)
    └── NotifierError
        ├── SinkConfigError         a sink is misconfigured (missing env var, URL, number): fatal
        │                           at start-up, before anything binds; the message names the
        │                           section and key (also a ``ConfigError``)
        └── DeliveryError           one request to a sink failed
            ├── TransientDelivery   timeouts, connection errors, 429, 5xx, garbage replies:
            │                       retried with backoff (honouring ``retry_after``) within the
            │                       sink's budget (``retries``), then the message is counted failed
            └── PermanentDelivery   4xx other than 429 (bad token, bad chat, bad request): counted
                                    failed at once, never retried

Messages never contain secrets: sinks scrub tokens and URLs before raising.
"""

from __future__ import annotations

from trader.kernel.config import ConfigError
from trader.kernel.errors import FlatguardError


class NotifierError(FlatguardError):
    """Base of the notifier's own errors."""


class SinkConfigError(NotifierError, ConfigError):
    """A sink cannot work with its config or environment. Fatal at start-up: fix and restart."""


class DeliveryError(NotifierError):
    """A request to a sink failed; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientDelivery(DeliveryError):
    """Worth retrying within the budget (timeouts, 429, 5xx, garbage)."""


class PermanentDelivery(DeliveryError):
    """Retrying cannot help (4xx): counted failed at once."""
