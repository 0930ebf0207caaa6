"""Journey routes: ``POST /v1/journeys/{id}/trigger`` enters people into an API-entry journey."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.api.json_body import StrictJsonRoute
from engine.api.models import TriggerIn, TriggerOut, TriggerResult
from engine.dsl.models import ApiEntry, SegmentEntry
from engine.services.enroll import Enroller
from engine.store import Store

log = structlog.get_logger(__name__)

JourneyIdPath = Annotated[str, Path(min_length=1, max_length=128)]


def journeys_router(
    store: Store,
    enroller: Enroller,
    clock: Callable[[], datetime],
    dependencies: Sequence[Depends],
    errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    router = APIRouter(
        dependencies=list(dependencies), responses=errors, route_class=StrictJsonRoute
    )

    @router.post(
        "/v1/journeys/{journey_id}/trigger",
        response_model=TriggerOut,
        responses={
            404: {"description": "no journey with this id is deployed"},
            409: {"description": "the journey does not enter people through the API"},
        },
    )
    async def trigger(journey_id: JourneyIdPath, body: TriggerIn) -> TriggerOut | JSONResponse:
        """Enter people into the latest deployed version of a journey whose entry is
        ``{api: true}``. Re-entry rules apply; each person's outcome is listed: ``started``,
        ``reentry_blocked``, ``live`` (already in a run) or ``missing`` (no such profile). A
        merged profile id enters as the person it was merged into. Safe to resend."""
        try:
            version = await store.latest_version(journey_id)
        except (SQLAlchemyError, OSError) as exc:
            return _failed(exc)
        if version is None:
            return JSONResponse(
                {"detail": "no journey with this id is deployed; deploy it with `journey deploy`"},
                status_code=404,
            )
        journey = enroller.journey(version)
        if not isinstance(journey.entry, ApiEntry):
            kind = "segment" if isinstance(journey.entry, SegmentEntry) else "event"
            return JSONResponse(
                {
                    "detail": (
                        f"journey {journey_id!r} enters people by {kind}, not through the API; "
                        "only journeys with `entry: {api: true}` can be triggered"
                    )
                },
                status_code=409,
            )
        try:
            report = await enroller.enroll(version, body.profile_ids, clock())
        except (SQLAlchemyError, RPCError, OSError) as exc:
            return _failed(exc)
        log.info(
            "journey_triggered",
            journey_id=journey_id,
            version=version.version,
            requested=len(body.profile_ids),
            **report.counts,
        )
        return TriggerOut(
            journey_id=journey_id,
            version=version.version,
            counts=report.counts,
            results=[
                TriggerResult(profile_id=pid, outcome=report.outcomes[pid])
                for pid in dict.fromkeys(body.profile_ids)
            ],
        )

    return router


def _failed(exc: Exception) -> JSONResponse:
    source = "Temporal" if isinstance(exc, RPCError) else "the store"
    log.warning("journey_trigger_failed", error=type(exc).__name__)
    return JSONResponse(
        {
            "detail": (
                f"{source} failed ({type(exc).__name__}); people already started keep their "
                "runs. Resend the request: they come back as live or reentry_blocked."
            )
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )
