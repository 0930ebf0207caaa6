"""The event log: events stored once by id, delivered to journeys at least once."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.domain import Event
from engine.store import locks, oneid, records
from engine.store.columns import require_aware
from engine.store.core import CHUNK, StoreCore, chunks
from engine.store.filters import among
from engine.store.retry import retrying
from engine.store.tables import events


class EventStore(StoreCore):
    """Events (see :class:`engine.store.Store`)."""

    async def record_event(self, event: Event) -> bool:
        """Store ``event`` (its profile id resolved through merges), as delivered; ``False``
        (and nothing written) when its ``event_id`` is already stored, so a client may resend
        events freely. Callers that deliver events to journeys use :meth:`record_events`."""
        [recorded] = await self.record_events([event])
        return recorded.fresh

    async def record_events(
        self, events_: Sequence[Event], *, pending_names: Collection[str] = frozenset()
    ) -> list[records.RecordedEvent]:
        """Store a batch of events in one transaction; one result per item, in order.

        Profile ids are resolved through merges first (an event for a merged id is stored for
        the survivor). An event id already stored, or repeated within the batch, is not written
        again (``fresh=False``). Fresh events named in ``pending_names`` (those some journey
        listens for) are stored as not yet delivered; every other event counts as delivered.
        A stored duplicate whose delivery is still outstanding comes back ``pending`` (with the
        stored copy), so resending an event after a failed delivery delivers it.
        """
        if not events_:
            return []
        for event in events_:
            require_aware(event.occurred_at)
        received = self._clock()
        people = {event.profile_id for event in events_}
        stmt = self._insert(events).on_conflict_do_nothing(index_elements=[events.c.event_id])
        async for attempt in retrying():
            with attempt:
                async with self._transaction() as conn:
                    await locks.writing(conn, "events")
                    survivors = await oneid.resolve(conn, people)
                    rows: dict[str, dict[str, Any]] = {}
                    for event in events_:
                        if event.event_id in rows:
                            continue
                        rows[event.event_id] = {
                            "event_id": event.event_id,
                            "profile_id": survivors.get(event.profile_id, event.profile_id),
                            "name": event.name,
                            "properties": event.properties,
                            "occurred_at": event.occurred_at,
                            "received_at": received,
                            "delivered_at": None if event.name in pending_names else received,
                        }
                    values = list(rows.values())
                    written = 0
                    for start in range(0, len(values), CHUNK):
                        result = await conn.execute(stmt, values[start : start + CHUNK])
                        written += result.rowcount
                    # Conflicts are skipped, not counted: when every row was written (the
                    # common case) no id was stored before, and nothing needs reading back.
                    inserted: set[str] = set(rows)
                    stored: dict[str, tuple[Event, bool]] = {}
                    if written != len(rows):
                        inserted = await _written_here(conn, list(rows), written)
                        stored = await _stored_events(conn, [i for i in rows if i not in inserted])
                break
        results: list[records.RecordedEvent] = []
        first: dict[str, Event] = {}
        for event in events_:
            event_id = event.event_id
            if event_id in first:
                # Repeated within the batch: the first copy is the one stored and delivered.
                results.append(records.RecordedEvent(first[event_id], False, False))
                continue
            if event_id in inserted:
                row = rows[event_id]
                copy = event
                if row["profile_id"] != event.profile_id:
                    copy = dataclasses.replace(event, profile_id=row["profile_id"])
                results.append(records.RecordedEvent(copy, True, row["delivered_at"] is None))
            else:
                copy, undelivered = stored[event_id]
                results.append(records.RecordedEvent(copy, False, undelivered))
            first[event_id] = copy
        return results

    async def mark_delivered(self, event_ids: Iterable[str], at: datetime) -> None:
        """Record that every listening journey got these events (no more redelivery)."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return
        async with self._transaction() as conn:
            for chunk in chunks(ids):
                await conn.execute(
                    update(events)
                    .where(
                        among(events.c.event_id, chunk, self.dialect),
                        events.c.delivered_at.is_(None),
                    )
                    .values(delivered_at=require_aware(at))
                )

    async def undelivered_events(self, received_before: datetime, limit: int = 1000) -> list[Event]:
        """Events whose delivery is outstanding, received before ``received_before``, oldest
        first (for a sweep that delivers what a crash or an outage left behind)."""
        query = (
            select(events)
            .where(
                events.c.delivered_at.is_(None),
                events.c.received_at < require_aware(received_before),
            )
            .order_by(events.c.received_at, events.c.pk)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [records.event(row) for row in await conn.execute(query)]

    async def events_for(
        self, profile_id: str, name: str | None = None, since: datetime | None = None
    ) -> list[Event]:
        """A profile's events, oldest first; only those called ``name`` and those at or after
        ``since`` when given."""
        query = select(events).where(events.c.profile_id == profile_id)
        if name is not None:
            query = query.where(events.c.name == name)
        if since is not None:
            query = query.where(events.c.occurred_at >= require_aware(since))
        query = query.order_by(events.c.occurred_at, events.c.pk)
        async with self._engine.connect() as conn:
            return [records.event(row) for row in await conn.execute(query)]

    async def goal_events(self, name: str, profile_ids: Sequence[str]) -> dict[str, list[datetime]]:
        """When each of ``profile_ids`` did event ``name``, oldest first; every requested id is a
        key (with an empty list when the person never did it)."""
        times: dict[str, list[datetime]] = {pid: [] for pid in profile_ids}
        async with self._engine.connect() as conn:
            for chunk in chunks(list(times)):
                result = await conn.execute(
                    select(events.c.profile_id, events.c.occurred_at)
                    .where(events.c.name == name, events.c.profile_id.in_(chunk))
                    .order_by(events.c.occurred_at, events.c.pk)
                )
                for profile_id, occurred_at in result:
                    times[profile_id].append(occurred_at)
        return times


async def _written_here(conn: AsyncConnection, event_ids: Sequence[str], count: int) -> set[str]:
    """Which of ``event_ids`` this transaction inserted (``count`` of them).

    PostgreSQL: the rows whose ``xmin`` is this transaction (another transaction may have
    stored some of these ids since this one began). SQLite: this transaction holds the write
    lock and SQLite numbers a new row after the largest rowid, so the rows it wrote are the
    ``count`` with the highest ``pk``.
    """
    if conn.dialect.name == "postgresql":
        query = select(events.c.event_id).where(
            among(events.c.event_id, event_ids, "postgresql"),
            text("events.xmin = pg_current_xact_id()::xid"),
        )
        return set((await conn.execute(query)).scalars())
    found: list[tuple[int, str]] = []
    for chunk in chunks(event_ids):
        query = select(events.c.pk, events.c.event_id).where(
            among(events.c.event_id, chunk, "sqlite")
        )
        found.extend((pk, event_id) for pk, event_id in await conn.execute(query))
    found.sort(reverse=True)
    return {event_id for _, event_id in found[:count]}


async def _stored_events(
    conn: AsyncConnection, event_ids: Sequence[str]
) -> dict[str, tuple[Event, bool]]:
    """Stored events by id, each with whether its delivery is outstanding."""
    found: dict[str, tuple[Event, bool]] = {}
    for chunk in chunks(event_ids):
        query = select(events).where(among(events.c.event_id, chunk, conn.dialect.name))
        for row in await conn.execute(query):
            found[row.event_id] = (records.event(row), row.delivered_at is None)
    return found
