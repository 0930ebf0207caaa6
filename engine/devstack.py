"""``journey dev``: the whole engine in one process on one machine, until Ctrl-C.

Temporal dev server (SQLite persistence under ``.journey/``, UI), Redis, the SQLite store with
migrations applied, the HTTP API, and two journey workers in processes of their own: one for
workflow tasks, one for activity tasks (``engine.worker_process``), so that the API's requests
and the sends never hold up a workflow task. Stopping stops all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from engine.api import create_app, serve_api
from engine.metrics import EngineMetrics
from engine.runner import report_source
from engine.servers import port_taken
from engine.services.enroll import Enroller
from engine.services.events import EventRouter, redeliver_periodically
from engine.settings import Settings
from engine.stack import EmbeddedStack, StackError, StackPorts
from engine.store import Store
from engine.worker_process import worker_process

WORKER_LOG = "worker.log"
"""Under the home folder: what the two worker processes log (JSON lines)."""


async def run_dev(
    settings: Settings, ports: StackPorts, api_port: int, say: Callable[[str], None]
) -> None:
    if port_taken(api_port):
        raise StackError(f"port {api_port} for the API is taken: choose another with --api-port")
    settings.home.mkdir(parents=True, exist_ok=True)
    stack = EmbeddedStack(settings.home, ports)
    say(f"starting Temporal on {stack.temporal_address} and Redis on {stack.redis_url} ...")
    client = await stack.start()
    settings = settings.model_copy(
        update={"temporal_address": stack.temporal_address, "redis_url": stack.redis_url}
    )
    store = Store.from_url(settings.resolved_database_url())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await store.migrate()
        # The API's /metrics: entries and live runs; the sends are the activity worker's.
        metrics = EngineMetrics()
        enroller = Enroller(
            store, client, settings.task_queue, time_scale=settings.time_scale, metrics=metrics
        )
        router = EventRouter(store, client, enroller)
        keys = [key.get_secret_value() for key in settings.api_keys]
        app = create_app(
            store,
            router,
            keys,
            allow_anonymous=not keys,
            unsubscribe_secret=settings.resolved_unsubscribe_secrets(),
            default_region=settings.default_region,
            reports=report_source(settings, store),
            report_secret=settings.resolved_report_secret(),
        )
        log_path = settings.home / WORKER_LOG
        async with contextlib.AsyncExitStack() as workers:
            for role, settings_of_role in _worker_settings(settings).items():
                await workers.enter_async_context(
                    worker_process(settings_of_role, log_path, role=role)
                )
            listening = asyncio.Event()
            api = asyncio.create_task(serve_api(app, "127.0.0.1", api_port, stop, listening))
            # "ready" only once the API takes connections (or has failed to bind).
            bound = asyncio.create_task(listening.wait())
            await asyncio.wait({api, bound}, return_when=asyncio.FIRST_COMPLETED)
            bound.cancel()
            if api.done():
                await api
            sweeper = asyncio.create_task(redeliver_periodically(router, stop))
            say(f"Temporal UI   {stack.ui_url}")
            say(
                f"HTTP API      http://127.0.0.1:{api_port}/docs"
                + ("" if keys else " (no API key: local only)")
            )
            say(f"report        http://127.0.0.1:{api_port}/reports (journey report --link)")
            say(f"database      {settings.resolved_database_url()}")
            say(
                f"workers       task queue '{settings.task_queue}': one process for workflow "
                f"tasks, one for activities (log {log_path})"
            )
            say(
                "ready. In another terminal: journey deploy journeys/*.yaml, journey enroll, "
                "journey event ... Ctrl-C stops everything."
            )
            await stop.wait()
            await api
            await sweeper
    finally:
        with contextlib.suppress(NotImplementedError):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        await store.aclose()
        await stack.stop()
        say("stopped.")


def _worker_settings(settings: Settings) -> dict[str, dict[str, str | None]]:
    """What each worker process is told on top of this process's environment: the stack's
    addresses, and one metrics port each (two processes cannot share one): the workflow
    worker serves the Temporal SDK's task latencies, the activity worker the engine's sends."""
    common: dict[str, str | None] = {
        "JOURNEY_TEMPORAL_ADDRESS": settings.temporal_address,
        "JOURNEY_REDIS_URL": settings.redis_url,
        "JOURNEY_DATABASE_URL": settings.resolved_database_url(),
    }
    return {
        "workflows": {**common, "JOURNEY_METRICS_PORT": None},
        "activities": {**common, "JOURNEY_TEMPORAL_METRICS_PORT": None},
    }
