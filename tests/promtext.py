"""Reading a Prometheus text exposition back in tests: one value per (name, labels) series."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and sorted labels; a series exposed twice fails the test."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def val(series: dict[Any, float], name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))
