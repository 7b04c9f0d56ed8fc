"""Prometheus alerting rules and a scrape job for flatguard stacks (``flatguard prometheus``).

Every expression names only metrics from ``trader/metrics.py`` SPECS (a test parses each one),
plus Prometheus's own ``up`` for the scrape itself. The rules assume the series tell the truth
when things go wrong: heartbeat age absent (not -1) for a process that is not running, the kill
path 0 while it cannot reach the exchange, counters present at 0 from start-up.

YAML is written by hand (no PyYAML at run time): every string is emitted as a JSON string,
which is also a valid YAML double-quoted scalar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

JOB = "flatguard"  # the scrape job's name; every rule selects on it
SEL = f'job="{JOB}"'


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str  # "critical": a person must act now; "warning": look today
    summary: str
    description: str
    for_: str = "0m"
    labels: dict[str, str] = field(default_factory=dict)


def alerts() -> list[Alert]:
    s = SEL
    return [
        Alert("FlatguardAbsent", f"absent(flatguard_up{{{s}}})", "critical",
              "No flatguard stack reports to Prometheus",
              "No flatguard_up series at all: every stack is down or unreachable, or the "
              f"scrape job is not named {JOB!r}.", "2m"),
        Alert("FlatguardScrapeDown", f"up{{{s}}} == 0", "critical",
              "flatguard {{ $labels.instance }}: /metrics unreachable",
              "The supervisor of {{ $labels.instance }} does not answer: it is down, hung or "
              "its host is. Its children keep the account safe only for a while "
              "(dead-man switch, supervisor-loss handling): check it now.", "1m"),
        Alert("FlatguardProcessDown",
              f'flatguard_up{{{s},process!~"trader|sim"}} == 0', "critical",
              "flatguard {{ $labels.instance }}: {{ $labels.process }} is down",
              "{{ $labels.process }} has not been up (running with a fresh heartbeat) for 2 "
              "minutes; the supervisor restarts it or has given up on it.", "2m"),
        Alert("FlatguardTraderDown",
              f'flatguard_up{{{s},process="trader"}} == 0 '
              f'unless on(job, instance) flatguard_halted{{{s}}} == 1', "critical",
              "flatguard {{ $labels.instance }}: the trader is down and not halted",
              "The trader is not running although trading is not HALTED.", "2m"),
        Alert("FlatguardHeartbeatStale",
              f"flatguard_heartbeat_age_seconds{{{s}}} > 5", "warning",
              "flatguard {{ $labels.instance }}: {{ $labels.process }} heartbeat {{ $value }} s old",
              "A running process has sent no heartbeat for over 5 s for a minute, yet was "
              "not judged hung (the machine starves it?). Check the host's load.", "1m"),
        Alert("FlatguardHalted", f"flatguard_halted{{{s}}} == 1", "critical",
              "flatguard {{ $labels.instance }} is HALTED",
              "Trading is halted (kill switch, stop not verified, or abort). Check the account, "
              "then `flatguard ctl resume --yes`."),
        Alert("FlatguardKillPathNotReady", f"flatguard_killpath_ready{{{s}}} == 0", "critical",
              "flatguard {{ $labels.instance }}: kill path NOT ready",
              "The supervisor's own exchange session cannot prove it works (keys, network, "
              "clock) or a flatten round fails: the kill switch may be unable to flatten.", "2m"),
        Alert("FlatguardFlattenFailing",
              f"increase(flatguard_killswitch_rounds_total{{{s}}}[5m]) > 4", "critical",
              "flatguard {{ $labels.instance }}: flatten rounds keep failing",
              "The kill switch ran {{ $value }} flatten rounds in 5 minutes: the account is "
              "not verified flat. Look at the exchange now."),
        Alert("FlatguardWatchFlatten",
              f"increase(flatguard_killswitch_watch_flattens_total{{{s}}}[15m]) > 0", "critical",
              "flatguard {{ $labels.instance }}: exposure reappeared after a verified flatten",
              "While watching a halted account the kill switch found and flattened exposure: "
              "an order signed before the fence landed, or something else trades the account."),
        Alert("FlatguardClockOffset",
              f"abs(flatguard_clock_offset_seconds{{{s}}}) > 1", "warning",
              "flatguard {{ $labels.instance }}: clock {{ $value }} s off the exchange",
              "The local clock differs from the exchange's by over 1 s: orders risk "
              "timestamp rejections (-1021). Fix NTP (chrony/systemd-timesyncd).", "5m"),
        Alert("FlatguardExchangeBanned", f"flatguard_exchange_banned_seconds{{{s}}} > 0",
              "critical", "flatguard {{ $labels.instance }}: banned by the exchange",
              "The exchange banned this key/IP for {{ $value }} more seconds (HTTP 418/429): "
              "nothing, the kill path included, can reach it until the ban ends."),
        Alert("FlatguardExchangeErrors",
              f"sum by (job, instance, kind) "
              f"(increase(flatguard_exchange_errors_total{{{s}}}[10m])) > 10", "warning",
              "flatguard {{ $labels.instance }}: {{ $value }} {{ $labels.kind }} exchange errors",
              "More than 10 exchange call failures of kind {{ $labels.kind }} in 10 minutes."),
        Alert("FlatguardNotificationsDropped",
              f"sum by (job, instance, sink) "
              f"(increase(flatguard_notifications_dropped_total{{{s}}}[15m])) > 0", "warning",
              "flatguard {{ $labels.instance }}: notifications dropped ({{ $labels.sink }})",
              "The notifier's queue for {{ $labels.sink }} was full: alerts were lost."),
        Alert("FlatguardNotificationsFailing",
              f'sum by (job, instance, sink) (increase(flatguard_notifications_total'
              f'{{{s},outcome="failed"}}[15m])) > 0', "warning",
              "flatguard {{ $labels.instance }}: notifications to {{ $labels.sink }} failing",
              "Sending to {{ $labels.sink }} failed after its retries: alerts may not reach you."),
        Alert("FlatguardProcessFlapping",
              f"flatguard_process_flapping{{{s}}} == 1", "critical",
              "flatguard {{ $labels.instance }}: {{ $labels.process }} is flapping",
              "{{ $labels.process }} restarts more often than supervisor.restart_intensity; "
              "it is restarted forever with backoff and alerts may not reach you."),
        Alert("FlatguardRestarts",
              f"increase(flatguard_process_restarts_total{{{s}}}[30m]) > 2", "warning",
              "flatguard {{ $labels.instance }}: {{ $labels.process }} restarted "
              "{{ $value }} times in 30 min", "See the stack's log for why."),
        Alert("FlatguardJournalErrors",
              f"sum by (job, instance) "
              f"(increase(flatguard_journal_errors_total{{{s}}}[10m])) > 0", "critical",
              "flatguard {{ $labels.instance }}: journal writes failing",
              "Writes to journal.db fail (disk full, permissions): the HALTED state and the "
              "order record may not be durable."),
        Alert("FlatguardFillConflicts",
              f"increase(flatguard_fill_conflicts_total{{{s}}}[1h]) > 0", "warning",
              "flatguard {{ $labels.instance }}: conflicting fills",
              "A fill id arrived again with different fields: check the inventory."),
    ]


def _q(s: str) -> str:
    return json.dumps(s)


def rules_yaml() -> str:
    out = ["# flatguard alerting rules: `flatguard prometheus rules > flatguard-rules.yml`,",
           "# then list the file under rule_files: in prometheus.yml. The scrape job must be",
           f"# named {JOB!r} (`flatguard prometheus scrape-config`).",
           "groups:", f"  - name: {JOB}", "    rules:"]
    for a in alerts():
        out += [f"      - alert: {a.name}", f"        expr: {_q(a.expr)}"]
        if a.for_ != "0m":
            out.append(f"        for: {a.for_}")
        out += ["        labels:", f"          severity: {a.severity}"]
        out += [f"          {k}: {_q(v)}" for k, v in a.labels.items()]
        out += ["        annotations:", f"          summary: {_q(a.summary)}",
                f"          description: {_q(a.description)}"]
    return "\n".join(out) + "\n"


def scrape_yaml(targets_dir: str, interval: str = "15s") -> str:
    """A scrape job reading its targets from files: adding a stack is dropping a file in
    ``targets_dir``; Prometheus picks it up without a reload."""
    example = json.dumps([{"targets": ["127.0.0.1:9387"], "labels": {"stack": "main"}}])
    return "\n".join([
        "# Paste under scrape_configs: in prometheus.yml. One file per stack in",
        f"# {targets_dir}/, e.g. {targets_dir}/main.json:",
        f"#   {example}",
        "# (the target is the stack's [metrics] host:port; metrics.host defaults to 127.0.0.1,",
        "# so run Prometheus on the same host or set it to an address Prometheus reaches).",
        "scrape_configs:",
        f"  - job_name: {_q(JOB)}",
        f"    scrape_interval: {_q(interval)}",
        f"    metrics_path: {_q('/metrics')}",
        "    file_sd_configs:",
        "      - files:",
        f"          - {_q(targets_dir.rstrip('/') + '/*.json')}",
        f"          - {_q(targets_dir.rstrip('/') + '/*.yml')}",
        f"        refresh_interval: {_q('1m')}",
    ]) + "\n"
