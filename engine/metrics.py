"""The engine's Prometheus metrics: every definition in one place, on a registry of its own.

A composition root makes one `EngineMetrics` per process and hands it to what records (the send
activity, the enroller) and to what exposes it (the API's ``/metrics``, the worker's
`serving_metrics`). Each instance has its own ``CollectorRegistry``, never the global default,
so tests and embedded stacks never collide.

Labels are bounded: journey ids, channels, connector names, statuses, entry kinds and
suppression reasons (a cap rule such as ``global:1/1d`` is bounded by the policy,
``arbitration_lost:<journey>`` by the journeys; free text after ``": "`` is cut off). Never a
profile id, an address or an error message.

| metric | type | labels |
|---|---|---|
| ``journey_sends_total`` | counter | journey_id, channel, status |
| ``journey_suppressions_total`` | counter | journey_id, channel, status, reason |
| ``journey_cap_check_seconds`` | histogram | |
| ``journey_connector_seconds`` | histogram | connector, channel |
| ``journey_connector_errors_total`` | counter | connector, channel, kind |
| ``journey_enrollments_total`` | counter | journey_id, entry, outcome |
| ``journey_live_runs`` | gauge | journey_id |
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "REFUSED",
    "EngineMetrics",
    "MetricsPortTaken",
    "reason_label",
    "serving_metrics",
]

REFUSED = frozenset({"suppressed", "deferred", "expired"})
"""Delivery statuses that a rule decided (their reason is counted in the suppressions)."""

REASON_MAX = 80
"""Characters of a reason kept as a label value."""

_CAP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""One Redis round trip: sub-millisecond on a local Redis, a few ms across a network."""
_CONNECTOR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""A provider's HTTP or SMTP answer: tens of ms to seconds (the client's timeout is 10 s)."""


def reason_label(reason: str | None) -> str:
    """A delivery reason as a bounded label value: the rule or category, without free text
    (``template:cart_a: 'x' is undefined`` -> ``template:cart_a``); ``none`` when there is none."""
    if not reason:
        return "none"
    return reason.split(": ", 1)[0][:REASON_MAX]


class EngineMetrics:
    """The engine's metrics on their own registry (``registry``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sends = Counter(
            "journey_sends",
            "Send decisions recorded in the delivery log, by outcome (a send deferred and later "
            "sent counts once deferred and once sent).",
            ["journey_id", "channel", "status"],
            registry=r,
        )
        self.suppressions = Counter(
            "journey_suppressions",
            "Sends a rule refused (suppressed, deferred or expired), by the rule or reason.",
            ["journey_id", "channel", "status", "reason"],
            registry=r,
        )
        self.cap_check_seconds = Histogram(
            "journey_cap_check_seconds",
            "Time of one frequency-cap check-and-reserve (consent aside: quiet hours, "
            "arbitration, the Redis script).",
            buckets=_CAP_BUCKETS,
            registry=r,
        )
        self.connector_seconds = Histogram(
            "journey_connector_seconds",
            "Time of one provider call by a connector, answered or failed.",
            ["connector", "channel"],
            buckets=_CONNECTOR_BUCKETS,
            registry=r,
        )
        self.connector_errors = Counter(
            "journey_connector_errors",
            "Provider calls that failed: retryable (the provider refused for now), no_answer "
            "(it may have taken the message), permanent, or error (neither said).",
            ["connector", "channel", "kind"],
            registry=r,
        )
        self.enrollments = Counter(
            "journey_enrollments",
            "People asked to enter a journey, by the journey's entry kind (segment, event, api) "
            "and what happened (started, reentry_blocked, live, missing, journey_paused, "
            "journey_stopped).",
            ["journey_id", "entry", "outcome"],
            registry=r,
        )
        self.live_runs = Gauge(
            "journey_live_runs",
            "Runs in flight (active enrollments in the store), per deployed journey; "
            "read from the store when the API's /metrics is scraped.",
            ["journey_id"],
            registry=r,
        )

    def delivery(self, journey_id: str, channel: str, status: str, reason: str | None) -> None:
        """Count one outcome written to the delivery log."""
        self.sends.labels(journey_id, channel, status).inc()
        if status in REFUSED:
            self.suppressions.labels(journey_id, channel, status, reason_label(reason)).inc()

    def connector_call(
        self, connector: str, channel: str, seconds: float, error_kind: str | None
    ) -> None:
        """Count one provider call; ``error_kind`` None when it was answered."""
        self.connector_seconds.labels(connector, channel).observe(seconds)
        if error_kind is not None:
            self.connector_errors.labels(connector, channel, error_kind).inc()

    def entered(self, journey_id: str, entry: str, counts: Mapping[str, int]) -> None:
        """Count what happened to the people asked to enter ``journey_id``."""
        for outcome, people in counts.items():
            if people:
                self.enrollments.labels(journey_id, entry, outcome).inc(people)

    def set_live_runs(self, counts: Mapping[str, int]) -> None:
        """Replace the live-run gauge: ``counts`` has every deployed journey (0 included), so a
        journey that was removed disappears."""
        self.live_runs.clear()
        for journey_id, runs in counts.items():
            self.live_runs.labels(journey_id).set(runs)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


class MetricsPortTaken(OSError):
    """The worker's metrics port cannot be bound; the message names the address."""


@contextlib.contextmanager
def serving_metrics(registry: CollectorRegistry, host: str, port: int) -> Iterator[int]:
    """Serve ``registry`` at ``http://host:port/metrics`` (prometheus_client's server, in a
    thread) until the block ends; yields the bound port. Raises MetricsPortTaken."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsPortTaken(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
