"""The worker's composition root: read settings, wire store, caps and connectors, poll Temporal."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack, asynccontextmanager
from typing import Literal

import httpx
import redis.asyncio as aioredis
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.factory import build_cap_checker, load_contact_policy, redis_client
from engine.caps.pacing import redis_pacers
from engine.dsl.loader import load_tiers
from engine.dsl.models import Journey, SendStep
from engine.dsl.tiers import Tiers
from engine.metrics import EngineMetrics, MetricsPortTaken, serving_metrics
from engine.services.enroll import Enroller
from engine.services.reporting import ReportSource
from engine.services.schedules import SegmentEntryActivities
from engine.settings import Settings
from engine.stack import StackError
from engine.store import Store
from engine.telemetry import TemporalMetricsUnavailable, install_temporal_runtime
from engine.temporal import connect
from engine.unsubscribe import unsubscribe_url
from engine.worker import build_worker

log = structlog.get_logger(__name__)


Role = Literal["all", "workflows", "activities"]
"""What a worker process polls for. ``workflows``: workflow tasks and the local activities they
run; ``activities``: activity tasks only. Two processes, one of each, on one task queue, keep
workflow tasks from waiting behind activities for one event loop and one GIL."""


@asynccontextmanager
async def journey_worker(
    settings: Settings,
    client: Client,
    store: Store,
    metrics: EngineMetrics | None = None,
    role: Role = "all",
    extra_workflows: Sequence[type] = (),
) -> AsyncIterator[Worker]:
    """A worker with every port wired; connector problems are reported before it polls.
    ``metrics`` counts its sends and segment entries; ``role`` what it polls for;
    ``extra_workflows`` see `build_worker`."""
    metrics = metrics if metrics is not None else EngineMetrics()
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    pacing = redis_client(settings)
    registry = connector_registry(http, pacing)
    problems = registry.check()
    for problem in problems:
        log.warning("connector_not_configured", problem=problem)
    needed = await _channels_in_use(store)
    broken = [line for line in problems if any(f"channel {c!r}" in line for c in needed)]
    if broken:
        await http.aclose()
        await pacing.aclose()
        raise StackError("deployed journeys use unconfigured channels: " + "; ".join(broken))
    activities = JourneyActivities(
        store,
        build_cap_checker(settings, registry.quotas()),
        registry,
        unsubscribe_link(settings),
        load_member_tiers(settings),
        metrics,
    )
    enroller = Enroller(
        store, client, settings.task_queue, time_scale=settings.time_scale, metrics=metrics
    )
    segment_entry = SegmentEntryActivities(store, enroller)
    polled = (
        activities.local() if role == "workflows" else [*activities.all(), *segment_entry.all()]
    )
    try:
        yield build_worker(
            client,
            settings.task_queue,
            polled,
            workflows=role != "activities",
            remote_activities=role != "workflows",
            extra_workflows=extra_workflows,
            workflow_task_slots=settings.workflow_task_slots,
        )
    finally:
        await registry.aclose()
        await http.aclose()
        await pacing.aclose()


def connector_registry(http: httpx.AsyncClient, pacing: aioredis.Redis) -> ConnectorRegistry:
    """Connectors from the environment; provider rate limits hold across every worker, since
    their pacers share slots through ``pacing`` (Redis)."""
    return ConnectorRegistry.from_settings(ConnectorSettings(), http, redis_pacers(pacing))


def load_member_tiers(settings: Settings) -> Tiers | None:
    """``journeys/tiers.yaml`` when it exists (tier conditions then use its rules)."""
    path = settings.journeys_dir / "tiers.yaml"
    return load_tiers(path) if path.exists() else None


def report_source(settings: Settings, store: Store) -> ReportSource:
    """The report as the settings define it: their contact policy and member tiers."""
    tiers = load_member_tiers(settings) or Tiers()
    return ReportSource(store, load_contact_policy(settings), tiers)


def unsubscribe_link(settings: Settings) -> Callable[[str, str], str]:
    return functools.partial(
        unsubscribe_url, settings.public_url, settings.resolved_unsubscribe_secret()
    )


async def _channels_in_use(store: Store) -> set[str]:
    channels: set[str] = set()
    for version in await store.latest_versions():
        journey = Journey.model_validate(version.definition)
        channels |= {s.send.channel for s in journey.steps if isinstance(s, SendStep)}
    return channels


def use_temporal_metrics(settings: Settings) -> None:
    """Serve the Temporal SDK's metrics on JOURNEY_TEMPORAL_METRICS_PORT, when set. Call it before
    the process's Temporal client connects (a runtime applies to the clients made after it)."""
    try:
        install_temporal_runtime(settings.temporal_metrics_address())
    except TemporalMetricsUnavailable as exc:
        raise StackError(f"JOURNEY_TEMPORAL_METRICS_PORT: {exc}") from None


async def run_worker(
    settings: Settings, role: Role = "all", extra_workflows: Sequence[type] = ()
) -> None:
    """Poll until SIGINT/SIGTERM, then finish in-flight tasks and exit (``extra_workflows``:
    see `build_worker`).

    With ``JOURNEY_METRICS_PORT`` the engine's metrics are served at ``/metrics`` there, with
    ``JOURNEY_TEMPORAL_METRICS_PORT`` the Temporal SDK's (both on ``JOURNEY_METRICS_HOST``)."""
    use_temporal_metrics(settings)
    metrics = EngineMetrics()
    store = Store.from_url(settings.resolved_database_url())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        with ExitStack() as serving:
            if settings.metrics_port is not None:
                host = settings.metrics_host
                try:
                    port = serving.enter_context(
                        serving_metrics(metrics.registry, host, settings.metrics_port)
                    )
                except MetricsPortTaken as exc:
                    raise StackError(f"JOURNEY_METRICS_PORT: {exc}") from None
                log.info("metrics_listening", host=host, port=port)
            client = await connect(settings.temporal_address, settings.temporal_namespace)
            async with (
                journey_worker(settings, client, store, metrics, role, extra_workflows) as worker,
                worker,
            ):
                log.info("worker_started", task_queue=settings.task_queue, role=role)
                await stop.wait()
    finally:
        await store.aclose()
