"""Writing imported history: profiles through the store, events in bulk through ``events``.

`Store.record_events` resolves merges and decides delivery per event, which a live event needs;
an import of tens of thousands of historical events needs neither, so they are inserted in large
multi-row statements that skip ids already stored (measured on the CDNOW file: see
``bench/import_cdnow.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from engine.domain import Event
from engine.store import Store
from engine.store.columns import require_aware
from engine.store.tables import events

CHUNK = 5000


async def insert_history(store: Store, events_: Sequence[Event]) -> int:
    """Store events as history (already delivered) in one transaction; ids already stored are
    skipped. Returns how many were new."""
    received = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for event in events_:
        require_aware(event.occurred_at)
        rows.setdefault(
            event.event_id,
            {
                "event_id": event.event_id,
                "profile_id": event.profile_id,
                "name": event.name,
                "properties": dict(event.properties),
                "occurred_at": event.occurred_at,
                "received_at": received,
                "delivered_at": received,
            },
        )
    values = list(rows.values())
    dialect = sqlite if store.dialect == "sqlite" else postgresql
    stmt = dialect.insert(events).on_conflict_do_nothing(index_elements=[events.c.event_id])
    count = select(func.count()).select_from(events)
    async with store.engine.begin() as conn:
        before = int((await conn.execute(count)).scalar_one())
        for start in range(0, len(values), CHUNK):
            await conn.execute(stmt, values[start : start + CHUNK])
        after = int((await conn.execute(count)).scalar_one())
    await refresh_statistics(store)
    return after - before


async def refresh_statistics(store: Store) -> None:
    """Let PostgreSQL's planner see a bulk load at once (autovacuum would, a minute later).

    With statistics from before the load the planner takes ``events`` for a near-empty table
    and probes it by name and time for every profile instead of by profile: a segment query
    over the CDNOW data then runs for minutes instead of a second.
    """
    if store.dialect != "postgresql":
        return
    async with store.engine.begin() as conn:
        await conn.execute(text("ANALYZE profiles, events"))
