"""Journey states set by operators, and the entries those states refused.

A journey's state is the newest of its control rows (no row: ``active``); every change stays, so
``journey status`` and an audit can say who paused a journey, when and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from engine.domain import EntryRefusal, JourneyControl, JourneyState
from engine.store.columns import require_aware
from engine.store.core import CHUNK, StoreCore
from engine.store.tables import deliveries, enrollments, entry_refusals, journey_controls


@dataclass(frozen=True)
class JourneyActivity:
    """What ``journey list`` shows of a journey's runs."""

    live: int
    entered_since: int
    sent_since: int


class ControlStore(StoreCore):
    """Journey states and refused entries (see :class:`engine.store.Store`)."""

    async def set_journey_state(
        self, journey_id: str, state: JourneyState, at: datetime, by: str, reason: str | None
    ) -> JourneyControl:
        """Record a change of state (the newest row wins)."""
        control = JourneyControl(journey_id, state, require_aware(at), by, reason)
        async with self._transaction() as conn:
            await conn.execute(
                journey_controls.insert().values(
                    journey_id=journey_id,
                    state=state,
                    changed_at=control.changed_at,
                    changed_by=by,
                    reason=reason,
                )
            )
        return control

    async def journey_controls(
        self, journey_ids: Sequence[str] | None = None
    ) -> dict[str, JourneyControl]:
        """The current state of each journey that ever changed state (others are active)."""
        newest = select(func.max(journey_controls.c.id)).group_by(journey_controls.c.journey_id)
        query = select(journey_controls).where(journey_controls.c.id.in_(newest))
        if journey_ids is not None:
            query = query.where(journey_controls.c.journey_id.in_(list(journey_ids)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.journey_id: JourneyControl(
                row.journey_id, row.state, row.changed_at, row.changed_by, row.reason
            )
            for row in rows
        }

    async def journey_state(self, journey_id: str) -> JourneyState:
        control = (await self.journey_controls([journey_id])).get(journey_id)
        return control.state if control else "active"

    async def control_history(self, journey_id: str) -> list[JourneyControl]:
        """Every change of the journey's state, oldest first."""
        query = (
            select(journey_controls)
            .where(journey_controls.c.journey_id == journey_id)
            .order_by(journey_controls.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            JourneyControl(row.journey_id, row.state, row.changed_at, row.changed_by, row.reason)
            for row in rows
        ]

    async def record_entry_refusals(
        self, journey_id: str, profile_ids: Sequence[str], at: datetime, reason: str
    ) -> None:
        rows = [
            {"journey_id": journey_id, "profile_id": pid, "at": require_aware(at), "reason": reason}
            for pid in dict.fromkeys(profile_ids)
        ]
        if not rows:
            return
        async with self._transaction() as conn:
            for start in range(0, len(rows), CHUNK):
                await conn.execute(entry_refusals.insert(), rows[start : start + CHUNK])

    async def entry_refusals(self, profile_id: str) -> list[EntryRefusal]:
        query = (
            select(entry_refusals)
            .where(entry_refusals.c.profile_id == profile_id)
            .order_by(entry_refusals.c.at, entry_refusals.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [EntryRefusal(r.journey_id, r.profile_id, r.at, r.reason) for r in rows]

    async def journey_activity(self, since: datetime) -> dict[str, JourneyActivity]:
        """Per journey: live runs, runs entered and messages sent since ``since``."""
        since = require_aware(since)
        live = (
            select(enrollments.c.journey_id, func.count())
            .where(enrollments.c.status == "active")
            .group_by(enrollments.c.journey_id)
        )
        entered = (
            select(enrollments.c.journey_id, func.count())
            .where(enrollments.c.entered_at >= since)
            .group_by(enrollments.c.journey_id)
        )
        sent = (
            select(deliveries.c.journey_id, func.count())
            .where(deliveries.c.status == "sent", deliveries.c.updated_at >= since)
            .group_by(deliveries.c.journey_id)
        )
        async with self._engine.connect() as conn:
            counts: list[dict[str, int]] = [
                {row[0]: row[1] for row in await conn.execute(q)} for q in (live, entered, sent)
            ]
        ids = set().union(*counts)
        return {
            jid: JourneyActivity(
                counts[0].get(jid, 0), counts[1].get(jid, 0), counts[2].get(jid, 0)
            )
            for jid in ids
        }
