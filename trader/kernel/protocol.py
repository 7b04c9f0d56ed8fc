"""Topics, request operations, payloads and states on the bus: the contract between processes.

This docstring is the one place the contract is written down. The op names are ``Op`` enums
below (one per server); the main payloads are dataclasses in ``payloads.py`` whose
``to_wire``/``from_wire`` write and check exactly the keys listed here. On the wire everything
stays a msgpack map of plain strings and numbers (``wire.py``).

Events (PUB -> proxy -> SUB; may be dropped, never the only carrier of anything unsafe to lose):

    md.<symbol>        MarketData {symbol, mark, bid?, ask?, ts}      market data (connector)
    order.<symbol>     OrderUpdate {client_id, id, symbol, side, type, status, amount, filled,
                        price, average, reduce_only, ts, error?}      order update (connector)
    fill.<symbol>      Fill {trade_id, client_id, order_id, symbol, side, amount, price, fee,
                        fee_currency, ts}                             own trade (connector)
    account            AccountSnapshot {equity, balance, positions: [Position],
                        open_orders: [AccountOrder], confirmed,
                        fresh, exposure, leverage, effective_leverage, adopted, margin_ratio,
                        source: "rest"|"feed"|"periodic"|"none"}      account snapshot (connector)
    alert              {level, title, text, source, ts}               copy of every notification

Position = {symbol, side ("long"/"short"/"flat"), contracts (signed float), entry_price, mark,
            notional, unrealized_pnl}  (``payloads.Position``)
AccountOrder (in a snapshot) = {client_id, id, symbol, side, type, price, amount, filled,
            reduce_only}  (``payloads.AccountOrder``)
Order status: ``OrderStatus`` (ccxt's words plus ``pending``/``unknown``/``error``); ``TERMINAL``
is the one set of statuses after which an order can no longer fill.

Requests (DEALER -> the serving process's ROUTER, topic = the op; body {id, args}; reply
{id, ok, result} or {id, ok: false, error: {kind, message}}; one-way messages carry no id and
get no reply). An op the server does not have gets kind ``bad_request`` naming the known ops.

    connector (conn.sock, ``ConnectorOp``):
        order.create {client_id, symbol, side ("buy"|"sell"), type ("market"|"limit"), amount,
                      price (null for market), reduce_only, tif?}   (``payloads.OrderCreate``)
                     -> {id, client_id, status, filled, average, price, amount}
        order.cancel {symbol, client_id? | id?} -> {status, client_id, id}
        order.cancel_all {symbol?}   -> {symbols}
        account {}                   -> the last account snapshot (``source`` "none" if unread)
        sync {}                      -> reconcile now: {differences: [str]}
        status {}                    -> {state, feed, fresh, dms_armed, fenced, fatal, ...}
        alive {} (one-way)           the trader is alive: keeps the dead-man switch refreshed
        fence {reason}               -> stop signing anything for the trader: queued and retried
                                        creates dropped, later ones refused (kind "fenced");
                                        {fenced_at (wall s), recv_window_ms,
                                         inflight_until (wall s; 0 = none)}
        unfence {}                   -> {fenced: false} (resume)
        dms.disarm {}                -> disarm the exchange's dead-man switch (only after a
                                        verified flat, or resume): {disarmed: [symbols], mode}
        error kinds: rejected (bad request, or the exchange refused: not placed), fatal,
        fenced (not sent), bad_data (the exchange sent NaN/inf/non-positive numbers), transient
    trader (trader.sock, ``TraderOp``): pause / unpause / stop / info / debug -- {}; ban / unban /
        debug_instrument -- {symbol}. Refusals have kind "refused".
    supervisor (sup.sock, ``SupervisorOp``):
        hb {proc, pid, state, loop, last_md, last_ok, metrics?} (one-way; ``payloads.Heartbeat``)
        ready {proc, pid, state, ...info} (one-way)
        refused {proc, pid, reason} (one-way: the child exits 78 next; `up`'s last line)
        halt {trigger, reason, source}  -> run the kill switch: {started, halted}
                                           (``payloads.Halt``)
        kill {reason, source?}          -> halt with trigger "command"
        resume {} / abort {} / status {}
        risk_gate {command}             -> refused (kind "refused") while a stop or a flatten
                                           runs, or when halted
    notifier (ntf.sock, ``NotifierOp``): ack {key?} -> {acked}; stats {}; digest {} -> {title, text}
    commander (control.sock / CURVE TCP, ``ControlOp``): cmd {command, argv, yes, timeout, who}
        -> {command, data, text}; a command's name as the op (same args) is accepted too.

Notifications: PUSH -> the notifier's PULL (notify.sock for info/warning, alert.sock for the
emergency lane), topic ``notify``, data {level, title, text, key?, ts}; sends never block.

States (``StrEnum``: the values are what ``ctl --json``, metric labels and the journal show):
``TradingState`` of the trader, ``ConnectorState`` of the connector (both also the ``state`` of
their heartbeats), ``ProcessState`` of a child as the supervisor sees it (lower case).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# processes
SUPERVISOR: Final = "supervisor"
TRADER: Final = "trader"
CONNECTOR: Final = "connector"
NOTIFIER: Final = "notifier"
COMMANDER: Final = "commander"
SIM: Final = "sim"
CHILDREN: Final = (CONNECTOR, NOTIFIER, COMMANDER, TRADER)

# exit codes a child tells the supervisor something with (sysexits.h)
EX_SOFTWARE: Final = 70  # the trader's engine loop died of an exception: trigger trader_exception
EX_CONFIG: Final = 78  # a refusal of this set-up (hedge mode, unsafe keys): never restarted

# event topics
MD: Final = "md."
ORDER: Final = "order."
FILL: Final = "fill."
ACCOUNT: Final = "account"
ALERT: Final = "alert"
NOTIFY: Final = "notify"  # topic of notifications (PUSH -> PULL)
REPLY: Final = "rep"  # topic of a request's reply

# notification levels
INFO: Final = "info"
WARNING: Final = "warning"
CRITICAL: Final = "critical"
LEVELS: Final = (INFO, WARNING, CRITICAL)


# --- states -----------------------------------------------------------------------------------


class TradingState(StrEnum):
    """The trader's trading state (engine and risk engine; ``ctl info`` ``trading_state``)."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    REDUCING = "REDUCING"
    STOPPING = "STOPPING"
    HALTED = "HALTED"
    STOPPED = "STOPPED"


class ConnectorState(StrEnum):
    """STARTING -> RUNNING -> (FATAL) -> STOPPING -> STOPPED (``trader/connector/service.py``)."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FATAL = "FATAL"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class ProcessState(StrEnum):
    """A child as the supervisor sees it. EXITED: died unexpectedly, the supervisor's policy
    decides next; FAILED: the supervisor gave up on it (restart intensity, or a refusal)."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXITED = "exited"
    FAILED = "failed"


class OrderStatus(StrEnum):
    """ccxt's unified statuses (and Binance's raw words seen in feeds), plus ours: ``pending``
    (sent, no answer yet), ``unknown`` (a create whose outcome is being looked up) and
    ``error`` (a fatal error on the create; journal only)."""

    PENDING = "pending"
    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    CLOSED = "closed"
    FILLED = "filled"
    CANCELED = "canceled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    ERROR = "error"


S = OrderStatus
# The one set of statuses after which an order can no longer fill (engine, connector, journal).
TERMINAL: Final = frozenset({S.CLOSED, S.FILLED, S.CANCELED, S.CANCELLED, S.REJECTED, S.EXPIRED})
# Resting on the exchange (may still fill).
OPEN: Final = frozenset({S.OPEN, S.NEW, S.PARTIALLY_FILLED})
del S

# the trading states as names, as before the enums (``protocol.RUNNING`` etc.)
STARTING: Final = TradingState.STARTING
RUNNING: Final = TradingState.RUNNING
PAUSED: Final = TradingState.PAUSED
REDUCING: Final = TradingState.REDUCING
STOPPING: Final = TradingState.STOPPING
HALTED: Final = TradingState.HALTED
STOPPED: Final = TradingState.STOPPED


# --- request operations, one enum per server ---------------------------------------------------


class ConnectorOp(StrEnum):
    ORDER_CREATE = "order.create"
    ORDER_CANCEL = "order.cancel"
    ORDER_CANCEL_ALL = "order.cancel_all"
    ACCOUNT = "account"
    SYNC = "sync"
    STATUS = "status"
    ALIVE = "alive"
    FENCE = "fence"
    UNFENCE = "unfence"
    DMS_DISARM = "dms.disarm"


class TraderOp(StrEnum):
    INFO = "info"
    DEBUG = "debug"
    DEBUG_INSTRUMENT = "debug_instrument"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    BAN = "ban"
    UNBAN = "unban"
    STOP = "stop"


class SupervisorOp(StrEnum):
    HB = "hb"
    READY = "ready"
    REFUSED = "refused"
    HALT = "halt"
    KILL = "kill"
    STATUS = "status"
    RISK_GATE = "risk_gate"
    RESUME = "resume"
    ABORT = "abort"


class NotifierOp(StrEnum):
    ACK = "ack"
    STATS = "stats"
    DIGEST = "digest"


class ControlOp(StrEnum):
    CMD = "cmd"


# server (process name) -> the ops it serves; the commander's table is its command registry too
OPS: Final[dict[str, type[StrEnum]]] = {
    CONNECTOR: ConnectorOp, TRADER: TraderOp, SUPERVISOR: SupervisorOp, NOTIFIER: NotifierOp,
    COMMANDER: ControlOp,
}
