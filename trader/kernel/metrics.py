"""Metric names (the one place they are defined) and a tiny per-process registry.

Children do not import prometheus_client: they keep their counters and gauges here and ship a
snapshot in their heartbeat; the supervisor exports everything on its one /metrics endpoint
(``supervisor/metrics_http.py``). A heartbeat already has to arrive on time for the process to
count as up, so the metrics are never staler than the liveness they describe, and a child's exit
needs no multiprocess-file cleanup. A restarted child's counters restart at zero, which
Prometheus reads as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Spec:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


SPECS: dict[str, Spec] = {
    s.name: s
    for s in [
        # supervisor-owned
        Spec("flatguard_up", "gauge", "1 while the process runs and heartbeats on time", ("process",)),
        Spec("flatguard_heartbeat_age_seconds", "gauge", "Seconds since the last heartbeat", ("process",)),
        Spec("flatguard_process_restarts_total", "counter", "Restarts by the supervisor", ("process",)),
        Spec("flatguard_halted", "gauge", "1 while trading is halted (journal HALTED state)"),
        Spec("flatguard_killswitch_runs_total", "counter", "Kill-switch runs", ("trigger",)),
        Spec("flatguard_killswitch_rounds_total", "counter", "Flatten rounds run by the kill switch"),
        Spec("flatguard_killswitch_last_duration_seconds", "gauge", "Duration of the last kill-switch run"),
        Spec("flatguard_killpath_ready", "gauge", "1 when the kill path's exchange session is proven"),
        Spec("flatguard_killswitch_inflight_wait_seconds", "gauge",
             "Seconds a flat-looking flatten still waits for orders that may be in flight"),
        Spec("flatguard_killswitch_round_requests", "gauge",
             "Exchange requests the kill path made in its last flatten round"),
        Spec("flatguard_killswitch_watch_flattens_total", "counter",
             "Exposure found and flattened while watching a halted account after a verified flatten"),
        Spec("flatguard_process_flapping", "gauge",
             "1 while a process restarts more often than supervisor.restart_intensity", ("process",)),
        Spec("flatguard_journal_errors_total", "counter", "Journal writes that failed", ("process",)),
        Spec("flatguard_exchange_banned_seconds", "gauge",
             "Seconds left of an exchange ban (HTTP 418/429) shared by every process"),
        # any process (bus)
        Spec("flatguard_bus_messages_total", "counter", "Bus messages sent and received", ("process", "direction")),
        Spec("flatguard_bus_dropped_total", "counter", "Bus messages dropped", ("process", "reason")),
        # trader
        Spec("flatguard_position_contracts", "gauge", "Signed position size in contracts", ("symbol",)),
        Spec("flatguard_equity", "gauge", "Account equity in the quote currency"),
        Spec("flatguard_orders_total", "counter", "Orders sent by the trader", ("symbol", "side")),
        Spec("flatguard_risk_rejections_total", "counter", "Orders refused by a risk check", ("check",)),
        Spec("flatguard_trading_state", "gauge", "1 for the trader's current state", ("state",)),
        # connector
        Spec("flatguard_exchange_errors_total", "counter", "Exchange call failures", ("kind", "call")),
        Spec("flatguard_clock_offset_seconds", "gauge", "Exchange clock minus local clock"),
        Spec("flatguard_dms_armed", "gauge", "1 while the exchange-side dead-man switch is armed", ("symbol",)),
        Spec("flatguard_exchange_weight_used", "gauge", "Request weight used in the last minute"),
        Spec("flatguard_exchange_bad_numbers_total", "counter",
             "Exchange values refused at the boundary (NaN, infinite, non-positive price)", ("field",)),
        Spec("flatguard_fill_conflicts_total", "counter",
             "Fills whose id was known with different fields (never silently ignored)"),
        # notifier
        Spec("flatguard_notifications_total", "counter", "Notifications by outcome", ("sink", "outcome")),
        Spec("flatguard_notifications_dropped_total", "counter", "Notifications dropped (queue full)", ("sink",)),
        # commander
        Spec("flatguard_commands_total", "counter", "Commands handled", ("channel", "command", "result")),
    ]
}

Sample = tuple[str, tuple[tuple[str, str], ...], float]


class Registry:
    """Counters and gauges of one process, keyed by name and label values."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        spec = SPECS[name]  # KeyError here is a programming error: add the metric to SPECS
        assert set(labels) <= set(spec.labels), f"{name}: labels {labels} not in {spec.labels}"
        return name, tuple(sorted(labels.items()))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        k = self._key(name, labels)
        self._values[k] = self._values.get(k, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[self._key(name, labels)] = float(value)

    def discard(self, name: str, **labels: str) -> None:
        """Remove one series: a value that no longer means anything is absent, never -1."""
        self._values.pop(self._key(name, labels), None)

    def clear(self, name: str) -> None:
        for k in [k for k in self._values if k[0] == name]:
            del self._values[k]

    def samples(self) -> list[list[object]]:
        return [[n, [list(p) for p in lbl], v] for (n, lbl), v in self._values.items()]


METRICS = Registry()
