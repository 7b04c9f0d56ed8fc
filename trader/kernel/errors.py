"""The root of every flatguard exception, and the whole tree with each class's recovery policy.

Every exception our packages raise on purpose derives from :class:`FlatguardError`. Its ``kind``
is the reply kind: what the bus ``Responder`` (and the commander) answer when a handler raises
it. A class states its default as a class attribute; an instance may override it
(``FlatguardError("...", kind="refused")``). Anything that is not a ``FlatguardError`` is a bug
in a handler and is answered with kind ``error``.

Policies: **retry** (within a budget, then the next policy up), **reject** (this order or request
is refused; trading continues), **fatal** (stop: at start-up exit with the reason, in trading
halt and flatten), **drop** (drop the message and count it), **reply** (an error reply of that
kind; the caller or the person decides).

    FlatguardError                      kind "error"; anything unplanned: reply "error"
    ├── kernel
    │   ├── ConfigError(ValueError)     fatal at start-up: the message names the key and file
    │   ├── WireError(ValueError)       drop the message, count it
    │   ├── RunDirError(RuntimeError)   fatal at start-up (run dir unusable, socket path too long)
    │   ├── LogSetupError(RuntimeError) fatal at start-up (exit 2)
    │   ├── RequestError                kind from the serving side: the caller decides by kind
    │   │   └── RequestTimeout          kind "timeout": outcome unknown; never re-sent at once
    │   ├── UnknownOp(ValueError)       kind "bad_request": an op the server lacks; nothing done
    │   ├── PayloadError(ValueError)    kind "bad_request": a mistyped payload; nothing done
    │   ├── JournalUnusable(RuntimeError)  fatal: fail closed (HALTED), say how to fix
    │   │   └── JournalTooNew           fatal: fail closed, never write to it
    │   ├── SchemaTooNew                fatal: surfaced as JournalTooNew
    │   └── FillConflict                never silent: log ERROR, count, still deliver the fill
    ├── engine
    │   ├── StrategyLoadError(ValueError)  fatal at start-up
    │   ├── InvalidOrder(ValueError)    reject the order (never sent); trading continues
    │   └── TraderCommandError          kind "refused": not now; reply, state unchanged
    ├── exchange (the venue layer; ``trader/exchange/errors.py`` has the per-call rules)
    │   ├── ExchangeCallError           a classified failed call; kind per instance:
    │   │   ├── Fatal                   fatal: stop trading, halt and flatten, alert
    │   │   ├── Rejected                reject this order; trading continues, not retried
    │   │   └── Transient               retry within the budget (then fatal)
    │   │       └── supervisor.Banned   rate limited or banned: the round stops, wait it out
    │   ├── NotSent                     kind "rejected": nothing left this process
    │   │   ├── connector.Fenced        kind "fenced": the connector is fenced
    │   │   └── connector.NotPlaced     kind "rejected": the exchange does not have the order
    │   ├── BadExchangeData(ValueError) kind "bad_data": an impossible number; drop, reconcile
    │   ├── KeysError(RuntimeError)     fatal at start-up (keys missing or unreadable)
    │   ├── UnsupportedVenue(ValueError)   refusal at start-up (exit 78), names the venues
    │   ├── UnknownExchange(LookupError)   ccxt has no class under that id (``ccxtload``)
    │   └── MissingCapabilities(RuntimeError)  refusal at start-up (exit 78)
    ├── connector
    │   ├── BadRequest(ValueError)      kind "rejected": malformed request; nothing sent
    │   ├── Refused(RuntimeError)       kind "fatal": trading stopped after a fatal error
    │   └── Refusal(RuntimeError)       refusal at start-up (exit 78): fix and restart
    ├── sim
    │   ├── BinanceError                reject: rendered as Binance's {"code", "msg"} body
    │   └── BadControlRequest(ValueError)  reject: HTTP 400 on the sim's control API
    ├── supervisor
    │   ├── SupervisorError
    │   │   ├── StartupError            fatal at start-up: stop what was started, exit 1
    │   │   └── SupervisorRefused       kind "refused": state unchanged; reply
    │   ├── ServiceError(ValueError)    the service command fails: nothing written
    │   ├── BelowLotStep(ValueError)    this close cannot be sent: the rest is below the lot step
    │   └── SimStartError(RuntimeError) fatal at start-up
    ├── notifier
    │   └── NotifierError
    │       ├── SinkConfigError(ConfigError)  a sink's config/env is unusable: fatal at start-up
    │       └── DeliveryError           one request to a sink failed
    │           ├── TransientDelivery   retry with backoff within the sink's budget
    │           └── PermanentDelivery   counted failed at once, never retried
    └── commander
        ├── CommandError                kind "failed": reply; never retried by the commander
        │   ├── UsageError              kind "usage": usage in the reply (exit 2)
        │   ├── CommandRefused          kind "refused": not done on purpose
        │   │   ├── NeedsConfirmation   kind "confirm": ask for confirmation
        │   │   └── ConfirmationExpired kind "expired": nothing done
        │   ├── Unauthorised            kind "unauthorised": ignored on Telegram, audited
        │   └── NoAnswer                kind "no_answer": outcome unknown; the person decides
        ├── TelegramError               log, back off, keep polling
        └── CurveError(RuntimeError)    fatal at start-up (keys unusable)

Each package's own module says more (``notifier/errors.py``, ``commander/errors.py``, ...).
``tests/unit/kernel/test_errors_tree.py`` checks that every exception class of our packages is
here (a ``FlatguardError``), has a kind, and has a name no other class has.

A built-in base kept beside ``FlatguardError`` (``ValueError``, ``RuntimeError``) is there
because callers catch it; it is not a policy.
"""

from __future__ import annotations


class FlatguardError(Exception):
    """Base of every flatguard exception. ``kind`` is the reply kind (class default, or per
    instance with ``kind=``)."""

    kind: str = "error"

    def __init__(self, *args: object, kind: str | None = None) -> None:
        super().__init__(*args)
        if kind is not None:
            self.kind = kind


def reply_kind(e: BaseException) -> str:
    """The kind an error reply carries for ``e``: its own for ours, ``error`` for anything else."""
    return e.kind if isinstance(e, FlatguardError) else "error"
