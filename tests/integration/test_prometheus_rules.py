"""The alert rules, scrape job and dashboard that ship: every PromQL expression parses and names
only metrics flatguard exports (trader/metrics.py SPECS); promtool checks and unit-tests the
rules where it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from supervisor import grafana, prom_rules
from tests.stack import FLATGUARD, ROOT
from trader.kernel.metrics import SPECS

# Prometheus's own series for each scrape target: how a dead /metrics endpoint is seen.
PROMETHEUS_SERIES = {"up"}
SCRAPE_LABELS = {"job", "instance"}
PROMTOOL = shutil.which("promtool")


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def check_expr(expr: str) -> set[str]:
    """Parse; every metric must exist and every label it matches on must be one it has."""
    names: set[str] = set()
    sels = selectors(expr)
    assert sels, f"no metric in {expr!r}"
    for sel in sels:
        assert sel.name, f"a selector without a metric name in {expr!r}"
        assert sel.name in SPECS or sel.name in PROMETHEUS_SERIES, \
            f"{sel.name} (in {expr!r}) is not in trader/metrics.py SPECS"
        known = set(SPECS[sel.name].labels) if sel.name in SPECS else set()
        for m in sel.matchers.matchers:
            assert m.name in known | SCRAPE_LABELS | {"__name__"}, \
                f"{sel.name} has no label {m.name!r} (in {expr!r})"
        names.add(sel.name)
    return names


def cli(*args: str) -> str:
    r = subprocess.run([*FLATGUARD, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_walk_sees_selectors_inside_ranges_and_functions() -> None:
    expr = ('sum by (job) (increase(flatguard_orders_total{job="x"}[5m])) > 0 '
            'unless on(job) absent(flatguard_up)')
    assert {s.name for s in selectors(expr)} == {"flatguard_orders_total", "flatguard_up"}
    with pytest.raises(AssertionError, match="flatguard_nope"):
        check_expr("flatguard_nope > 1")
    with pytest.raises(AssertionError, match="no label 'symbol'"):
        check_expr('flatguard_halted{symbol="x"} == 1')


def test_rules_parse_and_use_only_exported_metrics() -> None:
    text = cli("prometheus", "rules")
    assert text == prom_rules.rules_yaml()
    doc = yaml.safe_load(text)
    (group,) = doc["groups"]
    assert group["name"] == prom_rules.JOB
    names, used = set(), set()
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"] not in names, f"duplicate alert {rule['alert']}"
        names.add(rule["alert"])
        used |= check_expr(rule["expr"])
        assert f'job="{prom_rules.JOB}"' in rule["expr"], rule["expr"]
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    # What issue 13 asks the rules to cover.
    for metric in ("flatguard_up", "flatguard_heartbeat_age_seconds", "flatguard_halted",
                   "flatguard_killpath_ready", "flatguard_killswitch_rounds_total",
                   "flatguard_clock_offset_seconds", "flatguard_notifications_dropped_total",
                   "flatguard_exchange_errors_total", "flatguard_process_flapping",
                   "flatguard_journal_errors_total", "up"):
        assert metric in used, metric
    assert any(r["expr"].startswith("absent(flatguard_up") for r in group["rules"])


def test_scrape_config_uses_file_discovery_for_several_stacks(tmp_path: Path) -> None:
    doc = yaml.safe_load(cli("prometheus", "scrape-config", "--targets-dir", str(tmp_path)))
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == prom_rules.JOB and job["metrics_path"] == "/metrics"
    (sd,) = job["file_sd_configs"]
    assert f"{tmp_path}/*.json" in sd["files"]


def test_dashboard_queries_parse_and_use_only_exported_metrics() -> None:
    doc = json.loads(cli("grafana", "dashboard"))
    assert doc == json.loads(json.dumps(grafana.dashboard()))
    ids, cells, used = set(), set(), set()
    for p in doc["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):  # panels never overlap
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))
        for t in p.get("targets", []):
            used |= check_expr(t["expr"])
            assert 'instance=~"$instance"' in t["expr"], t["expr"]
    for metric in ("flatguard_trading_state", "flatguard_position_contracts", "flatguard_equity",
                   "flatguard_orders_total", "flatguard_heartbeat_age_seconds",
                   "flatguard_killswitch_runs_total", "flatguard_bus_messages_total",
                   "flatguard_notifications_total"):
        assert metric in used, metric
    (var,) = [v for v in doc["templating"]["list"] if v["name"] == "instance"]
    check_expr(var["definition"].removeprefix("label_values(").rsplit(",", 1)[0])


# --- promtool, where installed ------------------------------------------------------------

def series(name: str, values: str, instance: str = "a", **labels: str) -> dict[str, str]:
    lbl = ",".join(f'{k}="{v}"' for k, v in {"job": prom_rules.JOB, "instance": instance,
                                             **labels}.items())
    return {"series": f"{name}{{{lbl}}}", "values": values}


def fired(alert: str, at: str, *instances: str, **labels: str) -> dict[str, Any]:
    exp = [{"exp_labels": {"severity": severity(alert), "job": prom_rules.JOB, "instance": i,
                           **labels}} for i in instances]
    return {"eval_time": at, "alertname": alert, "exp_alerts": exp}


def severity(alert: str) -> str:
    return next(a.severity for a in prom_rules.alerts() if a.name == alert)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(prom_rules.rules_yaml())
    r = subprocess.run([str(PROMTOOL), "check", "rules", str(rules)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # a: halted, trader down (expected), kill path broken, flatten failing.
    # b: trader down while not halted.
    inputs = [
        series("flatguard_halted", "0 1 1 1 1 1 1"),
        series("flatguard_halted", "0 0 0 0 0 0 0", "b"),
        series("flatguard_up", "1 0 0 0 0 0 0", process="trader"),
        series("flatguard_up", "1 0 0 0 0 0 0", "b", process="trader"),
        series("flatguard_up", "1 1 1 1 1 1 1", process="connector"),
        series("flatguard_killpath_ready", "1 0 0 0 0 0 0"),
        series("flatguard_killswitch_rounds_total", "0+3x6"),
        series("flatguard_heartbeat_age_seconds", "0.1 0.1 0.1 0.1 0.1 0.1 0.1",
               process="connector"),
        series("up", "1 1 1 1 1 1 1"),
        series("up", "1 1 0 0 0 0 0", "b"),
        series("flatguard_clock_offset_seconds", "0.01 -2 -2 -2 -2 -2 -2 -2"),
    ]
    tests = [
        fired("FlatguardHalted", "1m", "a"),
        fired("FlatguardTraderDown", "4m", "b", process="trader"),
        fired("FlatguardKillPathNotReady", "4m", "a"),
        fired("FlatguardFlattenFailing", "6m", "a"),
        fired("FlatguardScrapeDown", "4m", "b"),
        fired("FlatguardProcessDown", "4m"),
        fired("FlatguardHeartbeatStale", "4m"),
        fired("FlatguardAbsent", "4m"),
        fired("FlatguardClockOffset", "7m", "a"),
    ]
    test_file = tmp_path / "rules_test.yml"
    # JSON is YAML: promtool reads this as it is.
    test_file.write_text(json.dumps({
        "rule_files": [rules.name], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs,
                   "alert_rule_test": [{**t, "exp_alerts": [
                       {**e, "exp_annotations": annotations(t["alertname"], e["exp_labels"],
                                                            inputs, t["eval_time"])}
                       for e in t["exp_alerts"]]} for t in tests]}],
    }, indent=1))
    r = subprocess.run([str(PROMTOOL), "test", "rules", test_file.name], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def annotations(alert: str, labels: dict[str, str], inputs: list[dict[str, str]],
                at: str) -> dict[str, str]:
    """promtool compares annotations too: render ours for the values this test feeds."""
    a = next(x for x in prom_rules.alerts() if x.name == alert)
    value = {"FlatguardFlattenFailing": "15", "FlatguardClockOffset": "2"}.get(alert, "0")
    out = {}
    for k, text in (("summary", a.summary), ("description", a.description)):
        for lk, lv in labels.items():
            text = text.replace(f"{{{{ $labels.{lk} }}}}", lv)
        out[k] = text.replace("{{ $value }}", value)
    return out
