"""Reading scraped metrics and the Grafana dashboard's queries, for the metrics tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "journey-engine.json"
_NAME = re.compile(r"\b(?:journey|temporal)_[a-zA-Z0-9_]+")
_NOT_METRICS = re.compile(r"\{[^}]*\}|\[[^\]]*\]|\bby\s*\([^)]*\)|,\s*\w+\s*\)")
"""Label matchers, ranges, ``by (...)`` clauses and ``label_values(m, label)``'s label: their
words are labels, not metrics."""


def sample_value(families: Iterable[Metric], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the dashboard (panels and template variables)."""
    return list(_exprs(json.loads(DASHBOARD.read_text(encoding="utf-8"))))


def dashboard_metric_names() -> set[str]:
    """The series names the dashboard's queries read (``journey_*`` and ``temporal_*``)."""
    return {name for e in dashboard_exprs() for name in _NAME.findall(_NOT_METRICS.sub("", e))}
