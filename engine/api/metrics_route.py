"""``GET /metrics``: the process's Prometheus metrics (`engine.metrics`), behind the API keys
like every other route (Prometheus sends one as a bearer token: ``authorization:
{credentials: KEY}`` in its scrape config).

The live-run gauge is read from the store at each scrape (one grouped count of the active
enrollments); when the store does not answer in time, the gauge is left out of that scrape
rather than shown stale, and the other metrics are served all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import APIRouter, Response
from fastapi.params import Depends
from sqlalchemy.exc import SQLAlchemyError

from engine.metrics import CONTENT_TYPE_LATEST, EngineMetrics
from engine.store import Store

log = structlog.get_logger(__name__)

LIVE_RUNS_TIMEOUT = 2.0
"""Seconds the store gets to count the live runs before a scrape goes on without them."""


def metrics_router(
    store: Store,
    metrics: EngineMetrics,
    dependencies: Sequence[Depends],
    errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    router = APIRouter(dependencies=list(dependencies))

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text format",
                "content": {CONTENT_TYPE_LATEST: {}},
            },
            401: errors[401],
        },
    )
    async def scrape() -> Response:
        """Sends, suppressions, cap-check and connector latency, enrollments and live runs
        (README, "Metrics"). The worker serves its own on ``JOURNEY_METRICS_PORT``."""
        try:
            async with asyncio.timeout(LIVE_RUNS_TIMEOUT):
                live = await store.live_runs()
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            log.warning("live_runs_unavailable", error=type(exc).__name__)
            live = {}
        metrics.set_live_runs(live)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
