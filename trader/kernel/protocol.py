"""Topics and request operations on the bus: the contract between the processes.

Events (PUB -> proxy -> SUB; may be dropped, never the only carrier of anything unsafe to lose):

    md.<symbol>        {symbol, mark, bid, ask, ts}                 market data (connector)
    order.<symbol>     {client_id, id, symbol, side, type, status, amount, filled, price,
                        average, reduce_only, ts}                    order update (connector)
    fill.<symbol>      {trade_id, client_id, order_id, symbol, side, amount, price, fee,
                        fee_currency, ts}                            own trade (connector)
    account            {equity, balance, positions: [Position], open_orders: [Order],
                        confirmed: ts, source: "rest"|"feed"}        account snapshot (connector)
    alert              {level, title, text, source, ts}             copy of every notification
    state              {process, state, halted, reason}             lifecycle changes

Position = {symbol, side ("long"/"short"/"flat"), contracts (signed float), entry_price, mark,
            notional, unrealized_pnl}

Requests (DEALER -> the serving process's ROUTER; args map in, result map out, or an error
reply with a ``kind``):

    connector (conn.sock):  order.create {client_id, symbol, side, type ("market"|"limit"),
                                          amount, price?, reduce_only?, tif?}
                            order.cancel {symbol, client_id? | id?}
                            order.cancel_all {symbol?}
                            account {}                 -> last confirmed account snapshot
                            sync {}                    -> reconcile now, returns differences
                            status {}
                            fence {reason}             -> stop signing anything for the trader:
                                                          queued and retried creates dropped,
                                                          later ones refused (kind "fenced");
                                                          {fenced_at (wall s), recv_window_ms,
                                                           inflight_until (wall s; 0 = none)}
                            unfence {}                 -> {fenced: false} (resume)
                            dms.disarm {}              -> disarm the exchange's dead-man switch
                                                          (only after a verified flat, or resume)
                                                          {disarmed: [symbols], mode}
                            error kinds: rejected, fatal, fenced (not sent: fenced), bad_data
                            (the exchange sent NaN/inf/non-positive numbers), transient
    trader (trader.sock):   pause / unpause / ban {symbol} / unban {symbol} / stop / info /
                            debug / debug_instrument {symbol} / record
    supervisor (sup.sock):  hb {proc, pid, state, loop, last_md, last_ok, metrics} (one-way)
                            ready {proc, pid} (one-way)
                            halt {trigger, reason, source}   -> run the kill switch
                            resume / abort / status / kill {reason}
                            risk_gate {command}        -> refused (kind "refused") while a stop
                                                          or a flatten runs, or when halted

Notifications: PUSH -> the notifier's PULL (notify.sock for info/warning, alert.sock for the
emergency lane), topic ``notify``, data {level, title, text, key?, ts}; sends never block.
"""

from __future__ import annotations

from typing import Final

# processes
SUPERVISOR: Final = "supervisor"
TRADER: Final = "trader"
CONNECTOR: Final = "connector"
NOTIFIER: Final = "notifier"
COMMANDER: Final = "commander"
SIM: Final = "sim"
CHILDREN: Final = (CONNECTOR, NOTIFIER, COMMANDER, TRADER)

# event topics
MD: Final = "md."
ORDER: Final = "order."
FILL: Final = "fill."
ACCOUNT: Final = "account"
ALERT: Final = "alert"
STATE: Final = "state"

# notification levels
INFO: Final = "info"
WARNING: Final = "warning"
CRITICAL: Final = "critical"
LEVELS: Final = (INFO, WARNING, CRITICAL)

# trading states of the trader
STARTING: Final = "STARTING"
RUNNING: Final = "RUNNING"
PAUSED: Final = "PAUSED"
REDUCING: Final = "REDUCING"
STOPPING: Final = "STOPPING"
HALTED: Final = "HALTED"
STOPPED: Final = "STOPPED"
