"""People: ``identify_person`` (OneID, served at ``POST /v1/identify`` by ``engine.api.segment``,
which shares the path with Segment's identify) and the route
``PUT /v1/profiles/{id}/subscriptions/{channel}`` (consent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from engine.api.json_body import StrictJsonRoute
from engine.api.models import (
    CHANNEL_PATTERN,
    IdentifyIn,
    IdentifyOut,
    SubscriptionIn,
    SubscriptionOut,
)
from engine.identity import Identity
from engine.store import Store

log = structlog.get_logger(__name__)

ProfileIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
ChannelPath = Annotated[str, Path(pattern=CHANNEL_PATTERN, description="e.g. sms, email, wecom")]


def people_router(
    store: Store,
    clock: Callable[[], datetime],
    dependencies: Sequence[Depends],
    errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    router = APIRouter(
        dependencies=list(dependencies), responses=errors, route_class=StrictJsonRoute
    )

    @router.put(
        "/v1/profiles/{profile_id}/subscriptions/{channel}",
        response_model=SubscriptionOut,
        responses={404: {"description": "no such profile"}},
    )
    async def set_subscription(
        profile_id: ProfileIdPath, channel: ChannelPath, body: SubscriptionIn
    ) -> SubscriptionOut | JSONResponse:
        """Record the person's consent for one channel. Marketing sends to an unsubscribed
        channel are suppressed; transactional messages still go."""
        try:
            profile = await store.get_profile(profile_id)
            if profile is None:
                return JSONResponse(
                    {"detail": "no profile with this id; create it with /v1/identify first"},
                    status_code=404,
                )
            at = clock()
            await store.set_subscription(profile.id, channel, body.status, body.source, at)
        except (SQLAlchemyError, OSError) as exc:
            return _store_failed("subscription_failed", exc)
        log.info("subscription_set", profile_id=profile.id, channel=channel, status=body.status)
        return SubscriptionOut(
            profile_id=profile.id,
            channel=channel,
            status=body.status,
            source=body.source,
            updated_at=at,
        )

    return router


async def identify_person(
    store: Store, clock: Callable[[], datetime], body: IdentifyIn
) -> IdentifyOut | JSONResponse:
    """Find or create the person known by these identities (and ``profile_id``); when they
    belong to several profiles, merge them into one. Events, enrollments, deliveries, consent
    and identities of the merged profiles move to the survivor, and their ids keep working (they
    resolve to it). One transaction: on any failure nothing is written."""
    try:
        result = await store.identify(
            [Identity(i.type, i.value) for i in body.identities],
            profile_id=body.profile_id,
            attributes=body.attributes,
            add_tags=body.tags,
            timezone=body.timezone,
            locale=body.locale,
            at=clock(),
        )
    except (SQLAlchemyError, OSError) as exc:
        return _store_failed("identify_failed", exc)
    log.info(
        "identified",
        profile_id=result.profile_id,
        created=result.created,
        merged=len(result.merged),
        identities=len(body.identities),
    )
    return IdentifyOut(
        profile_id=result.profile_id, created=result.created, merged=list(result.merged)
    )


def _store_failed(event: str, exc: Exception) -> JSONResponse:
    log.warning(event, error=type(exc).__name__)
    return JSONResponse(
        {"detail": f"the store failed ({type(exc).__name__}); nothing was written"},
        status_code=503,
        headers={"Retry-After": "5"},
    )
