"""Mapping between table rows and the domain records of ``engine.domain``."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import Row

from engine.domain import (
    Category,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    JourneyVersion,
    Profile,
)


def profile(row: Row[Any]) -> Profile:
    return Profile(
        id=row.id,
        attributes=dict(row.attributes),
        tags=frozenset(row.tags),
        timezone=row.timezone,
        locale=row.locale,
    )


def event(row: Row[Any]) -> Event:
    return Event(
        event_id=row.event_id,
        profile_id=row.profile_id,
        name=row.name,
        occurred_at=row.occurred_at,
        properties=dict(row.properties),
    )


def journey_version(row: Row[Any]) -> JourneyVersion:
    return JourneyVersion(
        journey_id=row.journey_id,
        version=row.version,
        content_hash=row.content_hash,
        definition=dict(row.definition),
        templates={name: dict(fields) for name, fields in row.templates.items()},
        deployed_at=row.deployed_at,
        source=row.source,
    )


def enrollment(row: Row[Any]) -> Enrollment:
    return Enrollment(
        id=row.id,
        journey_id=row.journey_id,
        journey_version=row.journey_version,
        profile_id=row.profile_id,
        entered_at=row.entered_at,
        status=cast(EnrollmentStatus, row.status),
        ended_at=row.ended_at,
        exit_step=row.exit_step,
        path=tuple(row.path),
        variants=dict(row.variants),
    )


def delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        send_key=row.send_key,
        journey_id=row.journey_id,
        journey_version=row.journey_version,
        profile_id=row.profile_id,
        step_id=row.step_id,
        channel=row.channel,
        template=row.template,
        category=cast(Category, row.category),
        status=cast(DeliveryStatus, row.status),
        created_at=row.created_at,
        reason=row.reason,
        provider_message_id=row.provider_message_id,
        detail=dict(row.detail),
    )
