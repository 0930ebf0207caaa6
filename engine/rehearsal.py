"""The sandbox a rehearsal (``journey simulate``) runs in, wired like a production worker.

A temporary folder holds a SQLite store; a throwaway redis-server holds the cap counters; the
worker is the real one (`engine.worker.build_worker` with `JourneyActivities`) polling Temporal's
time-skipping test server; the cap service is the real one (`RedisCapService`) with the contact
policy (JOURNEY_POLICY_PATH) and the providers' quotas, starting from the people's real sends of
the last 90 days; every channel goes to a recording connector.
Nothing is sent, and nothing outside the temporary folder is written. All of it is gone when the
context ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import redis.asyncio as aioredis
import structlog
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from connectors.base import Connector, ProviderQuota
from connectors.recording import RecordingConnector
from connectors.registry import DEFAULT_CHANNELS, ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.factory import channel_quotas, load_contact_policy
from engine.caps.redis_caps import RedisCapService
from engine.dsl.models import Journey, SendStep
from engine.dsl.policy import Arbitration
from engine.dsl.tiers import Tiers
from engine.services.simulate import Sandbox
from engine.settings import Settings
from engine.store import Store
from engine.throwaway import RedisServer, start_time_skipping
from engine.worker import build_worker

log = structlog.get_logger(__name__)

TASK_QUEUE = "simulate"


def _channels(journey: Journey) -> set[str]:
    return set(DEFAULT_CHANNELS) | {
        s.send.channel for s in journey.steps if isinstance(s, SendStep)
    }


async def _provider_quotas(http: httpx.AsyncClient) -> dict[str, ProviderQuota]:
    """The quotas the configured connectors declare (WeCom's monthly group messages), as a
    worker would enforce them. Building a connector does no I/O; nothing is sent."""
    registry = ConnectorRegistry.from_settings(ConnectorSettings(), http)
    try:
        return dict(registry.quotas())
    finally:
        await registry.aclose()


STEP = timedelta(hours=6)
"""The clock moves at most this far per request: a request lasts as long as the work its
timers start, and long requests on a busy machine lose their connection."""
_TRIES = 5


async def _advance(env: WorkflowEnvironment, by: timedelta) -> None:
    """Move the time-skipping server's clock ``by`` forward, firing the timers due on the way.

    A request that fails (the connection dropped under load) is asked again from wherever the
    clock got to; Temporal's server keeps the time it reached."""
    target = await env.get_current_time() + by
    failures = 0
    while (now := await env.get_current_time()) < target:
        try:
            await env.sleep(min(target - now, STEP))
            failures = 0
        except RPCError as exc:
            failures += 1
            if failures == _TRIES:
                raise
            log.warning("time_skip_retried", error=str(exc), failures=failures)
            await asyncio.sleep(0.5 * failures)


def _quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs only errors (through logging): the test server is
    older than the SDK expects, and the core's warning about it means nothing to a rehearsal."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )


@asynccontextmanager
async def open_sandbox(
    settings: Settings, journey: Journey, tiers: Tiers | None = None
) -> AsyncIterator[Sandbox]:
    """Start the throwaway servers and a worker; yield the sandbox; stop and delete it all.

    Raises MissingBinary when redis-server or the time-skipping server is not installed."""
    with tempfile.TemporaryDirectory(prefix="journey-simulate-") as folder:
        directory = Path(folder)
        redis = RedisServer(directory / "redis", persist=False)
        await asyncio.to_thread(redis.start)
        try:
            env = await start_time_skipping(_quiet_runtime())
            store = Store.from_url(f"sqlite+aiosqlite:///{directory / 'sandbox.db'}")
            http = httpx.AsyncClient()
            recorder = RecordingConnector()
            cap_store = aioredis.Redis.from_url(redis.url, socket_timeout=5)

            def recording(_settings: ConnectorSettings, _client: httpx.AsyncClient) -> Connector:
                return recorder

            registry = ConnectorRegistry(
                ConnectorSettings(channels={c: "recording" for c in _channels(journey)}),
                http,
                {"recording": recording},
            )
            try:
                await store.migrate()
                policy = load_contact_policy(settings)
                quotas = channel_quotas(await _provider_quotas(http))
                caps = RedisCapService(cap_store, policy, quotas)
                # Past sends were already through quiet hours and arbitration: count them only.
                ungated = policy.model_copy(
                    update={"quiet_hours": None, "arbitration": Arbitration()}
                )
                activities = JourneyActivities(store, caps, registry, None, tiers)
                # Without the sandbox (a third faster): the same workflow code, whose determinism
                # the replay tests guard; a rehearsal's runs are never replayed.
                worker = build_worker(
                    env.client,
                    TASK_QUEUE,
                    activities.all(),
                    workflow_runner=UnsandboxedWorkflowRunner(),
                )
                async with worker:
                    yield Sandbox(
                        store=store,
                        client=env.client,
                        task_queue=TASK_QUEUE,
                        advance=functools.partial(_advance, env),
                        now=env.get_current_time,
                        recorded=lambda: len(recorder.messages),
                        touches=RedisCapService(cap_store, ungated, quotas),
                    )
            finally:
                await registry.aclose()
                await http.aclose()
                await cap_store.aclose()
                await store.aclose()
                await env.shutdown()
                await asyncio.sleep(0.05)  # sdk-python#300: let the runtime settle
        finally:
            redis.stop()
