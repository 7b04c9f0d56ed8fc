"""What /metrics shows, so that every series tells the truth when things go wrong.

- ``flatguard_heartbeat_age_seconds`` exists only for a running process: a process that is not
  running has no heartbeat age (``flatguard_up 0`` says it is down), never a -1 that a "> N"
  alert cannot see.
- ``flatguard_killpath_ready`` is 0 while the last proof failed *and* while a flatten round
  fails to reach the exchange or to close (the proof is skipped while a flatten runs: the
  flatten is the proof).
- Account series (``flatguard_position_contracts``, ``flatguard_equity``) and the state stay
  while the trader is down or HALTED: the trader's own while it runs, else the connector's
  (which keeps reading the exchange while halted), else the last values received.
- Every counter exists at 0 from start-up, for the label values known in advance (processes,
  symbols x sides, sinks x outcomes, kill-switch triggers, bus drop reasons), so ``increase()``
  and ``rate()`` see the first event. A child's own samples win over these defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from supervisor.childspec import SPECS as CHILD_SPECS
from supervisor.childspec import account_readers, session_holder
from trader.kernel.metrics import SPECS

if TYPE_CHECKING:
    from supervisor.ports import MetricsPort

ACCOUNT = frozenset({"flatguard_position_contracts", "flatguard_equity"})
STATE = "flatguard_trading_state"
# The trader's states (engine.set_state) plus the supervisor's KILLING.
STATES = ("STARTING", "RUNNING", "PAUSED", "STOPPING", "HALTED", "STOPPED", "KILLING")
TRIGGERS = ("trader_exit", "trader_hang", "trader_exception", "connector_down",
            "exchange_fatal", "command", "stop", "stop_timeout")
BUS_DROPS = ("hwm", "malformed", "peer_unavailable", "reply_undeliverable", "notify_hwm")
NOTIFY_OUTCOMES = ("published", "sent", "dropped", "failed")
SIDES = ("buy", "sell")

Sample = list[Any]  # [name, [[label, value], ...], value]


def killpath_ready(sup: MetricsPort) -> bool:
    ks = sup.killswitch
    if ks is not None and ks.flattening:
        last = getattr(ks, "last_round", None)
        if last is not None and not last.flat and last.error:
            return False  # this flatten cannot reach the exchange (or cannot close): not ready
    return bool(sup.killpath_ready)


def _sinks(sup: MetricsPort) -> list[str]:
    cfg = sup.cfg
    names = ["console"] + [k for k, sc in cfg.notify.sinks.items()
                           if sc.enabled and k not in ("console", "telegram")]
    tg = cfg.notify.sinks.get("telegram")
    if cfg.telegram.enabled and (tg is None or tg.enabled):
        names.append("telegram")
    return names


def zero_series(sup: MetricsPort) -> Iterable[tuple[str, dict[str, str]]]:
    """Every counter series known before its first event."""
    children = list(sup.children)
    for spec in SPECS.values():
        if spec.kind == "counter" and not spec.labels:
            yield spec.name, {}
    for p in ["supervisor", *children]:
        yield "flatguard_journal_errors_total", {"process": p}
    for p in children:
        yield "flatguard_process_restarts_total", {"process": p}
        for d in ("sent", "received"):
            yield "flatguard_bus_messages_total", {"process": p, "direction": d}
        for r in BUS_DROPS:
            yield "flatguard_bus_dropped_total", {"process": p, "reason": r}
    for t in TRIGGERS:
        yield "flatguard_killswitch_runs_total", {"trigger": t}
    for sym in sup.cfg.exchange.symbols:
        for side in SIDES:
            yield "flatguard_orders_total", {"symbol": sym, "side": side}
    for sink in _sinks(sup):
        yield "flatguard_notifications_dropped_total", {"sink": sink}
        for o in NOTIFY_OUTCOMES:
            yield "flatguard_notifications_total", {"sink": sink, "outcome": o}
    from trader.engine.risk import CHECKS

    for check in CHECKS:
        yield "flatguard_risk_rejections_total", {"check": check}


def _key(name: str, labels: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    pairs = labels.items() if isinstance(labels, dict) else (tuple(p) for p in labels)
    return name, tuple(sorted((str(k), str(v)) for k, v in pairs))


class Truth:
    """Kept between scrapes: the last account series received from any process."""

    def __init__(self) -> None:
        self.account: list[Sample] = []
        self._conn_errors = 0.0

    def exchange_trouble(self, sup: MetricsPort) -> bool:
        """True once per rise of the connector's transient/fatal exchange errors: the
        supervisor then proves its kill path now, so killpath_ready drops within seconds of
        an outage instead of at the next killswitch.check_interval."""
        conn = sup.children.get(session_holder())
        if conn is None or conn.pid is None:
            return False
        n = sum(float(v) for name, lbl, v in conn.hb.metrics
                if name == "flatguard_exchange_errors_total"
                and dict(map(tuple, lbl)).get("kind") in ("transient", "fatal"))
        rose, self._conn_errors = n > self._conn_errors, n
        return rose

    def samples(self, sup: MetricsPort) -> list[Sample]:
        reg = sup.metrics
        for name, ch in sup.children.items():
            s = ch.summary(sup.hang_limit(name))
            reg.set("flatguard_up", 1.0 if s["up"] else 0.0, process=name)
            age = s["heartbeat_age_s"]
            if age is None:  # not running: no heartbeat has an age
                reg.discard("flatguard_heartbeat_age_seconds", process=name)
            else:
                reg.set("flatguard_heartbeat_age_seconds", age, process=name)
            reg.set("flatguard_process_restarts_total", ch.restarts, process=name)
        if sup.sim is not None:
            reg.set("flatguard_up", 1.0 if sup.sim.proc.returncode is None else 0.0,
                    process="sim")
        reg.set("flatguard_halted", 1.0 if sup.halt.halted else 0.0)
        reg.set("flatguard_killpath_ready", 1.0 if killpath_ready(sup) else 0.0)
        out: list[Sample] = list(reg.samples())
        out += self._children(sup)
        seen = {_key(n, lbl) for n, lbl, _ in out}
        for name, labels in zero_series(sup):
            if _key(name, labels) not in seen:
                seen.add(_key(name, labels))
                out.append([name, [list(p) for p in sorted(labels.items())], 0.0])
        return out

    def _children(self, sup: MetricsPort) -> list[Sample]:
        live = {n: ch for n, ch in sup.children.items() if ch.pid is not None}
        first, fallback = account_readers()  # the trader's own, else the connector's
        reader = live.get(first)
        from_first = reader is not None and any(m[0] in ACCOUNT for m in reader.hb.metrics)
        source = first if from_first else fallback
        out: list[Sample] = []
        account: list[Sample] = []
        for name, ch in live.items():
            says_state = CHILD_SPECS[name].says_state
            for m in ch.hb.metrics:
                if m[0] in ACCOUNT:
                    if name == source:
                        account.append(m)
                elif m[0] == STATE and not says_state:
                    continue  # only the trader says its state; the supervisor says it otherwise
                else:
                    out.append(m)
        if account:
            self.account = account
        elif not from_first and fallback not in live:
            account = self.account  # nobody reads the account now: the last values known
            if sup.halt.verified_flat:  # ...except what the kill path proved since
                account = [[n, lbl, 0.0 if n == "flatguard_position_contracts" else v]
                           for n, lbl, v in account]
        out += account
        stater = next((live[n] for n, s in CHILD_SPECS.items() if s.says_state and n in live),
                      None)
        if stater is None or not any(m[0] == STATE for m in stater.hb.metrics):
            state = sup.trading_state()  # HALTED, KILLING or STOPPED while the trader is down
            out += [[STATE, [["state", s]], 1.0 if s == state else 0.0] for s in STATES]
        return out
