"""A Grafana dashboard for flatguard stacks (``flatguard grafana dashboard``).

One dashboard for every stack: ``$instance`` picks the stack(s), ``$datasource`` the Prometheus
data source. Queries use only metrics from ``trader/metrics.py`` SPECS (a test parses each one)
and fixed ``[5m]`` windows, so each one is also plain PromQL that can be pasted elsewhere.
"""

from __future__ import annotations

from typing import Any

from supervisor.prom_rules import JOB

SEL = f'job="{JOB}",instance=~"$instance"'  # every query's selector
DS = {"type": "prometheus", "uid": "${datasource}"}
W, H = 24, 8  # grid width, default panel height


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(kind: str, title: str, queries: list[tuple[str, str]], unit: str = "short",
           desc: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "description": desc, "datasource": DS,
            "targets": [_target(e, lg, chr(ord("A") + i)) for i, (e, lg) in enumerate(queries)],
            "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})},
                            "overrides": []},
            "options": extra.pop("options", {}), **extra}


def _stat(title: str, expr: str, legend: str, mappings: list[dict[str, Any]] | None = None,
          thresholds: list[tuple[float | None, str]] | None = None, desc: str = "") -> dict[str, Any]:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "green")])]
    return _panel("stat", title, [(expr, legend)], desc=desc,
                  defaults={"mappings": mappings or [],
                            "thresholds": {"mode": "absolute", "steps": steps}},
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                             "values": False},
                           "colorMode": "background", "textMode": "value_and_name"})


def _value_map(names: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"type": "value", "options": {k: {"text": t, "color": c, "index": i}
                                          for i, (k, (t, c)) in enumerate(names.items())}}]


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _layout() -> list[tuple[dict[str, Any], int]]:
    """(panel, width) in reading order; rows take the full width."""
    ok_bad = _value_map({"1": ("yes", "green"), "0": ("NO", "red")})
    halted = _value_map({"0": ("trading", "green"), "1": ("HALTED", "red")})
    return [
        (_row("State"), W),
        (_stat("Trading state", f"flatguard_trading_state{{{SEL}}} == 1", "{{instance}} {{state}}",
               desc="The trader's state; KILLING while the kill switch runs."), 6),
        (_stat("Halted", f"flatguard_halted{{{SEL}}}", "{{instance}}", halted,
               [(None, "green"), (1, "red")]), 6),
        (_stat("Kill path ready", f"flatguard_killpath_ready{{{SEL}}}", "{{instance}}", ok_bad,
               [(None, "red"), (1, "green")],
               desc="The supervisor's own exchange session, proven by a signed read."), 6),
        (_stat("Exchange ban (s left)", f"flatguard_exchange_banned_seconds{{{SEL}}}",
               "{{instance}}", None, [(None, "green"), (1, "red")]), 6),
        (_row("Exposure"), W),
        (_panel("timeseries", "Position (contracts)",
                [(f"flatguard_position_contracts{{{SEL}}}", "{{instance}} {{symbol}}")]), 12),
        (_panel("timeseries", "Equity",
                [(f"flatguard_equity{{{SEL}}}", "{{instance}}")], unit="currencyUSD"), 12),
        (_panel("timeseries", "Order rate (orders/s)",
                [(f"sum by (instance, symbol, side) (rate(flatguard_orders_total{{{SEL}}}[5m]))",
                  "{{instance}} {{symbol}} {{side}}")], unit="reqps"), 12),
        (_panel("timeseries", "Risk rejections (/s)",
                [(f"sum by (instance, check) (rate(flatguard_risk_rejections_total{{{SEL}}}[5m]))",
                  "{{instance}} {{check}}")], unit="reqps"), 12),
        (_row("Processes"), W),
        (_panel("timeseries", "Heartbeat age",
                [(f"flatguard_heartbeat_age_seconds{{{SEL}}}", "{{instance}} {{process}}")],
                unit="s", desc="Absent while a process is not running (flatguard_up 0)."), 12),
        (_panel("state-timeline", "Up",
                [(f"flatguard_up{{{SEL}}}", "{{instance}} {{process}}")],
                defaults={"mappings": ok_bad}), 12),
        (_panel("timeseries", "Restarts (per 30 min) and flapping",
                [(f"increase(flatguard_process_restarts_total{{{SEL}}}[30m])",
                  "restarts {{instance}} {{process}}"),
                 (f"flatguard_process_flapping{{{SEL}}}", "flapping {{instance}} {{process}}")]),
         12),
        (_panel("timeseries", "Journal write errors (per 10 min)",
                [(f"increase(flatguard_journal_errors_total{{{SEL}}}[10m])",
                  "{{instance}} {{process}}")]), 12),
        (_row("Kill switch"), W),
        (_panel("timeseries", "Kill-switch runs (per hour)",
                [(f"increase(flatguard_killswitch_runs_total{{{SEL}}}[1h])",
                  "{{instance}} {{trigger}}")]), 8),
        (_panel("timeseries", "Flatten rounds (per 5 min) and watch flattens",
                [(f"increase(flatguard_killswitch_rounds_total{{{SEL}}}[5m])", "rounds {{instance}}"),
                 (f"increase(flatguard_killswitch_watch_flattens_total{{{SEL}}}[1h])",
                  "watch flattens/h {{instance}}")]), 8),
        (_panel("timeseries", "Last kill duration, in-flight wait",
                [(f"flatguard_killswitch_last_duration_seconds{{{SEL}}}", "last run {{instance}}"),
                 (f"flatguard_killswitch_inflight_wait_seconds{{{SEL}}}",
                  "in-flight wait {{instance}}")], unit="s"), 8),
        (_row("Exchange"), W),
        (_panel("timeseries", "Exchange errors (/s)",
                [(f"sum by (instance, kind, call) "
                  f"(rate(flatguard_exchange_errors_total{{{SEL}}}[5m]))",
                  "{{instance}} {{kind}} {{call}}")], unit="reqps"), 8),
        (_panel("timeseries", "Clock offset (exchange - local)",
                [(f"flatguard_clock_offset_seconds{{{SEL}}}", "{{instance}}")], unit="s"), 8),
        (_panel("timeseries", "Request weight used (per minute)",
                [(f"flatguard_exchange_weight_used{{{SEL}}}", "{{instance}}"),
                 (f"flatguard_killswitch_round_requests{{{SEL}}}", "kill round requests {{instance}}")]),
         8),
        (_row("Bus and notifier"), W),
        (_panel("timeseries", "Bus messages (/s)",
                [(f"sum by (instance, process, direction) "
                  f"(rate(flatguard_bus_messages_total{{{SEL}}}[5m]))",
                  "{{instance}} {{process}} {{direction}}")], unit="reqps"), 8),
        (_panel("timeseries", "Bus drops (/s)",
                [(f"sum by (instance, process, reason) "
                  f"(rate(flatguard_bus_dropped_total{{{SEL}}}[5m]))",
                  "{{instance}} {{process}} {{reason}}")], unit="reqps"), 8),
        (_panel("timeseries", "Notifications (per 15 min)",
                [(f"sum by (instance, sink, outcome) "
                  f"(increase(flatguard_notifications_total{{{SEL}}}[15m]))",
                  "{{instance}} {{sink}} {{outcome}}"),
                 (f"sum by (instance, sink) "
                  f"(increase(flatguard_notifications_dropped_total{{{SEL}}}[15m]))",
                  "dropped {{instance}} {{sink}}")]), 8),
    ]


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    x = y = row_h = 0
    for pid, (p, w) in enumerate(_layout(), start=1):
        if x + w > W:
            x, y = 0, y + row_h
        h = 1 if p["type"] == "row" else (4 if p["type"] == "stat" else H)
        p = {**p, "id": pid, "gridPos": {"x": x, "y": y, "w": w, "h": h}}
        panels.append(p)
        x, row_h = x + w, h if x == 0 else max(row_h, h)
    return {
        "title": "flatguard",
        "uid": "flatguard",
        "tags": ["flatguard", "trading"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Data source",
             "query": "prometheus", "current": {}, "hide": 0},
            {"type": "query", "name": "instance", "label": "Stack", "datasource": DS,
             "query": {"query": f'label_values(flatguard_up{{job="{JOB}"}}, instance)',
                       "refId": "instance"},
             "definition": f'label_values(flatguard_up{{job="{JOB}"}}, instance)',
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
             "current": {"text": "All", "value": "$__all"}, "hide": 0, "sort": 1},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }
