"""The Temporal SDK's own Prometheus metrics, read by the benches (not log lines).

A worker process serves them when its runtime has a ``PrometheusConfig`` (``journey worker``
with ``JOURNEY_TEMPORAL_METRICS_PORT``). Histograms are read as cumulative buckets summed over
every label set; a quantile is the upper bound of the bucket that holds it (an over-estimate,
never under). Two scrapes of one process subtract, to read what happened between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import defaultdict

import httpx

WORKFLOW_TASK_EXECUTION = "temporal_workflow_task_execution_latency"
WORKFLOW_TASK_SCHEDULE_TO_START = "temporal_workflow_task_schedule_to_start_latency"
METRICS = (
    WORKFLOW_TASK_EXECUTION,
    WORKFLOW_TASK_SCHEDULE_TO_START,
    "temporal_activity_execution_latency",
    "temporal_local_activity_execution_latency",
    "temporal_local_activity_succeed_endtoend_latency",
)
SLOW_WORKFLOW_TASK = "TMPRL1104"
"""What the core logs for a workflow task that ran over 5 seconds."""

Buckets = list[tuple[float, float]]
"""Cumulative (upper bound, count), sorted by bound."""

_BUCKET = re.compile(r"^(\w+)_bucket\{(.*)\} (\S+)$")
_LE = re.compile(r'le="([^"]+)"')


def histograms(text: str) -> dict[str, Buckets]:
    """Cumulative buckets per metric (label sets summed): [(upper bound, count)], sorted."""
    summed: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        le = _LE.search(labels)
        if le:
            summed[name][math.inf if le.group(1) == "+Inf" else float(le.group(1))] += float(value)
    return {name: sorted(buckets.items()) for name, buckets in summed.items()}


def quantile(buckets: Buckets, q: float) -> float:
    """The upper bound of the bucket holding the q-quantile (an over-estimate, never under)."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return math.nan


def bound(buckets: Buckets, q: float, unit: str) -> str:
    """The q-quantile as its bucket says it: ``<=100ms``, or ``>10000ms`` past the last finite
    bucket ("inf" would hide where the buckets end)."""
    found = quantile(buckets, q)
    if found == math.inf:
        finite = [b for b, _ in buckets if b != math.inf]
        return f">{finite[-1]:g}{unit}" if finite else "-"
    return f"<={found:g}{unit}"


def since(before: Buckets, after: Buckets) -> Buckets:
    """The observations ``after`` holds that ``before`` (an earlier scrape) did not."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def find(found: dict[str, Buckets], metric: str) -> tuple[str, Buckets] | None:
    """The histogram whose name starts with ``metric`` (its unit suffix varies), if scraped."""
    for name, buckets in found.items():
        if name.startswith(metric):
            return name, buckets
    return None


def unit(name: str) -> str:
    """``s`` or ``ms``: the SDK names its histograms with their unit."""
    return "s" if name.endswith("_seconds") else "ms"


async def scrape(url: str) -> str:
    """One scrape of ``url`` (the metrics text)."""
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).text


async def scrape_until(url: str, done: asyncio.Event, into: list[str]) -> None:
    """Keep the last scrape of ``url`` in ``into[0]`` until ``done`` (the process may end)."""
    async with httpx.AsyncClient() as http:
        while not done.is_set():
            with contextlib.suppress(httpx.HTTPError):
                into[:] = [(await http.get(url)).text]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1)
