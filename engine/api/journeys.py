"""Journey routes: ``POST /v1/journeys/{id}/trigger`` enters people into an API-entry journey;
``POST /v1/journeys/{id}/pause|resume|stop`` steer it (see `engine.services.lifecycle`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.api.auth import API_KEY_NAME
from engine.api.json_body import StrictJsonRoute
from engine.api.models import ControlIn, ControlOut, TriggerIn, TriggerOut, TriggerResult
from engine.dsl.models import ApiEntry, SegmentEntry
from engine.services.enroll import Enroller
from engine.services.lifecycle import InvalidTransition, JourneyLifecycle, UnknownJourney
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

    lifecycle = JourneyLifecycle(store, enroller.client)

    async def change(
        action: str, journey_id: str, body: ControlIn | None, request: Request
    ) -> ControlOut | JSONResponse:
        by = request.scope.get("state", {}).get(API_KEY_NAME, "anonymous")
        steer = getattr(lifecycle, action)
        try:
            result = await steer(journey_id, by, clock(), body.reason if body else None)
        except UnknownJourney as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except InvalidTransition as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except (SQLAlchemyError, RPCError, OSError) as exc:
            return _failed(exc)
        control = result.control
        return ControlOut(
            journey_id=journey_id,
            state=control.state,
            previous=result.previous,
            changed_by=control.changed_by,
            changed_at=control.changed_at,
            reason=control.reason,
            live_runs_told=result.signalled,
            live_runs_unreached=result.unreached,
        )

    lifecycle_responses: dict[int | str, dict[str, Any]] = {
        404: {"description": "no journey with this id is deployed"},
        409: {"description": "the journey's state does not allow this (e.g. resume a stopped one)"},
    }
    for action, summary in (
        ("pause", "No new entries; live runs hold before their next send (waits go on)."),
        ("resume", "Entries open again; held runs go on (a deferral that expired is expired)."),
        ("stop", "Every live run ends now with status stopped; nothing more is sent."),
    ):

        async def endpoint(
            journey_id: JourneyIdPath,
            request: Request,
            body: ControlIn | None = None,
            _action: str = action,
        ) -> ControlOut | JSONResponse:
            return await change(_action, journey_id, body, request)

        router.add_api_route(
            f"/v1/journeys/{{journey_id}}/{action}",
            endpoint,
            methods=["POST"],
            response_model=ControlOut,
            responses=lifecycle_responses,
            summary=f"{action.capitalize()} a journey",
            description=summary + " Recorded with the API key's name, the time and the reason.",
            name=f"{action}_journey",
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
