"""What a journey did in a time window, counted in the database: the inputs of the anomaly
check (`engine.services.anomalies`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select

from engine.store.core import StoreCore
from engine.store.tables import deliveries, enrollments, events, subscriptions


@dataclass(frozen=True)
class WindowCounts:
    decided: int
    """Sends decided (sent, suppressed, deferred, expired, failed, unknown)."""
    suppressed: int
    """Of those, suppressed or expired (refused by consent, caps, quiet hours, a budget)."""
    attempted: int
    """Sends handed to a provider (sent, failed, unknown)."""
    failed: int
    ended: int
    """Runs that ended."""
    converted: int
    reached: int
    """People sent at least one message."""
    unsubscribed: int
    """Of those, people who unsubscribed in the window (an ``unsubscribed`` event, or a
    channel's consent withdrawn)."""


class HealthStore(StoreCore):
    async def window_counts(
        self, journey_id: str, since: datetime, until: datetime
    ) -> WindowCounts:
        """The journey's counts over ``[since, until)``."""
        in_window = and_(
            deliveries.c.journey_id == journey_id,
            deliveries.c.created_at >= since,
            deliveries.c.created_at < until,
        )
        by_status = (
            select(deliveries.c.status, func.count()).where(in_window).group_by(deliveries.c.status)
        )
        runs = (
            select(enrollments.c.status, func.count())
            .where(
                enrollments.c.journey_id == journey_id,
                enrollments.c.ended_at >= since,
                enrollments.c.ended_at < until,
            )
            .group_by(enrollments.c.status)
        )
        reached = (
            select(deliveries.c.profile_id)
            .where(in_window, deliveries.c.status == "sent")
            .distinct()
            .subquery()
        )
        left = or_(
            reached.c.profile_id.in_(
                select(events.c.profile_id).where(
                    events.c.name == "unsubscribed",
                    events.c.occurred_at >= since,
                    events.c.occurred_at < until,
                )
            ),
            reached.c.profile_id.in_(
                select(subscriptions.c.profile_id).where(
                    subscriptions.c.status == "unsubscribed",
                    subscriptions.c.updated_at >= since,
                    subscriptions.c.updated_at < until,
                )
            ),
        )
        async with self._engine.connect() as conn:
            statuses = {row[0]: int(row[1]) for row in await conn.execute(by_status)}
            endings = {row[0]: int(row[1]) for row in await conn.execute(runs)}
            people = (await conn.execute(select(func.count()).select_from(reached))).scalar_one()
            gone = (
                await conn.execute(select(func.count()).select_from(reached).where(left))
            ).scalar_one()
        count = statuses.get
        return WindowCounts(
            decided=sum(n for status, n in statuses.items() if status != "attempting"),
            suppressed=count("suppressed", 0) + count("expired", 0),
            attempted=count("sent", 0) + count("failed", 0) + count("unknown", 0),
            failed=count("failed", 0),
            ended=sum(endings.values()),
            converted=endings.get("converted", 0),
            reached=int(people),
            unsubscribed=int(gone),
        )
