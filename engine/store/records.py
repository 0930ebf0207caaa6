"""Mapping between table rows and the domain records of ``engine.domain``."""

from __future__ import annotations

from dataclasses import dataclass
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
        exit_reason=row.exit_reason,
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


@dataclass(frozen=True)
class RecordedEvent:
    """What ``Store.record_events`` did with one event of a batch."""

    event: Event
    """The event as stored: its profile id resolved through merges; for a duplicate, the copy
    stored first (which is what journeys get)."""
    fresh: bool
    """Stored by this call; False for an event id stored before (or earlier in the batch)."""
    pending: bool
    """Its delivery to journeys is outstanding: a fresh event with listeners, or a duplicate
    whose earlier delivery never completed. The caller delivers it, then ``mark_delivered``."""


@dataclass(frozen=True)
class EnrollmentClaim:
    """The outcome of ``Store.claim_enrollments`` for one person."""

    created: Enrollment | None
    """The new ledger row when the re-entry rule allowed entry, else None."""
    last: Enrollment | None
    """The person's latest enrollment in the journey before this claim."""
