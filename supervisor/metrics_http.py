"""The one /metrics endpoint, covering every process.

Children ship their samples in heartbeats (``trader/metrics.py`` says why); a custom collector
turns the latest samples of every live child plus the supervisor's own registry into metric
families at scrape time. A child that is gone contributes nothing but ``flatguard_up 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from trader.kernel.metrics import SPECS
from trader.kernel.redact import scrub_url

SampleSource = Callable[[], list[list[Any]]]


class FleetCollector:
    def __init__(self, sources: SampleSource) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Any] = {}
        for name, labels, value in self.sources():
            spec = SPECS.get(name)
            if spec is None:
                continue
            fam = families.get(name)
            if fam is None:
                base = name.removesuffix("_total") if spec.kind == "counter" else name
                cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
                fam = families[name] = cls(base, spec.help, labels=list(spec.labels))
            lbl = dict(labels)
            # No label value may carry a signed URL (a call name, an error kind): scrubbed here.
            fam.add_metric([scrub_url(str(lbl.get(k, ""))) for k in spec.labels], float(value))
        yield from families.values()


def serve(host: str, port: int, sources: SampleSource) -> tuple[Any, int]:
    """Start the HTTP endpoint in a daemon thread; return (server, bound port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(sources))  # type: ignore[arg-type]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, int(server.server_port)
