"""The process's Temporal runtime, built in one place: the Temporal core's log lines go through
``logging`` (so `engine.logs` formats them), and, when asked, the SDK's own metrics (workflow and
activity task latencies, slots, polls, sticky cache...) are served in Prometheus' text format at
``http://<address>/metrics`` by the core itself.

`engine.logs` installs the runtime without metrics when logging is configured; ``journey worker``
installs it again with ``JOURNEY_TEMPORAL_METRICS_PORT`` before it connects. A runtime applies to
the clients made after it is installed, never to earlier ones.
"""

from __future__ import annotations

import contextlib
import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)


class TemporalMetricsUnavailable(ValueError):
    """The SDK's metrics endpoint cannot be served (the port is taken); the message says where."""


LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)
"""Finer buckets than the SDK's for the workflow-task latencies (its execution histogram ends at
1 s, so "p99 under 1 s" could not be told from "just over"); in milliseconds, the unit the
core reports durations in."""
_FINER = {
    name: LATENCY_BUCKETS_MS
    for name in ("workflow_task_execution_latency", "workflow_task_schedule_to_start_latency")
}


def temporal_runtime(metrics_address: str | None = None) -> Runtime:
    """A runtime forwarding the core's logs to the ``temporalio.core`` logger and, with
    ``metrics_address`` (``host:port``), serving the SDK's metrics there.
    Raises TemporalMetricsUnavailable."""
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=LoggingConfig.default.filter,
                    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
                ),
                metrics=(
                    PrometheusConfig(metrics_address, histogram_bucket_overrides=_FINER)
                    if metrics_address
                    else None
                ),
            )
        )
    except ValueError as exc:
        raise TemporalMetricsUnavailable(
            f"cannot serve Temporal SDK metrics on {metrics_address}: {exc}"
        ) from exc


_installed: list[str | None] = []
"""The metrics address of the runtime installed as the default, once one is."""


def install_temporal_runtime(metrics_address: str | None = None) -> None:
    """Make `temporal_runtime` the default runtime of the process's Temporal clients.

    Without ``metrics_address``: only when no default runtime exists yet (a runtime in use is
    kept). With one: replaces the default, so call it before the first client connects.
    Raises TemporalMetricsUnavailable."""
    if metrics_address is None:
        if _installed:
            return
        with contextlib.suppress(RuntimeError):  # a runtime is in use already: keep it
            Runtime.set_default(temporal_runtime(), error_if_already_set=True)
        _installed.append(None)
        return
    if _installed and _installed[-1] == metrics_address:
        return
    Runtime.set_default(temporal_runtime(metrics_address), error_if_already_set=False)
    _installed.append(metrics_address)
