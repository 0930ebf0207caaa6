"""The HTTP API application: events, people and journey entry, behind bearer API keys.

``create_app`` composes nothing: it receives the store and the event router already built (the
composition roots, ``journey api`` and the embedded stack, build them from ``Settings``).

Routes: ``GET /healthz``; ``POST /v1/events``; ``POST /v1/profiles``; ``POST /v1/identify`` and
``PUT /v1/profiles/{id}/subscriptions/{channel}`` (``engine.api.people``);
``POST /v1/journeys/{id}/trigger`` (``engine.api.journeys``); ``/u/{token}`` unsubscribe links;
the Segment tracking API, ``/v1/batch``, ``/v1/track``... (``engine.api.segment``, whose errors
are Segment's: 400 with ``code`` and ``message``);
``GET /reports`` and ``/reports/{id}``, the HTML report (``engine.api.reports``);
``GET /metrics`` (``engine.api.metrics_route``).

Every request is all-or-nothing at validation: if any item is invalid the response is 422 with
each bad item's index and reason, and nothing is written. Responses:

- 401 missing or wrong API key (``WWW-Authenticate: Bearer``);
- 404 an unknown profile (subscriptions) or journey (trigger); 409 a journey that does not
  enter people through the API;
- 413 a body larger than ``MAX_BODY_BYTES``;
- 400 a body that is not JSON, or not UTF-8 (``engine.api.json_body``): the message names the
  line and column, or the byte; 422 JSON of the wrong shape, listing every problem;
- 503 the store or Temporal failed (resending is safe: stored events come back as
  ``duplicate`` and are delivered again if their delivery did not complete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.api.auth import BearerKeyMiddleware
from engine.api.journeys import journeys_router
from engine.api.json_body import StrictJsonRoute, malformed_json
from engine.api.metrics_route import metrics_router
from engine.api.models import (
    MAX_BODY_BYTES,
    EventBatch,
    EventBatchResult,
    EventResult,
    Health,
    ProfileBatch,
    ProfileBatchResult,
)
from engine.api.people import people_router
from engine.api.report_access import ReportAccess
from engine.api.reports import ReportBuilder, reports_router
from engine.api.segment import segment_router
from engine.api.unsubscribe import unsubscribe_router
from engine.domain import Event, Profile
from engine.identity import DEFAULT_REGION
from engine.metrics import EngineMetrics
from engine.services.events import DeliveryIncomplete, EventRouter
from engine.store import RecordedEvent, Store
from engine.unsubscribe import Secrets

log = structlog.get_logger(__name__)

HEALTH_TIMEOUT = 2.0
"""Seconds the store gets to answer ``SELECT 1`` before /healthz says 503."""

_BATCH_FIELDS = ("events", "profiles", "identities", "profile_ids")
# Declared on the routes so OpenAPI shows the lock; BearerKeyMiddleware does the checking.
_bearer = HTTPBearer(auto_error=False, description="an API key from JOURNEY_API_KEYS")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON, or not UTF-8; the message names the position"},
    401: {"description": "missing or invalid API key"},
    413: {"description": f"body larger than {MAX_BODY_BYTES} bytes"},
    422: {"description": "invalid input (batch items listed with their index); nothing written"},
    503: {"description": "the store or Temporal failed; resending is safe"},
}


class ApiConfigError(ValueError):
    """The API was asked to start in a state it refuses (no API keys, an empty key)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    store: Store,
    router: EventRouter,
    api_keys: Sequence[str],
    *,
    allow_anonymous: bool = False,
    clock: Callable[[], datetime] = _utcnow,
    unsubscribe_secret: Secrets | None = None,
    default_region: str = DEFAULT_REGION,
    reports: ReportBuilder | None = None,
    report_secret: str | None = None,
    metrics: EngineMetrics | None = None,
) -> FastAPI:
    """The API over ``store`` and ``router``; OpenAPI at ``/docs``.

    ``api_keys`` are the accepted bearer keys (any of them works, so keys can be rotated). With
    none, ``ApiConfigError`` is raised unless ``allow_anonymous=True`` says on purpose that
    anyone who can reach the port may write (the embedded dev stack on localhost). ``clock``
    gives the receive time (default occurred_at, and the router's ``now``). With
    ``unsubscribe_secret`` (one secret, or several: the first signs, all verify), the one-click
    unsubscribe links (``/u/{token}``) are served.
    ``default_region``: where identify reads phone numbers written without a country code.
    With ``reports`` (it builds the ``Report`` of the journeys asked for, every one for None), the
    HTML report is served at ``/reports``; with ``report_secret`` too, signed report links
    (``engine.report_links``) open it without an API key.
    ``metrics``: what ``GET /metrics`` serves (by default the router's enroller's, which counts
    the entries made through this API).
    """
    keys = list(api_keys)
    if any(not key.strip() for key in keys):
        raise ApiConfigError("an API key is empty; remove it from JOURNEY_API_KEYS")
    if not keys and not allow_anonymous:
        raise ApiConfigError(
            "no API keys configured: set JOURNEY_API_KEYS (a JSON list) or pass "
            "allow_anonymous=True to run an unauthenticated development API"
        )

    app = FastAPI(
        title="Journey Engine API",
        summary="Send customer events and profiles to the journey engine.",
        version="1",
        max_body_size=MAX_BODY_BYTES,
    )
    app.router.route_class = StrictJsonRoute
    if keys:
        access = None
        if reports is not None and report_secret:
            access = ReportAccess(report_secret, clock)
        app.add_middleware(BearerKeyMiddleware, keys=keys, reports=access)
    else:
        log.warning("api_anonymous_access", reason="allow_anonymous=True and no API keys")
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    auth = [Security(_bearer)] if keys else []

    @app.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health}},
    )
    async def healthz() -> Health | JSONResponse:
        """Whether the store answers (``SELECT 1`` within ``HEALTH_TIMEOUT`` seconds); no auth."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT), store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return _unhealthy(f"store did not answer within {HEALTH_TIMEOUT:g}s")
        except (SQLAlchemyError, OSError) as exc:
            # The class name only: driver messages can carry the database URL.
            return _unhealthy(f"store unavailable ({type(exc).__name__})")
        return Health(status="ok")

    @app.post("/v1/events", response_model=EventBatchResult, dependencies=auth, responses=_ERRORS)
    async def ingest_events(batch: EventBatch) -> EventBatchResult | JSONResponse:
        """Store each event once (by ``event_id``) and wake the journeys waiting for it.

        The batch is stored in one transaction. One person's events reach their journeys in
        the order sent. An event for a merged profile id is stored for the person it was merged
        into. An event for a profile id the store does not know yet is accepted and stored: the
        person may be identified later (``profile_id`` in /v1/identify takes these events in).
        """
        now = clock()
        events = [
            Event(
                event_id=item.event_id,
                profile_id=item.profile_id,
                name=item.name,
                occurred_at=item.occurred_at or now,
                properties=dict(item.properties),
            )
            for item in batch.events
        ]
        try:
            recorded = await router.ingest_batch(events, now)
        except DeliveryIncomplete as exc:
            log.warning(
                "events_delivery_incomplete",
                received=len(events),
                error=type(exc.cause).__name__,
            )
            return JSONResponse(
                {
                    "detail": (
                        f"the events are stored, but waking their journeys failed "
                        f"({type(exc.cause).__name__}). Resend the batch: stored events come "
                        "back as duplicate and the undelivered ones are delivered again."
                    ),
                    "results": _result_dicts(exc.recorded),
                },
                status_code=503,
                headers={"Retry-After": "5"},
            )
        except (SQLAlchemyError, RPCError, OSError) as exc:
            log.warning("events_ingest_failed", received=len(events), error=type(exc).__name__)
            return _partial_failure(0, [], exc)
        accepted = sum(r.fresh for r in recorded)
        log.info(
            "events_ingested",
            received=len(recorded),
            accepted=accepted,
            duplicate=len(recorded) - accepted,
        )
        # Built directly: validating 1,000 result models again costs more than the insert.
        return JSONResponse({"results": _result_dicts(recorded)})

    @app.post(
        "/v1/profiles", response_model=ProfileBatchResult, dependencies=auth, responses=_ERRORS
    )
    async def upsert_profiles(batch: ProfileBatch) -> ProfileBatchResult | JSONResponse:
        """Insert profiles or replace existing ones (every field: an omitted one gets its
        default). A repeated id in one batch: the last item wins."""
        profiles = [
            Profile(
                id=item.id,
                attributes=dict(item.attributes),
                tags=frozenset(item.tags),
                timezone=item.timezone,
                locale=item.locale,
            )
            for item in batch.profiles
        ]
        try:
            upserted = await store.upsert_profiles(profiles)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("profiles_upsert_failed", received=len(profiles), error=type(exc).__name__)
            return JSONResponse(
                {"detail": f"the store failed ({type(exc).__name__}); nothing was written"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.info("profiles_upserted", received=len(profiles), upserted=upserted)
        return ProfileBatchResult(received=len(profiles), upserted=upserted)

    app.include_router(people_router(store, clock, auth, _ERRORS))
    app.include_router(segment_router(store, router, clock, keys, auth, _ERRORS, default_region))
    app.include_router(journeys_router(store, router.enroller, clock, auth, _ERRORS))
    app.include_router(metrics_router(store, metrics or router.enroller.metrics, auth, _ERRORS))
    if unsubscribe_secret:
        app.include_router(unsubscribe_router(store, unsubscribe_secret, clock))
    if reports is not None:
        app.include_router(reports_router(reports, auth))
    return app


def _result_dicts(recorded: list[RecordedEvent]) -> list[dict[str, Any]]:
    """``EventResult``s, as plain dicts."""
    return [
        {
            "index": index,
            "event_id": r.event.event_id,
            "status": "accepted" if r.fresh else "duplicate",
        }
        for index, r in enumerate(recorded)
    ]


def _unhealthy(reason: str) -> JSONResponse:
    log.warning("health_check_failed", reason=reason)
    return JSONResponse(Health(status="unavailable", reason=reason).model_dump(), status_code=503)


def _partial_failure(index: int, done: list[EventResult], exc: Exception) -> JSONResponse:
    source = "Temporal" if isinstance(exc, RPCError) else "the store"
    return JSONResponse(
        {
            "detail": (
                f"{source} failed at item {index} ({type(exc).__name__}); items before it were "
                "processed. Resend the batch: stored events come back as duplicate."
            ),
            "failed_index": index,
            "results": [r.model_dump() for r in done],
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 body without the echoed input (it can be megabytes, or personal data),
    plus ``invalid_items``: each bad batch item's index with its field and reason. JSON that
    does not parse is a 400 naming the line and column instead."""
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            loc = tuple(error.get("loc", ()))
            reason = (error.get("ctx") or {}).get("error", "invalid")
            message = malformed_json(exc.body, loc[1] if len(loc) > 1 else None, reason)
            log.info("request_rejected", path=request.url.path, reason="malformed_json")
            return JSONResponse({"detail": message}, status_code=400)
    detail: list[dict[str, Any]] = []
    by_index: dict[int, list[dict[str, str]]] = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        msg = str(error.get("msg", "invalid"))
        item: dict[str, Any] = {"type": error.get("type"), "loc": list(loc), "msg": msg}
        if isinstance(ctx := error.get("ctx"), dict):
            item["ctx"] = {k: v if isinstance(v, int | str) else str(v) for k, v in ctx.items()}
        detail.append(item)
        if len(loc) >= 3 and loc[0] == "body" and loc[1] in _BATCH_FIELDS:
            index = loc[2]
            if isinstance(index, int):
                field = ".".join(str(part) for part in loc[3:]) or "(item)"
                by_index.setdefault(index, []).append({"field": field, "reason": msg})
    body: dict[str, Any] = {"detail": detail}
    if by_index:
        body["message"] = f"{len(by_index)} invalid item(s); nothing was written"
        body["invalid_items"] = [
            {"index": index, "errors": errors} for index, errors in sorted(by_index.items())
        ]
    log.info("request_rejected", path=request.url.path, errors=len(detail), items=len(by_index))
    return JSONResponse(body, status_code=422)
